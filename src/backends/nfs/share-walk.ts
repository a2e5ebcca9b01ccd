/**
 * Reaching places below a share's root without following a symlink.
 *
 * A share's tree is not the driver's alone: other nodes, the pods using its
 * volumes and the share's own server can swap any directory on it for a
 * symlink at any moment, so a path below the root that was checked is no
 * proof of where it leads a moment later. These walks never use such a
 * path: they open the root, then each directory on the way from the one
 * before it with O_NOFOLLOW, holding it open, and name the place through
 * the last one (/proc/self/fd/N/<name>). A link met on the way fails the
 * walk (ELOOP) instead of leading it off the share. The share agent
 * (share-agent.ts) reaches everything it touches this way.
 */
import { spawnSync } from "node:child_process";
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

export const isErrno = (err: unknown, code: string): boolean => (err as NodeJS.ErrnoException).code === code;

/** Run `fn` on directory `dir` opened itself (a symlink at its last component is not followed). */
export function withDir<T>(dir: string, fn: (fd: number) => T): T {
  const fd = openSync(dir, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

/** O_PATH (Linux): names a directory without opening it for reading. */
const O_PATH = 0o10000000;

/**
 * mkdir -p below `root`, refusing to pass through a symlink (a planted one
 * could lead out of the share): each directory is made in, and then opened
 * from, the one before it, held open, so a component swapped for a link
 * between two steps fails the walk instead of redirecting it.
 */
export function ensureDirs(root: string, rel: string, mode = 0o755): void {
  let fd = openSync(root, fsc.O_RDONLY | fsc.O_DIRECTORY);
  let cur = root;
  try {
    for (const c of rel.split("/").filter((x) => x !== "" && x !== ".")) {
      if (c === "..") throw new AgentError("EINVAL", `${rel} is not a path below the share`);
      cur = path.join(cur, c);
      const at = `/proc/self/fd/${fd}/${c}`;
      const open = () => openSync(at, O_PATH | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
      let next: number;
      try {
        try {
          next = open();
        } catch (err) {
          if (!isErrno(err, "ENOENT")) throw err;
          try {
            mkdirSync(at, { mode });
          } catch (e) {
            if (!isErrno(e, "EEXIST")) throw e;
          }
          next = open();
        }
      } catch (err) {
        if (!isErrno(err, "ENOTDIR") && !isErrno(err, "ELOOP")) throw err;
        if (lstatSync(at, { throwIfNoEntry: false })?.isSymbolicLink()) throw new AgentError("ELOOP", `${cur} is a symbolic link; refusing to follow it`);
        throw new AgentError("ENOTDIR", `${cur} is not a directory`);
      }
      closeSync(fd);
      fd = next;
    }
  } finally {
    closeSync(fd);
  }
}

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
    for (const [i, c] of parts.entries()) {
      let next: number;
      try {
        next = openSync(`/proc/self/fd/${fd}/${c}`, O_PATH | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const at = path.join(root, ...parts.slice(0, i + 1));
        if (code === "ELOOP" || code === "ENOTDIR") throw new AgentError("ELOOP", `${at} on the way to ${rel} is not a directory (a symbolic link?); refusing to follow it`);
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

/**
 * Remove the entry `at` (/proc/self/fd/N/<name>, as within() and inDir()
 * name places), a whole tree if it is one, with GNU rm, which walks by open
 * directory and follows no symlink, not even one swapped in while it runs
 * (storage/remove-tree.ts says why Node's rm would). It is given the parent
 * itself, as its fd 3, so no path on the share is resolved again, and stays
 * on the share's file system (--one-file-system).
 */
export function removeTree(at: string): void {
  const m = /^\/proc\/self\/fd\/(\d+)\/([^/]+)$/.exec(at);
  if (!m || m[2] === "." || m[2] === "..") throw new AgentError("EINVAL", `${at} is not an entry of an open directory`);
  const r = spawnSync("rm", ["-rf", "--one-file-system", "--", `/proc/self/fd/3/${m[2]}`], {
    stdio: ["ignore", "ignore", "pipe", Number(m[1])],
    encoding: "utf8",
  });
  if (r.error) throw r.error;
  if (r.status !== 0) throw new AgentError("EIO", `could not remove ${m[2]}: ${r.stderr.trim().split("\n").slice(0, 3).join("; ")}`);
}
