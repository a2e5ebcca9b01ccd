/**
 * A change to the share at a chosen instant, for the tests of copies on a
 * share: preloaded into a driver (NODE_OPTIONS="--require <this file>"),
 * it runs a shell script a test left in the file CSI_LAB_SWAP_FILE right
 * before the driver's next step of the kind the file's first line names:
 *
 *   cp    the driver is about to start cp (storage/copy-content.ts): every
 *         check is done, and the copy comes next;
 *   view  the driver is about to make a directory among its views (.views):
 *         where a copy reads or writes is decided, and not yet mounted;
 *   rename  a share agent (which inherits the preload) is about to rename
 *         something on the share (renameSync): a delete has proved the
 *         volume's directory and is moving it to the trash or archive.
 *   move  the driver is about to rename something with fs.promises.rename:
 *         a hostPath delete has proved the volume's directory and is moving
 *         it into .trash.
 *   move <dir>  the same, for a rename into exactly the directory <dir>: a
 *         create is about to commit its record (volumes/, snapshots/meta/),
 *         and will then move what it made in .tmp into place.
 *   open <path>  the driver is about to open exactly <path> (openSync, or
 *         fs.promises.open): the place it acts on is decided, and is about
 *         to be opened to act on through its descriptor (a directory to
 *         bind or chmod, an image file to attach or grow).
 *
 * The file is removed before the script runs, so it runs once. Everything
 * else is the real driver on the real disk; this only picks a moment that a
 * test cannot hit by timing — what another node or the share's server
 * could do at that moment.
 */
import { promises as fsp, readFileSync, rmSync } from "node:fs";
// The module object itself (not a copy of its bindings), so that the driver's calls see the wrapper.
import childProcess = require("node:child_process");
import fs = require("node:fs");
import path = require("node:path");

const file = process.env.CSI_LAB_SWAP_FILE;

let firing = false; // reading the file opens it too

function fire(event: string): void {
  if (firing) return;
  firing = true;
  try {
    let text: string;
    try {
      text = readFileSync(file!, "utf8");
    } catch {
      return; // nothing asked for
    }
    const [when, ...script] = text.split("\n");
    if (when !== event) return;
    rmSync(file!);
    childProcess.execFileSync("/bin/sh", ["-ec", script.join("\n")], { stdio: "ignore" });
  } finally {
    firing = false;
  }
}

if (file) {
  const spawn = childProcess.spawn;
  (childProcess as { spawn: unknown }).spawn = function (this: unknown, ...args: unknown[]) {
    // The driver runs its tools as `setpriv --pdeathsig KILL -- <tool> …`.
    const argv = args[1];
    if (Array.isArray(argv) && argv[argv.indexOf("--") + 1] === "cp") fire("cp");
    return (spawn as (...a: unknown[]) => unknown).apply(this, args);
  };
  const renameSync = fs.renameSync;
  (fs as { renameSync: unknown }).renameSync = function (this: unknown, ...args: unknown[]) {
    fire("rename");
    return (renameSync as (...a: unknown[]) => unknown).apply(this, args);
  };
  const rename = fsp.rename;
  (fsp as { rename: unknown }).rename = function (this: unknown, ...args: unknown[]) {
    fire("move");
    fire(`move ${path.dirname(String(args[1]))}`);
    return (rename as (...a: unknown[]) => unknown).apply(this, args);
  };
  const openSync = fs.openSync;
  (fs as { openSync: unknown }).openSync = function (this: unknown, ...args: unknown[]) {
    if (typeof args[0] === "string") fire(`open ${args[0]}`);
    return (openSync as (...a: unknown[]) => unknown).apply(this, args);
  };
  const open = fsp.open;
  (fsp as { open: unknown }).open = function (this: unknown, ...args: unknown[]) {
    if (typeof args[0] === "string") fire(`open ${args[0]}`);
    return (open as (...a: unknown[]) => unknown).apply(this, args);
  };
  const mkdir = fsp.mkdir;
  (fsp as { mkdir: unknown }).mkdir = function (this: unknown, ...args: unknown[]) {
    if (String(args[0]).includes("/.views/")) fire("view");
    return (mkdir as (...a: unknown[]) => unknown).apply(this, args);
  };
}

/** The environment that preloads this hook into a driver (beside what `base` preloads), reading its script from `swapFile`. */
export function swapEnv(swapFile: string, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const preload = `--require ${JSON.stringify(__filename)}`;
  return {
    ...base,
    NODE_OPTIONS: [base.NODE_OPTIONS, preload].filter(Boolean).join(" "),
    CSI_LAB_SWAP_FILE: swapFile,
  };
}
