/**
 * ioctl(2) and quotactl_fd(2), called directly.
 *
 * Much of what a storage driver asks of the kernel has no system call of its
 * own: attaching a loop device, giving a directory a project id, reading a
 * btrfs subvolume's id all go through ioctl(fd, request, argument), where
 * the request number encodes which operation and how big its argument
 * struct is, and the argument is a pointer to that struct. Quota limits go
 * through quotactl_fd(2) (Linux ≥ 5.14), which names the file system by any
 * open file on it instead of by its block device.
 *
 * The tools that wrap these (losetup, xfs_quota, btrfs) cost a process
 * start each — milliseconds — where the ioctl itself takes microseconds,
 * so the driver calls them through koffi, as it does mount(2). Structs are
 * plain Buffers laid out by the callers, with the kernel's offsets written
 * next to them.
 */
import { closeSync, constants as fsc, openSync } from "node:fs";
import koffi from "koffi";
import { libc } from "./libc";
import { SyscallError } from "./syscalls";

// Both are variadic in C: each extra argument is passed as (type, value).
const ioctlFn = libc.func("int ioctl(int fd, unsigned long request, ...)") as (...args: unknown[]) => number;
const syscallFn = libc.func("long syscall(long number, ...)") as (...args: unknown[]) => number;

/** quotactl_fd's number: the same on every architecture (new system calls share one table). */
const SYS_QUOTACTL_FD = 443;

// The same with a fixed third argument, which koffi can also call on a
// worker thread (variadic functions it calls only on the main thread).
// Passing it as a plain pointer argument is how the C ABIs we run on
// pass the first variadic integer or pointer anyway.
type IoctlPtr = ((fd: number, request: number, arg: Buffer) => number) & {
  async(fd: number, request: number, arg: Buffer, cb: (err: unknown, rc: number) => void): void;
};
const ioctlPtrFn = libc.func("ioctl", "int", ["int", "unsigned long", "void *"]) as IoctlPtr;

/** ioctl with a pointer argument (a struct in `arg`, read and/or written by the kernel). */
export function ioctlPtr(fd: number, request: number, arg: Buffer, what: string): number {
  const rc = ioctlFn(fd, request, "void *", arg);
  if (rc < 0) throw new SyscallError("ioctl", koffi.errno(), what);
  return rc;
}

/**
 * ioctlPtr on a worker thread, for requests that can take milliseconds
 * (LOOP_SET_STATUS64 freezes the device's queue: about 15 ms here).
 */
export function ioctlPtrAsync(fd: number, request: number, arg: Buffer, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    ioctlPtrFn.async(fd, request, arg, (err, rc) => {
      if (err) reject(err);
      else if (rc < 0) reject(new SyscallError("ioctl", koffi.errno(), what));
      else resolve(rc);
    });
  });
}

type IoctlInt = {
  async(fd: number, request: number, arg: number, cb: (err: unknown, rc: number) => void): void;
};
const ioctlIntFn = libc.func("ioctl", "int", ["int", "unsigned long", "unsigned long"]) as IoctlInt;

/** ioctlInt on a worker thread (FICLONE: sharing a file's blocks can take a while on a large file). */
export function ioctlIntAsync(fd: number, request: number, arg: number, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    ioctlIntFn.async(fd, request, arg, (err, rc) => {
      if (err) reject(err);
      else if (rc < 0) reject(new SyscallError("ioctl", koffi.errno(), what));
      else resolve(rc);
    });
  });
}

/** ioctl with an integer argument (or none: pass 0). */
export function ioctlInt(fd: number, request: number, arg: number, what: string): number {
  const rc = ioctlFn(fd, request, "unsigned long", arg);
  if (rc < 0) throw new SyscallError("ioctl", koffi.errno(), what);
  return rc;
}

/** quotactl_fd(fd, cmd, id, addr): quota operations on the file system holding `fd`. */
export function quotactlFd(fd: number, cmd: number, id: number, addr: Buffer | null, what: string): void {
  const rc = syscallFn(SYS_QUOTACTL_FD, "int", fd, "unsigned int", cmd >>> 0, "int", id | 0, "void *", addr);
  if (rc < 0) throw new SyscallError("quotactl_fd", koffi.errno(), what);
}

/** Run `fn` with a file descriptor for `path`, closed afterwards whatever happens. */
export function withFd<T>(path: string, flags: number, fn: (fd: number) => T): T {
  const fd = openSync(path, flags); // libuv adds O_CLOEXEC itself
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

/** Open flags for a directory we only inspect or ioctl on. */
export const DIR_FLAGS = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW;

/** _IOC(dir, type, nr, size) from <asm-generic/ioctl.h>. */
export function ioc(dir: "none" | "r" | "w" | "rw", type: number, nr: number, size: number): number {
  const d = { none: 0, w: 1, r: 2, rw: 3 }[dir];
  return ((d << 30) | (size << 16) | (type << 8) | nr) >>> 0;
}
