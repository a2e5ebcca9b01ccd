/**
 * Reaching places below a share's root without following a symlink: the
 * share agent's walks (share-agent.ts), in a module of their own so that
 * the agent holds only its operations.
 *
 * A volume's subDir comes from a StorageClass or a volume ID, and a share's
 * tree is not the driver's alone: a symlink planted in it must not lead
 * the driver off the share.
 */
import { closeSync, constants as fsc, lstatSync, mkdirSync, openSync } from "node:fs";
import * as path from "node:path";

/** An operation's failure: an errno code (ELOOP for a symlink on the way) and a message naming the place, passed back as they are. */
export class AgentError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Run `fn` on directory `dir` opened itself (a symlink at its last component is not followed). */
export function withDir<T>(dir: string, fn: (fd: number) => T): T {
  const fd = openSync(dir, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

/** mkdir -p below `root`, refusing to pass through a symlink (a planted one could lead out of the share). */
export function ensureDirs(root: string, rel: string, mode = 0o755): string {
  let cur = root;
  for (const c of rel.split("/").filter((x) => x !== "")) {
    cur = path.join(cur, c);
    const st = lstatSync(cur, { throwIfNoEntry: false });
    if (!st) {
      try {
        mkdirSync(cur, { mode });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      }
      continue;
    }
    if (st.isSymbolicLink()) throw new AgentError("ELOOP", `${cur} is a symbolic link; refusing to follow it`);
    if (!st.isDirectory()) throw new AgentError("ENOTDIR", `${cur} is not a directory`);
  }
  return cur;
}

/** O_PATH (Linux): names a directory without opening it for reading. */
const O_PATH = 0o10000000;

/**
 * Reach `rel` below `root` without following a symlink on the way: the
 * parent is opened one component at a time with O_NOFOLLOW, and the place
 * is then named through that open directory (/proc/self/fd/N/<name>). A
 * volume's subDir comes from a StorageClass or a volume ID; a symlink
 * planted inside the share (say by the user of a volume that contains
 * another's directory) must not lead the driver to "/".
 */
export function within<T>(root: string, rel: string, fn: (at: string) => T): T {
  const parts = rel.split("/").filter((c) => c !== "");
  const name = parts.pop();
  if (name === undefined || parts.concat(name).some((c) => c === "." || c === "..")) throw new AgentError("EINVAL", `${rel} is not a path below the share`);
  let fd = openSync(root, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    for (const c of parts) {
      let next: number;
      try {
        next = openSync(`/proc/self/fd/${fd}/${c}`, O_PATH | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === "ELOOP" || code === "ENOTDIR") throw new AgentError("ELOOP", `${path.join(root, c)} on the way to ${rel} is not a directory (a symbolic link?); refusing to follow it`);
        throw err;
      }
      closeSync(fd);
      fd = next;
    }
    return fn(`/proc/self/fd/${fd}/${name}`);
  } finally {
    closeSync(fd);
  }
}

/**
 * Work in directory `rel` below `root` (one of the driver's own, under
 * .csi-lab): reached as within() reaches a place, and not followed if it is
 * itself a symlink. `fn` gets a path that names the opened directory, so a
 * symlink planted at .csi-lab, tmp, trash or snapshots, or swapped in
 * between two operations, never leads a clean-up or a record out of the
 * share.
 */
export function inDir<T>(root: string, rel: string, fn: (dir: string, fd: number) => T): T {
  return within(root, rel, (p) => {
    let fd: number;
    try {
      fd = openSync(p, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ELOOP" || code === "ENOTDIR") throw new AgentError("ELOOP", `${path.join(root, rel)} is not a directory (a symbolic link?); refusing to follow it`);
      throw err;
    }
    try {
      return fn(`/proc/self/fd/${fd}`, fd);
    } finally {
      closeSync(fd);
    }
  });
}

export const isErrno = (err: unknown, code: string): boolean => (err as NodeJS.ErrnoException).code === code;
