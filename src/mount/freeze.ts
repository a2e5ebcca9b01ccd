/**
 * Freezing a mounted file system, and flushing a block device.
 *
 * A file system keeps its latest writes in memory — file data in the page
 * cache, metadata in its journal — and writes them to its device later.
 * Whoever copies the device (or, for an image volume, the file that is the
 * device) sees only what has reached it: maybe nothing of the last seconds,
 * maybe half of an update. FIFREEZE asks the kernel to bring the file
 * system to a consistent point on its device — every dirty page written,
 * the journal checkpointed, the super-block marked clean — and to hold it
 * there: from the moment the freeze begins, every writer waits (inside
 * write(2), mkdir(2), a page fault…) until FITHAW. A copy of the device
 * taken in between is a clean file system holding everything written
 * before the freeze.
 *
 * The kernel does not tie a freeze to the process that asked for it: a
 * freezer that dies leaves the file system frozen, and every writer hung,
 * until someone thaws it. So a freeze here is always paired with a
 * watchdog process that thaws the same file system if the driver dies or
 * overruns the time it was given (startThawWatchdog), on top of the
 * durable markers and the start-up sweep of storage/hold-still.ts.
 *
 * The ioctls act on the super-block of whatever file an fd is open on, so
 * the fd is opened on the mount point and checked (fstat) to be on the
 * device the caller named: a path swapped in between cannot make us
 * freeze another file system.
 *
 * A raw block device has no file system to freeze; what it lacks is only
 * the writes still in its page cache, which fsync(2) of the device sends
 * down to the device (here: to the loop device's backing file).
 */
import { spawn } from "node:child_process";
import { closeSync, constants as fsc, fstatSync, openSync, promises as fsp } from "node:fs";
import koffi from "koffi";
import { libc } from "./libc";
import { ioc, ioctlPtrAsync } from "./ioctl";
import { SyscallError } from "./syscalls";

// _IOWR('X', 119, int) and _IOWR('X', 120, int), <linux/fs.h>.
const FIFREEZE = ioc("rw", 0x58, 119, 4);
const FITHAW = ioc("rw", 0x58, 120, 4);

type SyncFs = ((fd: number) => number) & { async(fd: number, cb: (err: unknown, rc: number) => void): void };
const syncfsFn = libc.func("int syncfs(int fd)") as SyncFs;

/** "major:minor" of a device number as glibc packs it (the form mountinfo prints). */
export function deviceName(dev: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

/**
 * Open the root directory of the file system mounted at `mountPoint`, and
 * check that it is the one on `device` ("major:minor"). The caller closes it.
 */
export function openMountedFs(mountPoint: string, device: string): number {
  const fd = openSync(mountPoint, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  const found = deviceName(fstatSync(fd, { bigint: true }).dev);
  if (found !== device) {
    closeSync(fd);
    throw new Error(`${mountPoint} is on device ${found}, not ${device}; it was replaced`);
  }
  return fd;
}

/** FIFREEZE: flush the file system and hold every writer until it is thawed. Can take seconds: runs on a worker thread. */
export async function freezeFs(fd: number, what: string): Promise<void> {
  await ioctlPtrAsync(fd, FIFREEZE, Buffer.alloc(4), what);
}

/** FITHAW. Resolves false if the file system was not frozen (EINVAL). */
export async function thawFs(fd: number, what: string): Promise<boolean> {
  try {
    await ioctlPtrAsync(fd, FITHAW, Buffer.alloc(4), what);
    return true;
  } catch (err) {
    if ((err as SyscallError).code === "EINVAL") return false;
    throw err;
  }
}

/** syncfs(2): write the file system's dirty data and metadata now, writers going on meanwhile. */
export function syncFs(fd: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    syncfsFn.async(fd, (err, rc) => {
      if (err) reject(err);
      else if (rc !== 0) reject(new SyscallError("syncfs", koffi.errno(), what));
      else resolve();
    });
  });
}

/** fsync(2) of a block device: its cached writes go down to the device. */
export async function flushBlockDevice(device: string): Promise<void> {
  const fh = await fsp.open(device, fsc.O_RDONLY);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * A process that thaws the file systems open on `fds` unless told, within
 * `limitMs`, that the driver thawed them itself. It reads lines from a
 * pipe: "released" ends it quietly; "spare <fd>…" takes file systems off
 * its list (frozen by someone else: not ours to thaw); anything else, the
 * pipe closing (the driver died, whatever the signal) or the time running
 * out makes it run `fsfreeze --unfreeze` (util-linux) on each left,
 * through /proc/self/fd, so it thaws exactly the file systems the driver
 * froze, wherever they are mounted by then. Spawned before the freeze;
 * `spare()` once the freeze has said which are someone else's;
 * `release(true)` after the thaw, `release(false)` if the driver's own
 * thaw failed (it tries again).
 */
export async function startThawWatchdog(
  fds: number[],
  limitMs: number,
): Promise<{ spare(fds: number[]): void; release(thawed: boolean): Promise<void> }> {
  const seconds = Math.max(1, Math.ceil(limitMs / 1000));
  const script =
    'end=$((SECONDS + $1)); shift; spare=" "; ' +
    'while left=$((end - SECONDS)); [ "$left" -gt 0 ] && read -r -t "$left" line; do ' +
    'case "$line" in released) exit 0;; "spare "*) spare="$spare${line#spare } ";; *) break;; esac; done; ' +
    'for fd in "$@"; do case "$spare" in *" $fd "*) ;; *) fsfreeze --unfreeze "/proc/self/fd/$fd" 2>/dev/null;; esac; done; exit 0';
  // The fds are the children's 3, 4, …; detached, so a signal to the driver's process group spares it.
  const childFd = (fd: number) => String(3 + fds.indexOf(fd));
  const child = spawn("bash", ["-c", script, "thaw-watchdog", String(seconds), ...fds.map(childFd)], {
    stdio: ["pipe", "ignore", "ignore", ...fds],
    detached: true,
  });
  child.stdin!.on("error", () => undefined); // it may have thawed and gone already (EPIPE)
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", reject);
  });
  child.unref();
  return {
    spare(spared: number[]) {
      const ours = spared.filter((fd) => fds.includes(fd));
      if (ours.length > 0) child.stdin!.write(`spare ${ours.map(childFd).join(" ")}\n`);
    },
    async release(thawed: boolean) {
      child.stdin!.end(thawed ? "released\n" : "thaw\n");
      await exited;
    },
  };
}
