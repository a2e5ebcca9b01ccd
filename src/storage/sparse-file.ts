/**
 * Sparse files, and cloning one without filling its holes.
 *
 * A file's size and the disk it takes are two different things: a range
 * never written is a hole, which reads as zeros and takes no blocks. An
 * image volume is such a file — a fresh 1 GiB ext4 image holds about
 * 600 KiB of file-system metadata and 1 GiB − 600 KiB of holes — and so is
 * the template it is cloned from (backends/hostpath/templates.ts).
 *
 * Cloning one into a new file, cheapest first:
 *
 * - FICLONE (a reflink): the new file shares the source's blocks,
 *   copy-on-write, whatever their number; one ioctl. XFS (reflink=1, the
 *   default of mkfs.xfs) and btrfs can; ext4 answers EOPNOTSUPP.
 * - Otherwise copy the data and only the data: lseek(SEEK_DATA) and
 *   lseek(SEEK_HOLE) find the ranges that hold data, copy_file_range(2)
 *   copies each inside the kernel, and everything between stays a hole.
 *   copy_file_range over the whole file would not do: on ext4 it reads the
 *   holes as zeros and writes them, so a 1 GiB image of 600 KiB would take
 *   1 GiB. Preallocated ranges (mkfs.xfs preallocates its log) count as
 *   holes too: they read as zeros, so the copy holds the same bytes and
 *   takes less space than its source.
 *
 * On btrfs an image is made no-copy-on-write (NOCOW), or every write into
 * it would fragment it. The flag only takes on an empty file, and btrfs
 * reflinks only between files that agree on it, so the source (a template)
 * is made NOCOW too.
 *
 * lseek and the ioctl are system calls through koffi (microseconds); the
 * copies run on a worker thread, so a large one does not stall other calls.
 * So do the calls that change a file (create, size, flush), which can wait
 * for the journal; opening and measuring the source, and closing, do not
 * wait and are made directly — each trip to the pool costs some 25 µs of
 * CPU, and a clone used to make a dozen.
 */
import { closeSync, constants as fsc, fstatSync, openSync } from "node:fs";
import koffi from "koffi";
import { libc } from "../mount/libc";
import { ioc, ioctlIntAsync, ioctlPtr } from "../mount/ioctl";
import { SyscallError } from "../mount/syscalls";
import { closeQuietly, ftruncateFd, openFd, syncPath } from "./fd-calls";

const lseekFn = libc.func("int64_t lseek(int fd, int64_t offset, int whence)") as (fd: number, offset: number, whence: number) => number | bigint;
type CopyFileRange = {
  async(fdIn: number, offIn: Buffer, fdOut: number, offOut: Buffer, len: number, flags: number, cb: (err: unknown, n: number | bigint) => void): void;
};
const copyFileRangeFn = libc.func("copy_file_range", "int64_t", ["int", "void *", "int", "void *", "size_t", "unsigned int"]) as CopyFileRange;

const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const ENXIO = 6;
/** FICLONE = _IOW(0x94, 9, int): make the file at fd share all of the source fd's blocks. */
const FICLONE = ioc("w", 0x94, 9, 4);
/** The errors FICLONE answers where the file system cannot share blocks between these two files. */
const NO_REFLINK = new Set(["EOPNOTSUPP", "ENOTSUP", "ENOTTY", "EXDEV", "EINVAL", "ENOSYS"]);

// FS_IOC_GETFLAGS / FS_IOC_SETFLAGS take a long; FS_NOCOW_FL = 0x00800000.
const FS_IOC_GETFLAGS = ioc("r", 0x66, 1, 8);
const FS_IOC_SETFLAGS = ioc("w", 0x66, 2, 8);
const FS_NOCOW_FL = 0x00800000;

/** Make the empty file at `fd` no-copy-on-write (btrfs). */
function setNoCow(fd: number, file: string): void {
  const flags = Buffer.alloc(8);
  ioctlPtr(fd, FS_IOC_GETFLAGS, flags, file);
  flags.writeUInt32LE((flags.readUInt32LE(0) | FS_NOCOW_FL) >>> 0, 0);
  ioctlPtr(fd, FS_IOC_SETFLAGS, flags, file);
}

/** Create `file` (it must not exist), NOCOW if asked, open for reading and writing; the caller closes the descriptor. */
async function createFile(file: string, noCow: boolean): Promise<number> {
  const fd = await openFd(file, fsc.O_RDWR | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
  try {
    if (noCow) setNoCow(fd, file);
  } catch (err) {
    closeQuietly(fd);
    throw err;
  }
  return fd;
}

/** A new file of `bytes` bytes that takes no space until written; `made`, if given, gets its descriptor before it is closed. */
export async function makeSparseFile(file: string, bytes: number, noCow: boolean, made?: (fd: number) => void): Promise<void> {
  const fd = await createFile(file, noCow);
  try {
    await ftruncateFd(fd, bytes);
    made?.(fd);
  } finally {
    closeSync(fd);
  }
}

/** The ranges of `fd` that hold data, as [offset, length], in order; the rest are holes. */
export function dataRanges(fd: number, size: number, what: string): [number, number][] {
  const ranges: [number, number][] = [];
  let at = 0;
  while (at < size) {
    const start = Number(lseekFn(fd, at, SEEK_DATA));
    if (start < 0) {
      const errno = koffi.errno();
      if (errno === ENXIO) break; // no data after `at`
      throw new SyscallError("lseek", errno, what);
    }
    const end = Number(lseekFn(fd, start, SEEK_HOLE)); // every file ends in a hole, so this always finds one
    if (end < 0) throw new SyscallError("lseek", koffi.errno(), what);
    ranges.push([start, Math.min(end, size) - start]);
    at = end;
  }
  return ranges;
}

/** copy_file_range for `length` bytes at `offset` in both files, on a worker thread; loops over short copies. */
async function copyRange(fdIn: number, fdOut: number, offset: number, length: number, what: string): Promise<void> {
  const offIn = Buffer.alloc(8);
  const offOut = Buffer.alloc(8);
  offIn.writeBigInt64LE(BigInt(offset));
  offOut.writeBigInt64LE(BigInt(offset));
  let left = length;
  while (left > 0) {
    const n = await new Promise<number>((resolve, reject) => {
      copyFileRangeFn.async(fdIn, offIn, fdOut, offOut, left, 0, (err, rc) => {
        if (err) return reject(err);
        const copied = Number(rc);
        if (copied < 0) reject(new SyscallError("copy_file_range", koffi.errno(), what));
        else resolve(copied);
      });
    });
    if (n === 0) throw new Error(`copy_file_range: ${what} ended early`); // the source shrank under us
    left -= n; // the kernel advanced both offsets
  }
}

/**
 * File systems (by device number) that answered FICLONE with "not
 * supported": ext4 never reflinks, and asking it again for every volume
 * costs a trip to the pool. Only the answers that hold for the whole file
 * system are remembered; at worst a copy is made where a reflink could
 * have been, which holds the same bytes.
 */
const cannotReflink = new Set<number>();
const NO_REFLINK_ANYWHERE = new Set(["EOPNOTSUPP", "ENOTSUP", "ENOTTY", "ENOSYS"]);

/**
 * Make `to` (which must not exist) a copy of the sparse file `from`:
 * reflinked where the file system can, else its data ranges copied and
 * its holes kept (see the top of this file). `finish`, if given, gets the
 * new file's descriptor before it is closed, to change the file without
 * opening it again. Not flushed: the caller syncs when it commits.
 * Returns how it was made.
 */
export async function cloneSparseFile(
  from: string,
  to: string,
  opts: { noCow: boolean; finish?: (fd: number) => Promise<void> },
): Promise<"reflink" | "copy"> {
  const src = openSync(from, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    const { size, dev } = fstatSync(src);
    const dst = await createFile(to, opts.noCow);
    try {
      const how = await cloneInto(src, dst, size, dev, `${from} → ${to}`);
      if (opts.finish) await opts.finish(dst);
      return how;
    } finally {
      closeSync(dst);
    }
  } finally {
    closeSync(src);
  }
}

async function cloneInto(src: number, dst: number, size: number, dev: number, what: string): Promise<"reflink" | "copy"> {
  if (!cannotReflink.has(dev)) {
    try {
      await ioctlIntAsync(dst, FICLONE, src, what);
      return "reflink";
    } catch (err) {
      const code = (err as SyscallError).code;
      if (!NO_REFLINK.has(code)) throw err;
      if (NO_REFLINK_ANYWHERE.has(code)) cannotReflink.add(dev);
    }
  }
  await ftruncateFd(dst, size);
  await copyRanges(src, dst, dataRanges(src, size, what), what);
  return "copy";
}

/** How many ranges are copied at once: a 1 GiB ext4 template has about ten. */
const COPIES_AT_ONCE = 4;

/**
 * Copy the ranges a few at a time, each on its own worker thread (they
 * write disjoint parts of the file). Every copy is waited for, even after
 * one fails: the caller closes both descriptors next, and a copy still
 * running on a closed — and perhaps reused — descriptor would write into
 * whatever file got its number.
 */
async function copyRanges(src: number, dst: number, ranges: [number, number][], what: string): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined && next < ranges.length) {
      const [offset, length] = ranges[next++]!;
      try {
        await copyRange(src, dst, offset, length, what);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(COPIES_AT_ONCE, ranges.length) }, worker));
  if (failure) throw failure.err;
}

/** fsync a file by name. */
export function syncFile(file: string): Promise<void> {
  return syncPath(file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
}
