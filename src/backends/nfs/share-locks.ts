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
 * the share is mounted with `nolock` or `local_lock=flock`.
 *
 * Each lock file is empty, and goes with its object: the holder of the lock,
 * exclusive, at the end of a DeleteVolume or DeleteSnapshot done (or of a
 * create that failed and left nothing), removes it while it still holds it,
 * then lets go. Another process may have opened that file meanwhile, and gets
 * its lock once it is let go — of a file no longer on the share, while a
 * third may already hold the name's new one. So taking a lock is: open the
 * name (made if missing), flock, then look the name up again; not the file
 * locked (device and inode differ, or none is there), the lock is let go and
 * taken again, a few times at most, then answered as held. Only the holder
 * of the file the name is removes it, so the name stays that file while it
 * is held, and two never hold "the" lock. A kill at any point leaves at
 * worst an empty file there, taken as any other. (On NFS the client renames
 * a file removed while open to .nfs…, and removes that once it is closed.)
 */
import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, unlinkSync } from "node:fs";
import * as path from "node:path";
import koffi from "koffi";
import { libc } from "../../mount/libc";
import { META_DIR } from "./share-layout";
import { AgentError, ensureDirs, inDir, isErrno } from "./share-walk";

const flockFn = libc.func("int flock(int fd, int operation)") as (fd: number, operation: number) => number;
const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const EINTR = 4;
const EWOULDBLOCK = 11;
const ESTALE = 116;
/** Tries at a lock whose file was removed and made again meanwhile, before the call answers as if it were held. */
const TRIES = 8;

/** Where the lock files are, below the share's root. */
export const LOCKS_DIR = `${META_DIR}/locks`;

/** The locks this agent holds: key to open file, and whether shared. */
const held = new Map<string, { fd: number; shared: boolean }>();

/**
 * Take the lock of `key` (32 hex digits, checked by the caller) on the share at `root`, exclusive or (`shared`) shared with
 * other readers; EWOULDBLOCK when another holds it in a mode that excludes this one, or its file was removed and made
 * again under this agent every time it tried.
 */
export function lockKey(root: string, key: string, shared = false): null {
  if (held.has(key)) throw new AgentError("EWOULDBLOCK", `this agent already holds the lock of ${key}`);
  const where = path.join(root, LOCKS_DIR, key);
  ensureDirs(root, LOCKS_DIR, 0o700);
  for (let i = 0; i < TRIES; i++) {
    const fd = inDir(root, LOCKS_DIR, (dir) => openSync(path.join(dir, key), fsc.O_RDWR | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600));
    let errno = 0;
    while (flockFn(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) !== 0 && (errno = koffi.errno()) === EINTR);
    if (errno === 0 && stillNamed(root, key, fd)) {
      held.set(key, { fd, shared });
      return null;
    }
    closeSync(fd);
    if (errno === EWOULDBLOCK) throw new AgentError("EWOULDBLOCK", `${where} is locked by another process`);
    if (errno !== 0 && errno !== ESTALE) throw new AgentError("EIO", `flock ${where}: errno ${errno}`);
    // Removed by its holder before this agent had it (ESTALE: on NFS, removed on the server): the name's lock is another file.
  }
  throw new AgentError("EWOULDBLOCK", `${where} was removed and made again ${TRIES} times while this agent took it`);
}

/**
 * Whether the locks directory's entry `key` is still the file open as `fd`: not removed (and maybe made again) by its
 * holder between this agent's open and its flock. The directory is opened anew for the look: on NFS that revalidates
 * it with the server (close-to-open), and a directory changed since the client last looked makes it look the name up
 * on the server again, not answer from its cache. Same device and inode (on NFS, the fileid).
 */
function stillNamed(root: string, key: string, fd: number): boolean {
  try {
    const mine = fstatSync(fd, { bigint: true });
    if (mine.nlink === 0n) return false;
    const named = inDir(root, LOCKS_DIR, (dir) => lstatSync(path.join(dir, key), { bigint: true }));
    return named.dev === mine.dev && named.ino === mine.ino;
  } catch (err) {
    if (isErrno(err, "ENOENT") || isErrno(err, "ESTALE")) return false;
    throw err;
  }
}

/**
 * Release the lock of `key`: its file closed (what releases an flock). With `remove` (the volume or snapshot is gone)
 * and the lock held exclusive, its file is removed first, while it is still held: whoever opened it meanwhile and
 * gets it after this finds the name no longer its file, and takes the lock again on the name's new one. Never under a
 * shared lock: another reader holds that very file, and a third would make a new one and hold "the" lock exclusive
 * beside it. A file not removed (a share that fails it, a kill before) is only one left, as before.
 */
export function unlockKey(root: string, key: string, remove = false): boolean {
  const lock = held.get(key);
  held.delete(key);
  if (lock === undefined) return false;
  let removed = false;
  try {
    if (remove && !lock.shared) {
      removed = inDir(root, LOCKS_DIR, (dir) => {
        unlinkSync(path.join(dir, key));
        return true;
      });
    }
  } catch {
    // Left in place: a stray empty file, which the next holder of the lock removes when it is done.
  } finally {
    closeSync(lock.fd);
  }
  return removed;
}
