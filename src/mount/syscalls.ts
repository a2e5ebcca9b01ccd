/**
 * mount(2) and umount2(2), called directly.
 *
 * A bind mount makes one directory appear at a second place in the tree;
 * it is how a volume's directory reaches a pod without copying anything.
 * The usual way to make one from a program is to run mount(8), but starting
 * a process costs a millisecond or more, far more than the kernel's work
 * (about 30 µs for mount + unmount here). koffi, a foreign-function
 * interface that ships prebuilt for Node, lets us call the C library's
 * mount() and umount2() directly. mount(8) stays in use where its helpers
 * matter (NFS), see src/mount/mount-command.ts.
 */
import koffi from "koffi";
import { libc } from "./libc";
import { MNT, MS } from "./options";
import { observed, report } from "./observer";

type MountArgs = [source: string | null, target: string, fstype: string | null, flags: number, data: string | null];
type Mount = ((...args: MountArgs) => number) & {
  async(...args: [...MountArgs, (err: unknown, rc: number) => void]): void;
};
const mountFn = libc.func(
  "int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data)",
) as Mount;
const EINVAL = 22;
const ENOENT = 2;
const EAGAIN = 11;
const EBUSY = 16;

type Umount2 = ((target: string, flags: number) => number) & {
  async(target: string, flags: number, cb: (err: unknown, rc: number) => void): void;
};
const umount2Fn = libc.func("int umount2(const char *target, int flags)") as Umount2;
const strerrorFn = libc.func("const char *strerror(int errnum)") as (errnum: number) => string;
const mknodFn = libc.func("int mknod(const char *path, uint32_t mode, uint64_t dev)") as (path: string, mode: number, dev: bigint) => number;

// errno numbers → names, for the ones a mount can produce. Node's own
// errors carry names ("ENOENT"), so ours do too.
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM", 2: "ENOENT", 5: "EIO", 12: "ENOMEM", 13: "EACCES", 15: "ENOTBLK", 16: "EBUSY",
  19: "ENODEV", 20: "ENOTDIR", 22: "EINVAL", 24: "EMFILE", 30: "EROFS", 36: "ENAMETOOLONG",
  40: "ELOOP", 110: "ETIMEDOUT", 116: "ESTALE",
};

// Every other errno by name, from koffi's table (loop, quota and file
// system ioctls can answer ENOSPC, EDQUOT, ENOTTY, EOPNOTSUPP, …).
for (const [name, value] of Object.entries(koffi.os.errno as Record<string, number>)) ERRNO_NAMES[value] ??= name;

/** An error shaped like Node's own system errors (code, errno, syscall, path). */
export class SyscallError extends Error {
  readonly code: string;
  readonly errno: number;
  readonly syscall: string;
  readonly path: string;
  constructor(syscall: string, errno: number, path: string) {
    const code = ERRNO_NAMES[errno] ?? `E${errno}`;
    super(`${code}: ${strerrorFn(errno)}, ${syscall} '${path}'`);
    this.code = code;
    this.errno = errno;
    this.syscall = syscall;
    this.path = path;
  }
}

function check(rc: number, syscall: string, path: string): void {
  if (rc !== 0) throw new SyscallError(syscall, koffi.errno(), path);
}

const S_IFBLK = 0o060000;
const S_IFCHR = 0o020000;

/**
 * Make a block device node (as glibc's makedev packs major and minor).
 * Needed in containers, whose /dev is a copy made at start: a loop device
 * the kernel creates later exists, but has no node there.
 */
export function mknodBlock(path: string, major: number, minor: number, perm = 0o600): void {
  check(mknodFn(path, S_IFBLK | perm, deviceNumber(major, minor)), "mknod", path);
}

/** Make a character device node (e.g. /dev/loop-control, 10:237). */
export function mknodChar(path: string, major: number, minor: number, perm = 0o600): void {
  check(mknodFn(path, S_IFCHR | perm, deviceNumber(major, minor)), "mknod", path);
}

/** dev_t as glibc's makedev() packs it. */
function deviceNumber(major: number, minor: number): bigint {
  return ((BigInt(major) & 0xfffff000n) << 32n) | ((BigInt(major) & 0xfffn) << 8n) | ((BigInt(minor) & 0xffffff00n) << 12n) | (BigInt(minor) & 0xffn);
}

/** Bind `source` at `target` (both must exist and be of the same kind). */
export function bindMount(source: string, target: string): void {
  observed("bind", () => check(mountFn(source, target, null, MS.BIND, null), "mount", target));
}

/**
 * Apply per-mount flags (ro, nosuid, …) to an existing bind mount. A bind
 * mount starts with its source's flags; changing them takes a second call
 * with MS_REMOUNT|MS_BIND.
 */
export function remountBind(target: string, bits: number): void {
  observed("remount", () => check(mountFn(null, target, null, MS.REMOUNT | MS.BIND | bits, null), "mount", target));
}

/** Mount a file system (used for loop devices and tmpfs in tests). */
export function mountFs(source: string, target: string, fstype: string, bits: number, data: string | null): void {
  observed("mount", () => check(mountFn(source, target, fstype, bits, data), "mount", target));
}

/**
 * The same on a worker thread: mounting a real file system reads its
 * journal and can take milliseconds, which must not stall other calls.
 */
export function mountFsAsync(source: string, target: string, fstype: string, bits: number, data: string | null): Promise<void> {
  return new Promise((resolve, reject) => {
    mountFn.async(source, target, fstype, bits, data, (err, rc) => {
      if (err) reject(err);
      else if (rc !== 0) reject(new SyscallError("mount", koffi.errno(), target));
      else resolve();
    });
  });
}

/**
 * Unmount `target`. UMOUNT_NOFOLLOW: a symlink at the target is never
 * followed, so a planted link cannot make us unmount something else.
 */
export function unmount(target: string, opts: { detach?: boolean } = {}): void {
  observed("unmount", () => check(umount2Fn(target, MNT.NOFOLLOW | (opts.detach ? MNT.DETACH : 0)), "umount2", target));
}

/**
 * Unmount on a worker thread, if `target` is a mount point; resolves false
 * when it is not (umount2 answers EINVAL for a directory that is not a
 * mount point, ENOENT for a missing path), so callers need not read the
 * mount table first. An unmount waits for the kernel to be sure nobody
 * still walks the old mount (an RCU grace period, often 0.1 ms or more),
 * and that wait must not stall every other call.
 */
export async function unmountIfMounted(target: string, opts: { detach?: boolean } = {}): Promise<boolean> {
  const started = process.hrtime.bigint();
  const flags = MNT.NOFOLLOW | (opts.detach ? MNT.DETACH : 0);
  const { rc, errno } = await new Promise<{ rc: number; errno: number }>((resolve, reject) => {
    umount2Fn.async(target, flags, (err, rc) => (err ? reject(err) : resolve({ rc, errno: rc === 0 ? 0 : koffi.errno() })));
  });
  if (rc !== 0 && (errno === EINVAL || errno === ENOENT)) return false; // nothing was mounted: not an unmount to report
  report("unmount", started, rc === 0);
  if (rc !== 0) throw new SyscallError("umount2", errno, target);
  return true;
}

/**
 * What one umount2(MNT_EXPIRE) did to the mount on top at a place:
 *   marked       it was idle, and now carries the kernel's expiry mark (EAGAIN);
 *   unmounted    it was idle and marked already, and is gone;
 *   busy         it is in use, or has mounts on or inside it (EBUSY): nothing was done;
 *   not-mounted  nothing is mounted there (EINVAL, ENOENT).
 */
export type ExpireAnswer = "marked" | "unmounted" | "busy" | "not-mounted";

/**
 * umount2(MNT_EXPIRE), on a worker thread: how an unmount acts on one
 * mount only, and not on whatever is on top at the name when the call
 * comes (src/node/volume-owner.ts). umount2 takes a name, and the kernel
 * unmounts the mount on top there as the call finds it: a descriptor of
 * the proven mount does not help (/proc/self/fd/N leads to the top of
 * what is stacked at that place too, and an open descriptor makes the
 * mount busy). The expiry mark does: the first call marks the mount on
 * top, a second unmounts the mount on top only if it still carries the
 * mark. A mount stacked on it in between has none (the second call only
 * marks it), and any use of the marked mount — a path walk, a descriptor
 * closed — clears the mark. Reading the mount table does not.
 * UMOUNT_NOFOLLOW as in unmount() above.
 */
export async function expireMount(target: string): Promise<ExpireAnswer> {
  const started = process.hrtime.bigint();
  const { rc, errno } = await new Promise<{ rc: number; errno: number }>((resolve, reject) => {
    umount2Fn.async(target, MNT.EXPIRE | MNT.NOFOLLOW, (err, rc) => (err ? reject(err) : resolve({ rc, errno: rc === 0 ? 0 : koffi.errno() })));
  });
  return expireAnswer(rc, errno, started, target);
}

/**
 * The same on this thread, for the first call, which only marks a mount
 * (a flag set under a lock, no wait for the kernel's grace period), so that
 * a trip to a worker thread and back is not paid for it. (A mount someone
 * else marked already is unmounted by it, here: that is rare.)
 */
export function markMountExpired(target: string): ExpireAnswer {
  const started = process.hrtime.bigint();
  const rc = umount2Fn(target, MNT.EXPIRE | MNT.NOFOLLOW);
  return expireAnswer(rc, rc === 0 ? 0 : koffi.errno(), started, target);
}

function expireAnswer(rc: number, errno: number, started: bigint, target: string): ExpireAnswer {
  if (rc === 0) {
    report("unmount", started, true);
    return "unmounted";
  }
  if (errno === EAGAIN) return "marked";
  if (errno === EBUSY) return "busy";
  if (errno === EINVAL || errno === ENOENT) return "not-mounted";
  report("unmount", started, false);
  throw new SyscallError("umount2", errno, target);
}
