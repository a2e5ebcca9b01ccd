/**
 * Opening a directory with no symbolic link anywhere on its path, in one
 * system call.
 *
 * A node plugin must act on the place the kubelet named and nowhere else,
 * even if someone swaps a directory on the way for a symlink to "/" while
 * the call runs (node-path.ts). The portable way is to walk the path one
 * component at a time, opening each with O_NOFOLLOW: two system calls per
 * component. Linux 5.6 added openat2(2), whose `resolve` flags move that
 * rule into the kernel: with RESOLVE_NO_SYMLINKS the whole path is resolved
 * in one call and any symlink met on the way fails it with ELOOP
 * (RESOLVE_NO_MAGICLINKS also refuses /proc's fd links). glibc has no
 * wrapper, so it is reached through syscall(2) with koffi, like mount(2).
 *
 * Callers keep their slower way (an O_NOFOLLOW walk, or realpath(3)) for
 * kernels without openat2 (ENOSYS) and for anything other than success or
 * "not there": its answer, naming the component it stopped at, is the one
 * reported. A path with no symlink on it is also its own resolved path,
 * which saves realpath's readlink per component (src/mount/volume-mounts.ts).
 */
import { closeSync } from "node:fs";
import koffi from "koffi";
import { libc } from "./libc";

const syscallFn = libc.func("long syscall(long number, int dirfd, const char *path, void *how, size_t size)") as (
  nr: number,
  dirfd: number,
  path: string,
  how: Buffer,
  size: number,
) => number;

/** The openat2 system call's number: the same on every Linux architecture (it came after the tables were unified). */
const SYS_OPENAT2 = 437;
const AT_FDCWD = -100;
const O_PATH = 0o10000000;
const O_DIRECTORY = 0o200000;
const O_CLOEXEC = 0o2000000;
const RESOLVE_NO_MAGICLINKS = 0x02;
const RESOLVE_NO_SYMLINKS = 0x04;
const ENOENT = 2;
const ENOSYS = 38;
const EPERM = 1;

/** struct open_how { u64 flags; u64 mode; u64 resolve; }, the same for every call. */
const HOW = Buffer.alloc(24);
HOW.writeBigUInt64LE(BigInt(O_PATH | O_DIRECTORY | O_CLOEXEC), 0);
HOW.writeBigUInt64LE(0n, 8);
HOW.writeBigUInt64LE(BigInt(RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS), 16);

let unsupported = false;

export type NoSymlinkOpen =
  /** An O_PATH descriptor of the directory; the caller closes it. */
  | { kind: "open"; fd: number }
  /** A component does not exist (and none before it is a symlink). */
  | { kind: "absent" }
  /** Anything else — a symlink on the way, a non-directory, an old kernel: ask the slow way. */
  | { kind: "ask-the-walk" };

/** Open the directory `absPath` (absolute, clean) as O_PATH, following no symlink on the way. */
export function openDirNoSymlinks(absPath: string): NoSymlinkOpen {
  if (unsupported) return { kind: "ask-the-walk" };
  const fd = syscallFn(SYS_OPENAT2, AT_FDCWD, absPath, HOW, HOW.length);
  if (fd >= 0) return { kind: "open", fd: Number(fd) };
  const errno = koffi.errno();
  if (errno === ENOENT) return { kind: "absent" };
  // A kernel before 5.6 answers ENOSYS; container runtimes whose seccomp
  // profile predates openat2 answer EPERM (an O_PATH open has no other
  // reason to). Either way it will not work later: the walk it is.
  if (errno === ENOSYS || errno === EPERM) unsupported = true;
  return { kind: "ask-the-walk" };
}

/**
 * The same for a caller that only needs the answer (the descriptor is closed
 * at once): a directory reached with no symlink on the way is its own
 * resolved path.
 */
export function checkNoSymlinks(absPath: string): "symlink-free" | "absent" | "ask-the-walk" {
  const o = openDirNoSymlinks(absPath);
  if (o.kind !== "open") return o.kind;
  closeSync(o.fd);
  return "symlink-free";
}
