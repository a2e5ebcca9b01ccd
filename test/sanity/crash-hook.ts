/**
 * kill -9 at a chosen instant, for the crash tests: preloaded into a driver
 * (NODE_OPTIONS="--require <this file>"), it wraps one of fs.promises'
 * calls and sends the process SIGKILL right after the Nth call whose
 * arguments match, once the call has done its work on disk. Everything
 * else is the real driver on the real disk; this only picks the moment
 * that a crash test cannot hit by timing. (For every instant of an RPC,
 * synchronous and foreign calls included, see crash-explorer.ts.)
 *
 *   CSI_LAB_CRASH_OP     the fs.promises function, e.g. "rename"
 *   CSI_LAB_CRASH_MATCH  a regular expression the call's arguments (joined by " -> ") must match
 *   CSI_LAB_CRASH_NTH    which matching call (default 1)
 *
 * Or, at an ioctl the driver makes through src/mount/ioctl.ts (a loop
 * device's LOOP_CLR_FD, say), just before or just after its first call
 * with that request number, noting what it was made on (the device's path):
 *
 *   CSI_LAB_CRASH_IOCTL   the request number, e.g. "0x4c01"
 *   CSI_LAB_CRASH_MOMENT  "before" or "after" the call
 *   CSI_LAB_CRASH_NOTE    a file the call's device is written to, before the kill
 */
import { promises as fsp, writeFileSync } from "node:fs";
import * as path from "node:path";

const op = process.env.CSI_LAB_CRASH_OP as keyof typeof fsp | undefined;
if (op) {
  const match = new RegExp(process.env.CSI_LAB_CRASH_MATCH ?? ".");
  let left = Number(process.env.CSI_LAB_CRASH_NTH ?? "1");
  const original = fsp[op] as (...args: unknown[]) => Promise<unknown>;
  (fsp as unknown as Record<string, unknown>)[op] = async function (this: unknown, ...args: unknown[]) {
    const hit = match.test(args.map(String).join(" -> ")) && --left === 0;
    const result = await original.apply(this, args);
    if (hit) {
      process.kill(process.pid, "SIGKILL");
      await new Promise(() => {}); // nothing after the crash runs
    }
    return result;
  };
}

const request = process.env.CSI_LAB_CRASH_IOCTL;
if (request) {
  // The driver's modules call their imports through the module object, so replacing its exports reaches every caller.
  const ioctl = require(path.join(__dirname, "../../src/mount/ioctl")) as Record<string, (...args: unknown[]) => unknown>;
  const after = process.env.CSI_LAB_CRASH_MOMENT === "after";
  const kill = (what: unknown): never => {
    writeFileSync(process.env.CSI_LAB_CRASH_NOTE!, String(what));
    process.kill(process.pid, "SIGKILL");
    throw new Error("unreachable: killed");
  };
  for (const name of ["ioctlInt", "ioctlPtr", "ioctlPtrAsync"]) {
    const original = ioctl[name]!;
    const isAsync = name.endsWith("Async");
    ioctl[name] = function (this: unknown, ...args: unknown[]) {
      if (Number(args[1]) !== Number(request)) return original.apply(this, args);
      const what = args[3];
      if (!after) kill(what);
      if (!isAsync) {
        original.apply(this, args);
        return kill(what);
      }
      return (original.apply(this, args) as Promise<unknown>).then(() => kill(what));
    };
  }
}

/** The environment that preloads this hook into a driver. */
export function crashEnv(op: string, match: string, nth = 1): NodeJS.ProcessEnv {
  const preload = `--require ${__filename}`;
  return {
    ...process.env,
    NODE_OPTIONS: [process.env.NODE_OPTIONS, preload].filter(Boolean).join(" "),
    CSI_LAB_CRASH_OP: op,
    CSI_LAB_CRASH_MATCH: match,
    CSI_LAB_CRASH_NTH: String(nth),
  };
}

/** The environment that preloads this hook into a driver set to die just `moment` its first ioctl `request`, noting the device in `note`. */
export function ioctlCrashEnv(request: number, moment: "before" | "after", note: string): NodeJS.ProcessEnv {
  const preload = `--require ${__filename}`;
  return {
    ...process.env,
    NODE_OPTIONS: [process.env.NODE_OPTIONS, preload].filter(Boolean).join(" "),
    CSI_LAB_CRASH_IOCTL: `0x${request.toString(16)}`,
    CSI_LAB_CRASH_MOMENT: moment,
    CSI_LAB_CRASH_NOTE: note,
  };
}
