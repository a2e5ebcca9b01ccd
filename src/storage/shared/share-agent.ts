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
 */
import { randomBytes } from "node:crypto";
import {
  closeSync,
  constants as fsc,
  fchmodSync,
  fchownSync,
  fstatSync,
  fsyncSync,
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
import { fsUsageOf } from "../fs-usage";

export interface AgentRequest {
  id: number;
  op: string;
  args: Record<string, unknown>;
}

export type AgentReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; code: string; message: string };

/** The driver's own directory on every share: work areas and records, never inside a volume. */
export const META_DIR = ".csi-lab";

class AgentError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const str = (a: Record<string, unknown>, k: string): string => {
  const v = a[k];
  if (typeof v !== "string" || v === "") throw new AgentError("EINVAL", `argument ${k} missing`);
  return v;
};
const num = (a: Record<string, unknown>, k: string): number | undefined => (typeof a[k] === "number" ? (a[k] as number) : undefined);

function withDir<T>(dir: string, fn: (fd: number) => T): T {
  const fd = openSync(dir, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

/** mkdir -p below `root`, refusing to pass through a symlink (a planted one could lead out of the share). */
function ensureDirs(root: string, rel: string, mode = 0o755): string {
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

function meta(root: string, sub: string): string {
  return ensureDirs(root, `${META_DIR}/${sub}`, 0o700);
}

function setOwnerAndMode(dir: string, mode: number, uid: number | undefined, gid: number | undefined): void {
  withDir(dir, (fd) => {
    if (uid !== undefined || gid !== undefined) fchownSync(fd, uid ?? -1, gid ?? -1);
    fchmodSync(fd, mode); // after chown, which may clear set-ID bits
  });
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
    const st = lstatSync(str(a, "path"));
    const kind = st.isDirectory() ? "dir" : st.isSymbolicLink() ? "symlink" : st.isFile() ? "file" : "other";
    // nlink 0: a directory removed while something (a mount) still holds it.
    return { kind, mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, nlink: st.nlink };
  },
  realpath: (a) => realpathSync(str(a, "path")),
  statfs: (a) => fsUsageOf(statfsSync(str(a, "path"))),
  /** A fresh directory in the share's work area, with the volume's mode and owner; returns its path. */
  makeTemp(a) {
    const dir = path.join(meta(str(a, "root"), "tmp"), `${str(a, "key")}.${randomBytes(4).toString("hex")}`);
    mkdirSync(dir, { mode: 0o700 });
    setOwnerAndMode(dir, num(a, "mode") ?? 0o777, num(a, "uid"), num(a, "gid"));
    return dir;
  },
  /** Move a made directory to subDir (the commit point). "existed" if subDir was there already: the temp is removed. */
  commit(a) {
    const root = str(a, "root");
    const sub = str(a, "subDir");
    const tmp = str(a, "tmp");
    const target = path.join(ensureDirs(root, path.dirname(sub)), path.basename(sub));
    if (lstatSync(target, { throwIfNoEntry: false })) {
      rmSync(tmp, { recursive: true, force: true });
      return "existed";
    }
    renameSync(tmp, target);
    return "created";
  },
  /** Move subDir to the share's trash (the commit point of a delete); "absent" if it is not there. */
  trash(a) {
    const target = path.join(str(a, "root"), str(a, "subDir"));
    const st = lstatSync(target, { throwIfNoEntry: false });
    if (!st) return "absent";
    if (st.isSymbolicLink()) throw new AgentError("ELOOP", `${target} is a symbolic link, not a volume directory`);
    renameSync(target, path.join(meta(str(a, "root"), "trash"), `${str(a, "key")}.${randomBytes(4).toString("hex")}`));
    return "trashed";
  },
  /** Empty the share's trash (trash: true) and drop temps of one volume (tempsOf: key); rm never follows symlinks. */
  clean(a) {
    const root = str(a, "root");
    const jobs: [string, (e: string) => boolean][] = [];
    if (a.trash === true) jobs.push(["trash", () => true]);
    if (typeof a.tempsOf === "string") jobs.push(["tmp", (e) => e.startsWith(`${a.tempsOf as string}.`)]);
    for (const [sub, pick] of jobs) {
      let entries: string[];
      try {
        entries = readdirSync(path.join(root, META_DIR, sub));
      } catch {
        continue;
      }
      for (const e of entries.filter(pick)) rmSync(path.join(root, META_DIR, sub, e), { recursive: true, force: true });
    }
    return null;
  },
  /** Rename subDir to archived-<name>-<stamp> beside it; "absent" if it is not there. */
  archive(a) {
    const target = path.join(str(a, "root"), str(a, "subDir"));
    const st = lstatSync(target, { throwIfNoEntry: false });
    if (!st) return "absent";
    if (st.isSymbolicLink()) throw new AgentError("ELOOP", `${target} is a symbolic link, not a volume directory`);
    const to = path.join(path.dirname(target), `archived-${path.basename(target)}-${str(a, "stamp")}`);
    renameSync(target, to);
    return path.relative(str(a, "root"), to);
  },
  chmod(a) {
    withDir(str(a, "path"), (fd) => fchmodSync(fd, num(a, "mode")!));
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
  writeRecord(a) {
    writeAtomic(path.join(meta(str(a, "root"), "volumes"), `${str(a, "key")}.json`), str(a, "data"));
    return null;
  },
  readRecord(a) {
    try {
      return readFileSync(path.join(str(a, "root"), META_DIR, "volumes", `${str(a, "key")}.json`), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw err;
    }
  },
  removeRecord(a) {
    rmSync(path.join(str(a, "root"), META_DIR, "volumes", `${str(a, "key")}.json`), { force: true });
    return null;
  },
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
