/**
 * Making and growing file systems inside image files.
 *
 * An image volume carries its own file system, made when the volume is
 * created and grown when it is expanded. There is no system call for
 * making one — the layout of an ext4 or XFS file system is the business
 * of its tools — so that runs mkfs.ext4 / mkfs.xfs (Debian packages
 * e2fsprogs and xfsprogs), a process start of a few milliseconds, and
 * only once per file-system type and size: CreateVolume clones a template
 * formatted here (backends/hostpath/templates.ts). A mounted file system
 * grows in the kernel, asked by an ioctl on a descriptor of its root (what
 * resize2fs and xfs_growfs do themselves); an unmounted ext4 is grown by
 * e2fsck and resize2fs, at the stage after an expansion it missed.
 *
 * Choices, the same as Kubernetes' own formatting code makes:
 * - no blocks reserved for root (-m 0): the whole volume is the pod's;
 * - ext4's inode tables and journal are not zeroed (lazy_*_init): a new
 *   sparse file reads as zeros already, so zeroing would only turn holes
 *   into 33 MiB of real blocks per GiB;
 * - the root directory is mode 0777, like a new hostPath volume, so a pod
 *   running as any user can write until its fsGroup narrows it (XFS takes
 *   that from a prototype file, ext4 from debugfs afterwards);
 * - ext4 is made with metadata_csum_seed, so that a clone of a template
 *   can be given a UUID of its own without rewriting every checksum
 *   (ext4-uuid.ts);
 * - XFS is mounted with nouuid: a cloned image has its source's UUID and
 *   XFS would otherwise refuse to mount the two at once. (XFS clones keep
 *   it: XFS's log records carry the UUID too, and only xfs_admin, a
 *   process start, rewrites them.)
 *
 * FORMAT_RECIPE names these choices. Templates carry it in their names, so
 * a driver that formats differently never clones a template made the old
 * way: change it whenever makeFilesystem's options change.
 */
import { execFile } from "node:child_process";
import { closeSync, constants as fsc, openSync, promises as fsp, readFileSync, readSync } from "node:fs";
import { Code, CsiError } from "../csi/errors";
import { ioc, ioctlPtr, ioctlPtrAsync } from "./ioctl";

export type FsType = "ext4" | "xfs";
export const IMAGE_FS_TYPES: readonly FsType[] = ["ext4", "xfs"];
export const DEFAULT_IMAGE_FS: FsType = "ext4";

/** Smallest image each file system can be made in (mkfs.xfs refuses below 300 MiB). */
export const MIN_IMAGE_BYTES: Record<FsType, number> = { ext4: 1024 * 1024, xfs: 300 * 1024 * 1024 };

/** The version of makeFilesystem's choices, per file system (see the top of this file). */
export const FORMAT_RECIPE: Record<FsType, string> = { ext4: "r1", xfs: "r1" };

const TOOL_TIMEOUT_MS = 120_000;

/**
 * The Debian package each tool comes in. e2fsprogs is on every Debian
 * system; xfsprogs is not, so a node may lack mkfs.xfs.
 */
export const TOOL_PACKAGE = {
  "mkfs.ext4": "e2fsprogs",
  debugfs: "e2fsprogs",
  resize2fs: "e2fsprogs",
  e2fsck: "e2fsprogs",
  "mkfs.xfs": "xfsprogs",
} as const;
type Tool = keyof typeof TOOL_PACKAGE;

/**
 * Run a tool; exit codes in `ok` (besides 0) count as success. A tool
 * that is not installed is the node's state, not a fault of the driver's:
 * FAILED_PRECONDITION, saying what to install.
 */
function run(tool: Tool, args: readonly string[], ok: readonly number[] = []): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(tool, args, { timeout: TOOL_TIMEOUT_MS, maxBuffer: 1024 * 1024 }, (err, _stdout, stderr) => {
      if (!err || ok.includes(Number(err.code))) return resolve();
      if (err.code === "ENOENT") {
        return reject(new CsiError(Code.FAILED_PRECONDITION, `${tool} is not installed (Debian: ${TOOL_PACKAGE[tool]})`, { cause: err }));
      }
      const said = String(stderr).trim().split("\n").slice(-3).join(" / ");
      reject(new CsiError(Code.INTERNAL, `${tool} failed: ${said || err.message}`, { cause: err }));
    });
  });
}

/** Make an empty file system of type `fsType` filling the image file `image`. */
export async function makeFilesystem(image: string, fsType: FsType): Promise<void> {
  if (fsType === "ext4") {
    await run("mkfs.ext4", ["-q", "-F", "-m", "0", "-O", "metadata_csum_seed", "-E", "lazy_itable_init=1,lazy_journal_init=1", image]);
    await run("debugfs", ["-w", "-R", "sif <2> mode 040777", image]);
    return;
  }
  // mkfs.xfs reads its prototype file more than once, so it must be a real file.
  const proto = `${image}.proto`;
  await fsp.writeFile(proto, "csi-lab\n0 0\nd--777 0 0\n$\n");
  try {
    await run("mkfs.xfs", ["-q", "-f", "-p", proto, image]);
  } finally {
    await fsp.rm(proto, { force: true });
  }
}

/**
 * Grow a mounted file system, online, to fill `deviceBytes` (its device's
 * size, already refreshed), through `rootFd`: a descriptor of the root of
 * a read-write mount of it, proven the volume's (open-mount-root.ts). The
 * kernel grows the file system the descriptor is on, through the mount it
 * is on — never whichever mount of the device comes first in the table
 * (resize2fs's choice) or whatever is at a path (xfs_growfs's) — and a
 * read-only mount refuses (EROFS). These are the ioctls resize2fs and
 * xfs_growfs make themselves, without a process start each. Doing nothing
 * when the file system already fills the device, it is safe to repeat.
 * ext4 needs CAP_SYS_RESOURCE for it (see canGrowExt4Online); XFS only
 * CAP_SYS_ADMIN.
 */
export async function growMountedFilesystem(fsType: FsType, rootFd: number, deviceBytes: number, what: string): Promise<void> {
  try {
    if (fsType === "ext4") await growExt4(rootFd, deviceBytes, what);
    else await growXfs(rootFd, deviceBytes, what);
  } catch (err) {
    if (err instanceof CsiError) throw err;
    throw new CsiError(Code.INTERNAL, `growing the ${fsType} file system mounted at ${what} failed: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * EXT4_IOC_RESIZE_FS, _IOW('f', 16, __u64): the new size in file-system
 * blocks. Not in the kernel's uapi headers (fs/ext4/ext4.h), so computed
 * here; 0x40086610, as strace shows resize2fs send it. Linux ≥ 3.3: it
 * does the whole growth itself (adding groups, and meta_bg where the
 * reserved GDT blocks run out), where resize2fs on older kernels fell back
 * to EXT4_IOC_GROUP_EXTEND and EXT4_IOC_GROUP_ADD. The kernel trims a last
 * group too small to use, and answers 0 when there is nothing to add.
 */
const EXT4_IOC_RESIZE_FS = ioc("w", 0x66, 16, 8);

async function growExt4(rootFd: number, deviceBytes: number, what: string): Promise<void> {
  // statfs of the descriptor (its /proc link, which names the open file, not a path): ext4's block size.
  const blockSize = (await fsp.statfs(`/proc/self/fd/${rootFd}`)).bsize;
  const blocks = Buffer.alloc(8);
  blocks.writeBigUInt64LE(BigInt(Math.floor(deviceBytes / blockSize)));
  await ioctlPtrAsync(rootFd, EXT4_IOC_RESIZE_FS, blocks, what);
}

/**
 * XFS's ioctls (fs/xfs/libxfs/xfs_fs.h, shipped by xfslibs-dev, not in the
 * kernel's uapi headers; the numbers are those strace shows xfs_growfs send):
 *
 *   XFS_IOC_FSGEOMETRY   _IOR('X', 126, struct xfs_fsop_geom), 256 bytes: __u32 blocksize at 0,
 *                        __u32 imaxpct at 28, __u64 datablocks at 32 (Linux ≥ 5.1; the project needs 5.14)
 *   XFS_IOC_FSGROWFSDATA _IOW('X', 110, struct xfs_growfs_data { __u64 newblocks; __u32 imaxpct; }), 16 bytes
 *
 * Since Linux 5.12 a size below the current one shrinks the file system:
 * only a larger one is ever sent. The kernel trims a last allocation group
 * too small to use.
 */
const XFS_IOC_FSGEOMETRY = ioc("r", 0x58, 126, 256);
const XFS_IOC_FSGROWFSDATA = ioc("w", 0x58, 110, 16);

async function growXfs(rootFd: number, deviceBytes: number, what: string): Promise<void> {
  const geom = Buffer.alloc(256);
  ioctlPtr(rootFd, XFS_IOC_FSGEOMETRY, geom, what);
  const blockSize = geom.readUInt32LE(0);
  const newBlocks = BigInt(Math.floor(deviceBytes / blockSize));
  if (newBlocks <= geom.readBigUInt64LE(32)) return;
  const grow = Buffer.alloc(16);
  grow.writeBigUInt64LE(newBlocks, 0);
  grow.writeUInt32LE(geom.readUInt32LE(28), 8); // imaxpct: kept as it is, as xfs_growfs -d does
  await ioctlPtrAsync(rootFd, XFS_IOC_FSGROWFSDATA, grow, what);
}

/**
 * Grow an unmounted ext4 file system to the size of its device. resize2fs
 * wants a file system checked since it was last mounted, so e2fsck runs
 * first (exit 1 = it fixed something, which is still a usable file system).
 */
export async function growUnmountedExt4(device: string): Promise<void> {
  await run("e2fsck", ["-f", "-p", device], [1]);
  await run("resize2fs", [device]);
}

/**
 * ext4 grows online only for a process with CAP_SYS_RESOURCE (the kernel's
 * check in EXT4_IOC_RESIZE_FS). Node plugins usually run privileged and
 * have it; a container that lacks it can still grow ext4 volumes offline,
 * when they are next staged.
 */
export function canGrowExt4Online(): boolean {
  const CAP_SYS_RESOURCE = 24n;
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync("/proc/self/status", "utf8"));
  return m !== null && ((BigInt(`0x${m[1]}`) >> CAP_SYS_RESOURCE) & 1n) === 1n;
}

/**
 * The size of the file system on `device`, from its super-block (ext4's at
 * byte 1024, XFS's at 0), or undefined if there is none of that type.
 * For a mounted XFS the on-disk super-block can lag behind the kernel's.
 */
export function filesystemBytes(device: string, fsType: FsType): number | undefined {
  const sb = Buffer.alloc(4096);
  const fd = openSync(device, fsc.O_RDONLY);
  try {
    readSync(fd, sb, 0, sb.length, 0);
  } finally {
    closeSync(fd);
  }
  if (fsType === "ext4") {
    const e = sb.subarray(1024);
    if (e.readUInt16LE(0x38) !== 0xef53) return undefined;
    const is64 = (e.readUInt32LE(0x60) & 0x80) !== 0;
    const blocks = e.readUInt32LE(0x04) + (is64 ? e.readUInt32LE(0x150) * 2 ** 32 : 0);
    return blocks * (1024 << e.readUInt32LE(0x18));
  }
  if (sb.readUInt32BE(0) !== 0x58465342) return undefined; // "XFSB"
  return Number(sb.readBigUInt64BE(8)) * sb.readUInt32BE(4);
}

/** Mount options for an image's file system (the `data` argument of mount(2)). */
export function imageMountData(fsType: FsType): string {
  // discard: blocks freed inside the volume are punched out of the sparse
  // image, so its space returns to the node's disk.
  return fsType === "xfs" ? "nouuid,discard" : "discard";
}

export function isImageFsType(v: string): v is FsType {
  return (IMAGE_FS_TYPES as readonly string[]).includes(v);
}
