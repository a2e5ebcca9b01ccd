/**
 * statx(2), called directly.
 *
 * Node's own stat calls use statx underneath but hand back only what
 * stat(2) also has, and never its mask: whether a field was filled at all.
 * Two things the driver needs are only here: whether a path is the root of
 * a mount (STATX_ATTR_MOUNT_ROOT, mount-root.ts) and a file's birth time
 * (storage/dir-identity.ts). Each caller lays out its own buffer and reads
 * the fields it asked for, at the offsets of struct statx below.
 *
 * A kernel before 4.11 has no statx (ENOSYS), and a container whose seccomp
 * profile predates it refuses it (EPERM): neither starts answering later,
 * so callers remember it (`statxUnavailable`) and fall back.
 */
import koffi from "koffi";
import { libc } from "./libc";

const statxFn = libc.func("int statx(int dirfd, const char *path, int flags, unsigned int mask, _Out_ uint8_t *buf)") as (
  dirfd: number,
  path: string,
  flags: number,
  mask: number,
  buf: Buffer,
) => number;

const AT_FDCWD = -100;

/** statx's flags: how the path is resolved, and whether a network file system's server is asked. */
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_NO_AUTOMOUNT = 0x800;
export const AT_STATX_DONT_SYNC = 0x4000;
/** The file is the one open at dirfd itself (the path is ""). */
const AT_EMPTY_PATH = 0x1000;

/** statx's mask: the fields asked for (and, in the answer's stx_mask, those filled). */
export const STATX_TYPE = 0x1;
export const STATX_INO = 0x100;
/** The file's size in bytes (not STATX_SIZE, which is the size of the struct below). */
export const STATX_SIZE_FIELD = 0x200;
export const STATX_BTIME = 0x800;
/** The ID of the mount the file is on (Linux 5.8), as mountinfo lists it first. */
export const STATX_MNT_ID = 0x1000;

/** struct statx (linux/stat.h): the offsets of the fields the driver reads. */
export const STATX_OFFSET = {
  mask: 0, // u32
  attributes: 8, // u64
  mode: 28, // u16
  ino: 32, // u64
  size: 40, // u64
  attributesMask: 56, // u64
  btimeSec: 80, // s64
  btimeNsec: 88, // u32
  rdevMajor: 128, // u32, then minor
  devMajor: 136, // u32, then minor
  mntId: 144, // u64
} as const;
export const STATX_SIZE = 256;

const EPERM = 1;
const ENOSYS = 38;

/** statx of `path` (relative to the working directory) into `buf`: 0, or the errno. */
export function statxInto(path: string, flags: number, mask: number, buf: Buffer): number {
  return statxFn(AT_FDCWD, path, flags, mask, buf) === 0 ? 0 : koffi.errno();
}

/** statx of the file open at `fd` itself into `buf`: 0, or the errno. */
export function statxFdInto(fd: number, mask: number, buf: Buffer): number {
  return statxFn(fd, "", AT_EMPTY_PATH, mask, buf) === 0 ? 0 : koffi.errno();
}

/** Does this errno say the kernel will never answer statx here (no statx, or a seccomp profile refusing it)? */
export function statxUnavailable(errno: number): boolean {
  return errno === ENOSYS || errno === EPERM;
}
