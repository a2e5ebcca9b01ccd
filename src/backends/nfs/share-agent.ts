/**
 * The share agent: a helper process that touches shared file systems for
 * the driver.
 *
 * A stat(2) on an NFS mount whose server has gone can block for ever, and
 * so can every file operation behind it. Inside the driver that would be
 * fatal whichever way it was called: a synchronous call freezes the event
 * loop; an asynchronous one occupies one of libuv's four pool threads for
 * good (four hung calls and no file operation anywhere in the driver
 * completes); a worker thread cannot be stopped while it sits in the
 * kernel, and even keeps the process from exiting. A child process can be
 * given up on. So the driver (share-io.ts) sends each operation on a share
 * to one of these agents over a pipe, one JSON line per request and per
 * reply, and waits for a bounded time; an agent that does not answer is
 * killed and replaced, and the call fails with UNAVAILABLE.
 *
 * In here everything is synchronous and plain: one request at a time, in
 * order, with errno codes passed back as they are.
 *
 * Nothing on a share can be trusted between a check and a use: other nodes
 * and the share's own server may swap any directory for a symlink at any
 * moment. So no operation here acts on a path string below the share's
 * root: each walks down from the root one component at a time with
 * O_NOFOLLOW and acts through the directory it opened (share-walk.ts), and
 * copies, which cp makes, go through views bound from such an open
 * directory (the `view` operation, share-views.ts).
 */
import { randomBytes } from "node:crypto";
import {
  closeSync,
  constants as fsc,
  fchmodSync,
  fchownSync,
  fstatSync,
  fsyncSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  realpathSync,
  renameSync,
  rmSync,
  statfsSync,
  writeSync,
} from "node:fs";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { bindWithFlags, ownPlace, viewFlags } from "../../mount/bind";
import { dirIdentity } from "../../storage/dir-identity";
import { fsUsageOf } from "../../storage/fs-usage";
import { renameNoReplaceSync } from "../../storage/rename-no-replace";
import { META_DIR } from "./share-layout";
import { lockKey, unlockKey } from "./share-locks";
import { movedIfProven, toTrash, type Expected } from "./share-trash";
import { AgentError, ensureDirs, inDir, isErrno, removeTree, withDir, within } from "./share-walk";

export interface AgentRequest {
  id: number;
  op: string;
  args: Record<string, unknown>;
}

export type AgentReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; code: string; message: string };

const str = (a: Record<string, unknown>, k: string): string => {
  const v = a[k];
  if (typeof v !== "string" || v === "") throw new AgentError("EINVAL", `argument ${k} missing`);
  return v;
};
const num = (a: Record<string, unknown>, k: string): number | undefined => (typeof a[k] === "number" ? (a[k] as number) : undefined);

/** The path an op works on: {root, sub} reached without symlinks, or a plain {path} (a mount point the driver made). */
function place<T>(a: Record<string, unknown>, fn: (p: string) => T): T {
  if (typeof a.sub === "string") return within(str(a, "root"), a.sub, fn);
  return fn(str(a, "path"));
}

/** The record key: 32 hex digits, so it can never name a path outside its directory. */
function key(a: Record<string, unknown>): string {
  const k = str(a, "key");
  if (!/^[0-9a-f]{32}$/.test(k)) throw new AgentError("EINVAL", `key ${JSON.stringify(k)} is not 32 hex digits`);
  return k;
}

/** Where records are kept: volumes' markers, or snapshots' records. */
function recordDir(a: Record<string, unknown>): "volumes" | "snapshots" {
  return a.of === "snapshots" ? "snapshots" : "volumes";
}

/** Make the driver's directory `sub` under .csi-lab if it is missing (never through a symlink); work in it with inDir(). */
function meta(root: string, sub: string): void {
  ensureDirs(root, `${META_DIR}/${sub}`, 0o700);
}

/**
 * A directory being made in the share's tmp, as makeTemp named it
 * (.csi-lab/tmp/<name>): reached as within() reaches a place, and only if
 * it is still a directory — one swapped for a symlink is never renamed
 * into place (a volume or snapshot that is a link out of the share) nor
 * followed.
 */
function inTemp<T>(root: string, sub: string, fn: (at: string) => T): T {
  if (path.dirname(sub) !== `${META_DIR}/tmp`) throw new AgentError("EINVAL", `${sub} is not a directory in the share's ${META_DIR}/tmp`);
  return within(root, sub, (at) => {
    if (!lstatSync(at).isDirectory()) throw new AgentError("ELOOP", `${path.join(root, sub)} is no longer a directory (a symbolic link?); refusing to use it`);
    return fn(at);
  });
}

function setOwnerAndMode(dir: string, mode: number, uid: number | undefined, gid: number | undefined): void {
  withDir(dir, (fd) => {
    if (uid !== undefined || gid !== undefined) fchownSync(fd, uid ?? -1, gid ?? -1);
    fchmodSync(fd, mode); // after chown, which may clear set-ID bits
  });
}

/** Run `fn` on file `file` opened for reading, a symlink there not followed. */
function withFile<T>(file: string, fn: (fd: number) => T): T {
  const fd = openSync(file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

function writeAtomic(file: string, data: string): void {
  const tmp = `${file}.${randomBytes(4).toString("hex")}.tmp`;
  const fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, data);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
}

const OPS: Record<string, (a: Record<string, unknown>) => unknown> = {
  /** What is at a path: its kind and owner, or the errno (ENOENT, ESTALE, EIO…) as the error. */
  probe(a) {
    return place(a, (p) => {
      const st = lstatSync(p, { bigint: true });
      const kind = st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : st.isFile() ? "file" : "other";
      let empty: boolean | undefined;
      if (kind === "dir" && a.entries === true) empty = withDir(p, (fd) => readdirSync(`/proc/self/fd/${fd}`).length === 0);
      // nlink 0: a directory removed while something (a mount) still holds it.
      // Which directory this is: its inode number with its birth time or generation (an inode number
      // alone is reused at once by ext4 after a directory is removed; storage/dir-identity.ts).
      const { identity, v2 } = kind === "dir" ? dirIdentity(p, st.ino) : { identity: `${st.ino}:0`, v2: `${st.ino}:0` };
      return { kind, mode: Number(st.mode & 0o7777n), uid: Number(st.uid), gid: Number(st.gid), nlink: Number(st.nlink), identity, v2, empty };
    });
  },
  /** A path with symlinks resolved; with {root, sub}: the share's real path and sub, after checking no symlink is on the way. */
  realpath(a) {
    if (typeof a.sub !== "string") return realpathSync(str(a, "path"));
    within(str(a, "root"), a.sub, (p) => lstatSync(p));
    return path.join(realpathSync(str(a, "root")), a.sub);
  },
  statfs: (a) => fsUsageOf(statfsSync(str(a, "path"))),
  /**
   * A fresh directory in the share's work area, with the volume's mode and
   * owner; returns where it is below the root (.csi-lab/tmp/<name>), which
   * is how every later operation names it.
   */
  makeTemp(a) {
    const root = str(a, "root");
    const name = `${key(a)}.${randomBytes(4).toString("hex")}`;
    meta(root, "tmp");
    inDir(root, `${META_DIR}/tmp`, (tmp) => {
      mkdirSync(path.join(tmp, name), { mode: 0o700 });
      setOwnerAndMode(path.join(tmp, name), num(a, "mode") ?? 0o777, num(a, "uid"), num(a, "gid"));
    });
    return `${META_DIR}/tmp/${name}`;
  },
  /**
   * Mount a view of directory `sub` below the root at `at` (an empty
   * directory among the driver's own views): bound from the directory
   * opened by the walk, never from its path, so what cp then reads or
   * writes there is that directory whatever happens to the share's tree;
   * nosymfollow, so no symlink inside it is followed either; read-only
   * unless `writable` (read-only-view.ts).
   */
  view(a) {
    const at = str(a, "at");
    if (!path.isAbsolute(at)) throw new AgentError("EINVAL", `${at} is not an absolute path`);
    inDir(str(a, "root"), str(a, "sub"), (dir) => bindWithFlags(dir, ownPlace(at), viewFlags(a.writable === true)));
    return null;
  },
  /**
   * Move a made directory (tmp, from makeTemp) to subDir (the commit point); "existed" if subDir was there already: the temp
   * is removed. One step (renameNoReplaceSync, also without RENAME_NOREPLACE): an empty directory made there is never replaced.
   */
  commit(a) {
    const root = str(a, "root");
    const sub = str(a, "subDir");
    ensureDirs(root, path.dirname(sub));
    return inTemp(root, str(a, "tmp"), (tmp) =>
      within(root, sub, (target) => {
        if (renameNoReplaceSync(tmp, target) === "renamed") return "created";
        removeTree(tmp);
        return "existed";
      }),
    );
  },
  /**
   * Move subDir to the share's trash (the commit point of a delete); "absent" if it is not
   * there; "changed" if what was moved is not the directory `expect` names (movedIfProven).
   */
  trash(a) {
    return within(str(a, "root"), str(a, "subDir"), (target) => {
      const st = lstatSync(target, { throwIfNoEntry: false });
      if (!st) return "absent";
      if (st.isSymbolicLink()) throw new AgentError("ELOOP", `${str(a, "subDir")} is a symbolic link, not a volume directory`);
      return movedIfProven(a.expect as Expected | undefined, target, (then) => toTrash(str(a, "root"), target, str(a, "key"), then)) ? "trashed" : "changed";
    });
  },
  /**
   * Empty the share's trash (trash: true) and drop temps of one volume or
   * snapshot (tempsOf: key): its copies in tmp, and a record half-written
   * when a kill -9 of the driver took this agent with it. Nothing is followed out
   * of them, even a link swapped in meanwhile (removeTree).
   */
  clean(a) {
    const root = str(a, "root");
    const jobs: [string, (e: string) => boolean][] = [];
    if (a.trash === true) jobs.push(["trash", () => true]);
    if (typeof a.tempsOf === "string") {
      const k = a.tempsOf;
      jobs.push(["tmp", (e) => e.startsWith(`${k}.`)]);
      for (const dir of ["volumes", "snapshots"]) jobs.push([dir, (e) => e.startsWith(`${k}.json.`) && e.endsWith(".tmp")]);
    }
    for (const [sub, pick] of jobs) {
      try {
        inDir(root, `${META_DIR}/${sub}`, (dir) => {
          for (const e of readdirSync(dir).filter(pick)) removeTree(path.join(dir, e));
        });
      } catch (err) {
        if (!isErrno(err, "ENOENT")) throw err;
      }
    }
    return null;
  },
  /** Rename subDir to archived-<name>-<stamp> beside it; "absent" if it is not there. */
  archive(a) {
    const sub = str(a, "subDir");
    return within(str(a, "root"), sub, (target) => {
      const st = lstatSync(target, { throwIfNoEntry: false });
      if (!st) return "absent";
      if (st.isSymbolicLink()) throw new AgentError("ELOOP", `${sub} is a symbolic link, not a volume directory`);
      const name = `archived-${path.basename(sub)}-${str(a, "stamp")}`;
      const moved = movedIfProven(a.expect as Expected | undefined, target, (then) => {
        const to = path.join(path.dirname(target), name);
        renameSync(target, to);
        return then(to);
      });
      return moved ? path.join(path.dirname(sub), name) : "changed";
    });
  },
  chmod(a) {
    place(a, (p) => withDir(p, (fd) => fchmodSync(fd, num(a, "mode")!)));
    return null;
  },
  /** A pod's fsGroup: group owner, g+rwx and setgid on the volume's root (as volume-root.ts does locally). */
  mountGroup(a) {
    const gid = num(a, "gid")!;
    withDir(str(a, "path"), (fd) => {
      const st = fstatSync(fd);
      const want = (st.mode & 0o7777) | 0o2070;
      if (st.gid === gid && (st.mode & 0o7777) === want) return;
      if (st.gid !== gid) fchownSync(fd, st.uid, gid);
      fchmodSync(fd, want);
    });
    return null;
  },
  /** A volume's marker, or with {of: "snapshots"} a snapshot's record. */
  writeRecord(a) {
    meta(str(a, "root"), recordDir(a)); // made if missing, never through a symlink
    inDir(str(a, "root"), `${META_DIR}/${recordDir(a)}`, (dir, fd) => {
      writeAtomic(path.join(dir, `${key(a)}.json`), str(a, "data"));
      fsyncSync(fd); // the rename too is on disk before the call answers: a record once written survives a power cut
    });
    return null;
  },
  readRecord(a) {
    try {
      return within(str(a, "root"), `${META_DIR}/${recordDir(a)}/${key(a)}.json`, (p) => withFile(p, (fd) => readFileSync(fd, "utf8")));
    } catch (err) {
      if (isErrno(err, "ENOENT")) return null;
      throw err;
    }
  },
  removeRecord(a) {
    try {
      inDir(str(a, "root"), `${META_DIR}/${recordDir(a)}`, (dir, fd) => {
        rmSync(path.join(dir, `${key(a)}.json`), { force: true });
        if (a.sync === true) fsyncSync(fd);
      });
    } catch (err) {
      if (!isErrno(err, "ENOENT")) throw err;
    }
    return null;
  },
  /**
   * Remove a volume's marker only if it says `data`, word for word: the one a failed create wrote. Another
   * driver's, written at that key meanwhile, stays: read first, and only if it matches moved aside (under a name
   * `clean` sweeps), so what is checked is the very file removed; not ours after all (written between the read
   * and the move), it is linked back — link(2) never replaces: should yet another have been written there since,
   * that newer one stays, as it would have over ours.
   */
  removeOwnRecord(a) {
    const data = str(a, "data");
    try {
      return inDir(str(a, "root"), `${META_DIR}/volumes`, (dir, fd) => {
        const file = path.join(dir, `${key(a)}.json`);
        const read = (p: string) => withFile(p, (f) => readFileSync(f, "utf8"));
        if (read(file) !== data) return "kept";
        const aside = `${file}.${randomBytes(4).toString("hex")}.tmp`;
        renameSync(file, aside);
        const ours = read(aside) === data;
        if (!ours) {
          try {
            linkSync(aside, file);
          } catch (err) {
            if (!isErrno(err, "EEXIST")) throw err;
          }
        }
        rmSync(aside, { force: true });
        fsyncSync(fd);
        return ours ? "removed" : "kept";
      });
    } catch (err) {
      if (isErrno(err, "ENOENT")) return "absent";
      throw err;
    }
  },
  /**
   * Put a snapshot's copy, made in tmp, in its place (snapshots/<key>),
   * before its record is written: whatever is there without a record (a
   * copy a crash or a failed delete left) is moved to the trash first.
   */
  placeSnapshot(a) {
    const root = str(a, "root");
    meta(root, "snapshots");
    return inDir(root, `${META_DIR}/snapshots`, (dir, fd) =>
      inTemp(root, str(a, "tmp"), (tmp) => {
        const target = path.join(dir, key(a));
        const stale = lstatSync(target, { throwIfNoEntry: false }) !== undefined;
        if (stale) toTrash(root, target, key(a));
        renameSync(tmp, target);
        fsyncSync(fd);
        return stale ? "replaced" : "placed";
      }),
    );
  },
  /** Move a snapshot's copy to the trash (after its record is gone); "absent" if it is not there. */
  trashSnapshot(a) {
    try {
      return within(str(a, "root"), `${META_DIR}/snapshots/${key(a)}`, (target) => {
        if (!lstatSync(target, { throwIfNoEntry: false })) return "absent";
        toTrash(str(a, "root"), target, key(a));
        return "trashed";
      });
    } catch (err) {
      if (isErrno(err, "ENOENT")) return "absent"; // no snapshots directory: nothing to trash
      throw err;
    }
  },
  /** Hold, or release, the share lock of a volume or snapshot (share-locks.ts); `remove`: its file too, the object gone. */
  lock: (a) => lockKey(str(a, "root"), key(a), a.shared === true),
  unlock: (a) => unlockKey(str(a, "root"), key(a), a.remove === true),
  /** For tests of the deadline: an operation that never ends. */
  hang() {
    const sab = new Int32Array(new SharedArrayBuffer(4));
    for (;;) Atomics.wait(sab, 0, 0);
  },
};

function handle(req: AgentRequest): AgentReply {
  const fn = OPS[req.op];
  if (!fn) return { id: req.id, ok: false, code: "ENOSYS", message: `unknown operation ${req.op}` };
  try {
    return { id: req.id, ok: true, value: fn(req.args) ?? null };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { id: req.id, ok: false, code: typeof e.code === "string" ? e.code : "EIO", message: e.message };
  }
}

if (require.main === module) {
  const rl = createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    const reply = handle(JSON.parse(line) as AgentRequest);
    process.stdout.write(JSON.stringify(reply) + "\n");
  });
  rl.on("close", () => process.exit(0));
}
