/**
 * One driver per root: an exclusive lock on <root>/.driver.lock, held for the process's life.
 *
 * Everything the driver knows is on disk under --root, and its start-up
 * sweep finishes or removes what an interrupted run left there (.tmp,
 * .trash, half-made snapshots). That is only right if no other process is
 * in the middle of making those things — yet two drivers can meet on one
 * root: a DaemonSet pod replaced while the old one still finishes calls in
 * its grace period, or a second driver started by mistake. The newcomer's
 * sweep then "finishes" the live one's create under it, or removes its
 * temporaries, and both write records.
 *
 * So before the driver sweeps or writes anything in the root, it takes
 * flock(2) LOCK_EX on a file there. The kernel holds the lock on the open
 * file, not on a process or a path: it is released when the process ends
 * however it ends (kill -9 included), and it is the same lock whatever
 * mount or PID namespace the other driver runs in, as long as both see the
 * same file system. The descriptor is close-on-exec (Node opens every file
 * so), so a tool the driver runs cannot carry the lock past the driver.
 *
 * A second driver waits for the lock a bounded time, polling (a blocking
 * flock would hold a thread that no timeout can free), and says once on
 * whom it waits: the holder writes its pid, host name and start time into
 * the file, and /proc/locks names the pid as this process's PID namespace
 * sees it (0 when the holder is in a namespace this one cannot see).
 */
import { closeSync, constants as fsc, fstatSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, writeSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import koffi from "koffi";
import { libc } from "../mount/libc";

const flockFn = libc.func("int flock(int fd, int operation)") as (fd: number, operation: number) => number;
const LOCK_EX = 2;
const LOCK_NB = 4;
const EINTR = 4;
const EWOULDBLOCK = 11;

/** The lock file's name in the root. */
export const ROOT_LOCK_FILE = ".driver.lock";

/** Who holds a root's lock, as far as this process can tell. */
export interface RootLockHolder {
  /** The holder's pid as this process's PID namespace sees it (/proc/locks); undefined if it cannot see it. */
  pid: number | undefined;
  /** What the holder wrote into the lock file when it took the lock: its pid in its own namespace, host name, start. */
  recorded: string | undefined;
}

export interface RootLockOptions {
  /** How long to wait for a driver that holds the lock; 0: not at all. */
  waitMs: number;
  /** Called once, when the lock is found held and this process starts to wait. */
  onWait?: (holder: RootLockHolder) => void;
  /** How often to try again while waiting. */
  pollMs?: number;
}

/** A root that another driver holds and did not free in time. */
export class RootInUseError extends Error {
  override readonly name = "RootInUseError";
}

/** The descriptors of the locks this process holds: kept open, and so locked, until it exits. */
const held = new Map<string, number>();

/**
 * Take the root's lock (making the root if it does not exist yet), waiting
 * up to `opts.waitMs` for another driver to let it go. Resolves once it is
 * held; rejects with RootInUseError naming the root and the holder if it is
 * not freed in time. Taking a root this process already holds is a no-op.
 */
export async function lockRoot(root: string, opts: RootLockOptions): Promise<void> {
  if (held.has(root)) return;
  mkdirSync(root, { recursive: true });
  const file = path.join(root, ROOT_LOCK_FILE);
  // O_NOFOLLOW: a symbolic link put at the name is refused, not followed out of the root.
  const fd = openSync(file, fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600);
  try {
    if (!fstatSync(fd).isFile()) throw new Error(`${file} is not a regular file; remove it and start again`);
    const started = Date.now();
    let told = false;
    while (!tryLock(fd, file)) {
      const holder = holderOf(fd);
      if (!told) opts.onWait?.(holder);
      told = true;
      if (Date.now() - started >= opts.waitMs) {
        throw new RootInUseError(
          `--root ${root} is in use by another driver (${describeHolder(holder)}), which did not let it go within ${opts.waitMs / 1000} s; ` +
            "stop that driver, or give --root-lock-timeout more time",
        );
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(opts.pollMs ?? 200, Math.max(1, opts.waitMs - (Date.now() - started)))));
    }
    // Ours now: say who holds it, for the next driver that waits (not a record: nothing reads it but a person and that message).
    const note = `pid ${process.pid} on host ${os.hostname()}, since ${new Date().toISOString()}\n`;
    ftruncateSync(fd, 0);
    writeSync(fd, note, 0);
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  held.set(root, fd);
}

/** One try at the lock: true if taken, false if another open file holds it. */
function tryLock(fd: number, file: string): boolean {
  for (;;) {
    if (flockFn(fd, LOCK_EX | LOCK_NB) === 0) return true;
    const errno = koffi.errno();
    if (errno === EWOULDBLOCK) return false;
    if (errno !== EINTR) throw Object.assign(new Error(`flock ${file}: errno ${errno}`), { errno });
  }
}

/** Who holds the lock on the file open at `fd`: /proc/locks by device and inode, and the file's own note. */
export function holderOf(fd: number, locks = readProcLocks()): RootLockHolder {
  const st = fstatSync(fd, { bigint: true });
  const major = ((st.dev >> 8n) & 0xfffn) | ((st.dev >> 32n) & ~0xfffn);
  const minor = (st.dev & 0xffn) | ((st.dev >> 12n) & ~0xffn);
  const id = `${major.toString(16).padStart(2, "0")}:${minor.toString(16).padStart(2, "0")}:${st.ino}`;
  let pid: number | undefined;
  for (const line of locks.split("\n")) {
    // "1: FLOCK  ADVISORY  WRITE 4242 00:2d:1234 0 EOF" (waiters' lines begin "1: -> FLOCK …")
    const m = /^\d+:\s+FLOCK\s+\S+\s+WRITE\s+(-?\d+)\s+([0-9a-f]+:[0-9a-f]+:\d+)\s/.exec(line);
    if (m && m[2] === id && Number(m[1]) > 0) pid = Number(m[1]);
  }
  const note = Buffer.alloc(512);
  const recorded = note.subarray(0, readSync(fd, note, 0, note.length, 0)).toString("utf8").trim() || undefined;
  return { pid, recorded };
}

function readProcLocks(): string {
  try {
    return readFileSync("/proc/locks", "utf8");
  } catch {
    return "";
  }
}

/** The holder in words, for a log line or an error message. */
export function describeHolder(h: RootLockHolder): string {
  const seen = h.pid !== undefined ? `pid ${h.pid} here` : "a process this PID namespace cannot see";
  return h.recorded ? `${seen}; it wrote: ${h.recorded}` : seen;
}
