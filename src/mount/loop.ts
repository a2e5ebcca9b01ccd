/**
 * Loop devices: a file presented by the kernel as a block device.
 *
 * An image volume is a sparse file that holds a file system of its own; a
 * block volume is a sparse file handed to a pod as a raw disk. Either way
 * the kernel needs a block device, and a loop device is one whose sectors
 * are the bytes of a file. Attaching one is two ioctls — LOOP_CTL_GET_FREE
 * on /dev/loop-control names a free device, LOOP_CONFIGURE binds it to an
 * open file — which is what losetup(8) does, minus a process start.
 *
 * Never leaking a device: a loop device stays attached until someone
 * detaches it, so a driver killed between "attach" and "mount" would leave
 * one behind, holding its file open. The kernel's AUTOCLEAR flag prevents
 * that: an autoclear device detaches itself when its last opener closes it.
 * We attach with AUTOCLEAR and keep our descriptor open until the device
 * has another user — a mounted file system holds it open — so a crash at
 * any instant before that closes our descriptor and the device goes away.
 * A bind mount of the device node (block volumes) does not hold it open:
 * block volumes clear the flag before the node is bound (keepAttached) and
 * ask for it again only once the last bind is removed (detachOnLastClose),
 * so the device is never detached under a bind; what a crash in between
 * leaves attached is taken back or let go by the volume's next calls
 * (src/backends/hostpath/layouts/block.ts, idle-loops.ts).
 *
 * Which file a device is attached to is asked of the kernel on every call,
 * never remembered, and by identity, not by name: LOOP_GET_STATUS64 gives
 * the backing file's device and inode numbers, which are the same in every
 * mount namespace and every container. (sysfs's backing_file is a path as
 * the process that attached the device saw it: after a node plugin restarts
 * in a new container, that path may name nothing, or something else.)
 */
import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, readFileSync, readlinkSync } from "node:fs";
import * as path from "node:path";
import { Code, CsiError } from "../csi/errors";
import { ioctlInt, ioctlPtr, ioctlPtrAsync, withFd } from "./ioctl";
import { mknodBlock, mknodChar, SyscallError } from "./syscalls";

export interface LoopDevice {
  /** N in /dev/loopN. */
  number: number;
  /** /dev/loopN */
  path: string;
}

// <linux/loop.h>
const LOOP_CLR_FD = 0x4c01;
const LOOP_SET_STATUS64 = 0x4c04;
const LOOP_GET_STATUS64 = 0x4c05;
const LOOP_SET_CAPACITY = 0x4c07;
const LOOP_CONFIGURE = 0x4c0a;
const LOOP_CTL_GET_FREE = 0x4c82;

export const LO_FLAGS = { READ_ONLY: 1, AUTOCLEAR: 4, DIRECT_IO: 16 } as const;

// struct loop_info64 is 232 bytes; lo_flags at 52, lo_file_name[64] at 56.
// struct loop_config is { __u32 fd; __u32 block_size; loop_info64 info;
// __u64 reserved[8] } = 304 bytes, so info starts at 8.
const INFO_SIZE = 232;
const INFO_FLAGS = 52;
const INFO_FILE_NAME = 56;
const CONFIG_SIZE = 304;
const CONFIG_BLOCK_SIZE = 4;
const CONFIG_INFO = 8;
const LOGICAL_BLOCK_SIZE = 512;

export function loopDevice(n: number): LoopDevice {
  return { number: n, path: `/dev/loop${n}` };
}

/**
 * Attach a free loop device to `file`, with AUTOCLEAR set. Returns the device
 * and an open descriptor of it: the caller gives the device another user
 * (mounts it, or clears AUTOCLEAR before binding its node) and then closes
 * the descriptor.
 *
 * Direct I/O is asked for, so the volume's pages are cached once (in the
 * inner file system) rather than twice; where the backing file system
 * cannot do it, the device is attached without.
 *
 * The device's logical block size is always 512 bytes. Left to itself the
 * kernel picks, with direct I/O, the backing file's direct-I/O alignment —
 * 512 for a fresh image, but on XFS the file system's block size (4096)
 * once the image shares extents with a snapshot or clone (reflinks), and
 * an ext4 with 1 KiB blocks (mkfs's choice below 512 MiB) refuses to
 * mount on such a device ("bad block size"). With 512 the device looks the
 * same whatever was copied from it; the kernel then does without direct
 * I/O for a file that cannot do it at that size.
 */
export async function attachLoop(file: string, opts: { readOnly: boolean }): Promise<{ loop: LoopDevice; fd: number }> {
  const backing = openSync(file, loopFileMode(opts.readOnly) | fsc.O_NOFOLLOW);
  try {
    return await attachLoopTo(backing, path.basename(file), opts);
  } finally {
    // The device holds its own reference to the file.
    closeSync(backing);
  }
}

/** How a backing file is opened: for writing too unless the device is read-only (the kernel makes it read-only otherwise). */
export function loopFileMode(readOnly: boolean): number {
  return readOnly ? fsc.O_RDONLY : fsc.O_RDWR;
}

/**
 * attachLoop, to the file open at `backing` (opened with loopFileMode):
 * the very file the caller proved, whatever its name names meanwhile.
 * `name` is recorded in the device (lo_file_name). The descriptor stays
 * the caller's to close.
 */
export async function attachLoopTo(backing: number, name: string, opts: { readOnly: boolean }): Promise<{ loop: LoopDevice; fd: number }> {
  const mode = loopFileMode(opts.readOnly);
  let directIo = true;
  for (let attempt = 0; attempt < 32; attempt++) {
    const n = freeLoopNumber();
    const loop = loopDevice(n);
    const fd = openLoopNode(loop, mode);
    const config = Buffer.alloc(CONFIG_SIZE);
    config.writeUInt32LE(backing, 0);
    config.writeUInt32LE(LOGICAL_BLOCK_SIZE, CONFIG_BLOCK_SIZE);
    const flags = LO_FLAGS.AUTOCLEAR | (opts.readOnly ? LO_FLAGS.READ_ONLY : 0) | (directIo ? LO_FLAGS.DIRECT_IO : 0);
    config.writeUInt32LE(flags, CONFIG_INFO + INFO_FLAGS);
    config.write(name.slice(0, 63), CONFIG_INFO + INFO_FILE_NAME, "latin1");
    try {
      // On a worker thread: the kernel sets up the device's queue and
      // announces it (0.5 ms alone, 2 ms and more under load), which must
      // not stall every other call.
      await ioctlPtrAsync(fd, LOOP_CONFIGURE, config, loop.path);
      return { loop, fd };
    } catch (err) {
      closeSync(fd);
      const code = (err as SyscallError).code;
      // Another process took this device between GET_FREE and CONFIGURE.
      if (code === "EBUSY") continue;
      if (code === "EINVAL" && directIo) {
        directIo = false;
        continue;
      }
      throw err;
    }
  }
  throw new Error(`no free loop device could be claimed for ${name} (every attempt was raced by another process)`);
}

export const LOOP_MAJOR = 7;

/** /dev/loop-control: a character device, 10:237 (the misc major, the loop-control minor). */
const LOOP_CONTROL = "/dev/loop-control";
const MISC_MAJOR = 10;
const LOOP_CTRL_MINOR = 237;

/**
 * The number of a free loop device (the kernel makes one if none is free).
 * A container's /dev may lack /dev/loop-control although the kernel has
 * loop devices: the node is made, as for /dev/loopN. A node whose kernel
 * has none (the loop module not loaded), or whose container may not make
 * or open the node, cannot stage image or block volumes: that is said
 * plainly (FAILED_PRECONDITION), not as a missing file.
 */
function freeLoopNumber(): number {
  let ctl: number;
  try {
    ctl = openSync(LOOP_CONTROL, fsc.O_RDWR);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw noLoopDevices(err);
    try {
      mknodChar(LOOP_CONTROL, MISC_MAJOR, LOOP_CTRL_MINOR);
    } catch (mk) {
      if ((mk as NodeJS.ErrnoException).code !== "EEXIST") throw noLoopDevices(mk);
    }
    try {
      ctl = openSync(LOOP_CONTROL, fsc.O_RDWR);
    } catch (again) {
      throw noLoopDevices(again);
    }
  }
  try {
    return ioctlInt(ctl, LOOP_CTL_GET_FREE, 0, LOOP_CONTROL);
  } finally {
    closeSync(ctl);
  }
}

function noLoopDevices(err: unknown): CsiError {
  const why = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
  return new CsiError(
    Code.FAILED_PRECONDITION,
    `this node cannot attach loop devices (${LOOP_CONTROL}: ${why}), which image and block volumes need: load the kernel's loop module (modprobe loop) and give the node plugin /dev, or use capacity: none`,
    { cause: err },
  );
}

/**
 * Open /dev/loopN, making the node first if the kernel made the device but
 * this /dev has no node for it (a container's /dev, e.g. a kind node).
 */
function openLoopNode(loop: LoopDevice, mode: number): number {
  try {
    return openSync(loop.path, mode);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    try {
      mknodBlock(loop.path, LOOP_MAJOR, loop.number);
    } catch (mk) {
      if ((mk as NodeJS.ErrnoException).code !== "EEXIST") throw mk;
    }
    return openSync(loop.path, mode);
  }
}

/** Open a loop device for an ioctl (reading only: every loop ioctl we use works on a read-only descriptor). */
export function openLoop(loop: LoopDevice): number {
  return openSync(loop.path, fsc.O_RDONLY);
}

/**
 * Turn AUTOCLEAR off on a device we hold open, so that it stays attached
 * once we close it. LOOP_SET_STATUS64 freezes the device's queue (about
 * 15 ms), so it runs on a worker thread.
 */
export async function keepAttached(fd: number, what: string): Promise<void> {
  const info = Buffer.alloc(INFO_SIZE);
  ioctlPtr(fd, LOOP_GET_STATUS64, info, what);
  const flags = info.readUInt32LE(INFO_FLAGS);
  if ((flags & LO_FLAGS.AUTOCLEAR) === 0) return;
  info.writeUInt32LE((flags & ~LO_FLAGS.AUTOCLEAR) >>> 0, INFO_FLAGS);
  await ioctlPtrAsync(fd, LOOP_SET_STATUS64, info, what);
}

/**
 * Have a device we hold open detach itself when its last opener closes it
 * (LOOP_CLR_FD: the kernel sets AUTOCLEAR, at once — no queue freeze).
 * Once asked, it cannot be taken back.
 */
export function detachOnLastClose(fd: number, what: string): void {
  ioctlInt(fd, LOOP_CLR_FD, 0, what);
}

/** Make the device's size follow its file's size again (after the file grew). */
export function refreshCapacity(loop: LoopDevice): void {
  withFd(loop.path, fsc.O_RDONLY, (fd) => ioctlInt(fd, LOOP_SET_CAPACITY, 0, loop.path));
}

function readSys(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** The file a loop device is attached to, as its attacher named it, or undefined if it is free. For messages only. */
export function backingFile(n: number): string | undefined {
  return readSys(`/sys/block/loop${n}/loop/backing_file`);
}

/**
 * Which file a loop device should be attached to: its device and inode
 * numbers (as stat(2) gives them) — or, once the file has been deleted
 * under its mounts, the device of the directory it was in and the name it
 * had there (attachLoop records the file's name in the device: lo_file_name).
 */
export type FileIdentity = { dev: bigint; ino: bigint } | { dev: bigint; name: string };

/** The identity of the file at `p` (never following a final symlink); if it is gone, its directory's device and its name. */
export function fileIdentity(p: string): FileIdentity | undefined {
  const st = lstatSync(p, { bigint: true, throwIfNoEntry: false });
  if (st) return st.isFile() ? { dev: st.dev, ino: st.ino } : undefined;
  const dir = lstatSync(path.dirname(p), { bigint: true, throwIfNoEntry: false });
  return dir?.isDirectory() ? { dev: dir.dev, name: path.basename(p).slice(0, 63) } : undefined;
}

// struct loop_info64 starts with __u64 lo_device (the backing file's st_dev,
// in the kernel's encoding) and __u64 lo_inode.
const INFO_DEVICE = 0;
const INFO_INODE = 8;

/** The kernel's dev_t encoding (new_encode_dev) of a user-space st_dev (glibc's makedev): LoopBacking.dev's. */
export function kernelDev(dev: bigint): bigint {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return (minor & 0xffn) | (major << 8n) | ((minor & ~0xffn) << 12n);
}

/** What a loop device is attached to: the file's device (the kernel's encoding) and inode, and the name recorded. */
export interface LoopBacking {
  dev: bigint;
  ino: bigint;
  name: string;
  /** Attached read-only: only such a device can have its file swapped while in use (LOOP_CHANGE_FD). */
  readOnly: boolean;
}

/** What loop device N is attached to; undefined when it is free (or its node cannot be opened). */
export function loopBacking(n: number): LoopBacking | undefined {
  let fd: number;
  try {
    fd = openLoopNode(loopDevice(n), fsc.O_RDONLY);
  } catch {
    return undefined;
  }
  try {
    return backingOf(fd, loopDevice(n).path);
  } finally {
    closeSync(fd);
  }
}

/** What the loop device open at `fd` is attached to; undefined when it is attached to nothing (ENXIO), or cannot say. */
export function backingOf(fd: number, what: string): LoopBacking | undefined {
  try {
    const info = Buffer.alloc(INFO_SIZE);
    ioctlPtr(fd, LOOP_GET_STATUS64, info, what);
    const raw = info.subarray(INFO_FILE_NAME, INFO_FILE_NAME + 64);
    const end = raw.indexOf(0);
    return {
      dev: info.readBigUInt64LE(INFO_DEVICE),
      ino: info.readBigUInt64LE(INFO_INODE),
      name: raw.subarray(0, end < 0 ? 64 : end).toString("latin1"),
      readOnly: (info.readUInt32LE(INFO_FLAGS) & LO_FLAGS.READ_ONLY) !== 0,
    };
  } catch {
    return undefined; // ENXIO: not attached
  }
}

/**
 * Is loop device N detached — attached to no file? Only when /dev/loopN is
 * the node of loop device N (a block device of the loop major that sysfs
 * names loopN) and the kernel answers that it has no file (ENXIO). Whatever
 * cannot be asked — no node, a node that cannot be opened, something else
 * standing at that name (a directory, a file, another device) — is not
 * known to be detached. (loopBacking's undefined says only "no answer".)
 */
export function loopIsDetached(n: number): boolean {
  let fd: number;
  try {
    fd = openSync(loopDevice(n).path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch {
    return false;
  }
  try {
    const st = fstatSync(fd, { bigint: true });
    if (!st.isBlockDevice()) return false;
    // glibc's major() and minor() of the node's device number.
    const major = ((st.rdev >> 8n) & 0xfffn) | ((st.rdev >> 32n) & ~0xfffn);
    const minor = (st.rdev & 0xffn) | ((st.rdev >> 12n) & ~0xffn);
    if (major !== BigInt(LOOP_MAJOR) || loopNumberOfDevice(`${major}:${minor}`) !== n) return false;
    try {
      ioctlPtr(fd, LOOP_GET_STATUS64, Buffer.alloc(INFO_SIZE), loopDevice(n).path);
      return false; // attached
    } catch (err) {
      return (err as SyscallError).code === "ENXIO";
    }
  } finally {
    closeSync(fd);
  }
}

/** Is loop device N attached to the file `file` identifies? */
export function loopBacks(n: number, file: FileIdentity): boolean {
  const b = loopBacking(n);
  return b !== undefined && backingTest(file)(b);
}

/** A test for "a loop device attached to this is attached to `file`" (its device number converted once). */
export function backingTest(file: FileIdentity): (b: LoopBacking) => boolean {
  const dev = kernelDev(file.dev);
  return "ino" in file ? (b) => b.dev === dev && b.ino === file.ino : (b) => b.dev === dev && b.name === file.name;
}

/** Whether the device was attached read-only. */
export function isReadOnlyLoop(n: number): boolean {
  return readSys(`/sys/block/loop${n}/ro`) === "1";
}

/** The device's size in bytes (sysfs counts 512-byte sectors). */
export function loopSizeBytes(n: number): number | undefined {
  const sectors = readSys(`/sys/block/loop${n}/size`);
  return sectors === undefined ? undefined : Number(sectors) * 512;
}

/**
 * The loop number of a block device named "major:minor" (as mountinfo
 * shows a mounted file system's device), or undefined if it is not a whole
 * loop device. Asked of sysfs, since the minor number of loop N depends on
 * the loop driver's max_part setting.
 */
export function loopNumberOfDevice(device: string): number | undefined {
  if (!device.startsWith("7:")) return undefined; // LOOP_MAJOR
  try {
    const m = /^loop(\d+)$/.exec(path.basename(readlinkSync(`/sys/dev/block/${device}`)));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The loop number of a device node path such as "/loop3" (a bind mount's root inside /dev). */
export function loopNumberOfNode(root: string): number | undefined {
  const m = /^\/loop(\d+)$/.exec(root);
  return m ? Number(m[1]) : undefined;
}

