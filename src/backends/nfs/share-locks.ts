/**
 * Per-name locks on a share, for controllers that do not share a root.
 *
 * A volume's or a snapshot's making and deleting on a share is several steps
 * (a temp made and filled, the marker or record written, a rename into place,
 * a clean-up), and each controller serialises its own calls per volume. Yet
 * two controllers, each with its own --root, can act on one share at once: a
 * rolling update of the controller Deployment, or a partition, runs two
 * provisioners for a while. Their steps would interleave — one's clean-up
 * removing the other's temp, one's marker written over the other's, a delete's
 * marker removal landing after the other's create — and leave a directory
 * whose marker names another, or a marker without its directory.
 *
 * So those steps run holding flock(2) LOCK_EX on <share>/.csi-lab/locks/<key>,
 * taken without waiting: held, the call answers ABORTED and the CO retries.
 * A call that only reads a volume or snapshot — the copy a snapshot, a clone
 * or a restore makes of it — holds LOCK_SH on its key meanwhile: a delete on
 * the other controller then answers ABORTED instead of trashing what is
 * being copied, while copies of one source on both controllers go on side by
 * side. A call holding two (its new object's, then its source's) takes them
 * in that order; neither waits, so that cannot deadlock. The
 * lock is the share agent's open file (share-io.ts keeps that agent for the
 * call), so it is released however the holder ends — the call done, the agent
 * killed at a deadline, the driver killed — and on NFS the client takes it on
 * the server (Linux emulates flock with whole-file POSIX locks there), unless
 * the share is mounted with `nolock` or `local_lock=flock`. Lock files stay
 * (removing one while another opens it would let two hold "the" lock); each is
 * empty.
 */
import { closeSync, constants as fsc, openSync } from "node:fs";
import * as path from "node:path";
import koffi from "koffi";
import { libc } from "../../mount/libc";
import { META_DIR } from "./share-layout";
import { AgentError, ensureDirs, inDir } from "./share-walk";

const flockFn = libc.func("int flock(int fd, int operation)") as (fd: number, operation: number) => number;
const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const EINTR = 4;
const EWOULDBLOCK = 11;

/** Where the lock files are, below the share's root. */
export const LOCKS_DIR = `${META_DIR}/locks`;

/** The locks this agent holds: key to open file. */
const held = new Map<string, number>();

/**
 * Take the lock of `key` (32 hex digits, checked by the caller) on the share at `root`, exclusive or (`shared`) shared with
 * other readers; EWOULDBLOCK when another holds it in a mode that excludes this one.
 */
export function lockKey(root: string, key: string, shared = false): null {
  if (held.has(key)) throw new AgentError("EWOULDBLOCK", `this agent already holds the lock of ${key}`);
  ensureDirs(root, LOCKS_DIR, 0o700);
  const fd = inDir(root, LOCKS_DIR, (dir) => openSync(path.join(dir, key), fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600));
  for (;;) {
    if (flockFn(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) === 0) break;
    const errno = koffi.errno();
    if (errno === EINTR) continue;
    closeSync(fd);
    if (errno === EWOULDBLOCK) throw new AgentError("EWOULDBLOCK", `${path.join(root, LOCKS_DIR, key)} is locked by another process`);
    throw new AgentError("EIO", `flock ${path.join(root, LOCKS_DIR, key)}: errno ${errno}`);
  }
  held.set(key, fd);
  return null;
}

/** Release the lock of `key`: its file closed (what releases an flock). */
export function unlockKey(key: string): null {
  const fd = held.get(key);
  held.delete(key);
  if (fd !== undefined) closeSync(fd);
  return null;
}
