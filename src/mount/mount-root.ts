/**
 * Is a path the root of a mount, and of what? One statx(2), whatever the
 * number of mounts on the node.
 *
 * The mount table (mountinfo.ts) lists every mount of the namespace: the
 * kernel writes all of it out on each read, so a read costs more the more
 * mounts the node has (0.6 ms for a thousand, and a node running pods has
 * several per pod). Undoing a stage or a publish only needs to know what
 * is on top at one path, and statx tells that about the path itself:
 *
 *   - STATX_ATTR_MOUNT_ROOT (Linux 5.8) says the path is the root of a
 *     mount, that is, something is mounted there;
 *   - the device and inode numbers are those of what is mounted: a bind
 *     mount of directory D shows D's own device and inode (an inode number
 *     names one file of a file system, and a mounted directory cannot be
 *     freed, so no other directory can have them while the mount exists);
 *     a mounted image's file system shows its loop device (major 7); a
 *     bind of a device node shows that node, whose rdev names the device.
 *
 * Those numbers do not depend on path strings or on the mount namespace,
 * so a driver restarted elsewhere recognises the same mounts. statx is
 * asked not to wait for a network file system's server
 * (AT_STATX_DONT_SYNC) and never to trigger an automount. A kernel that
 * cannot say (no statx, or no mount-root attribute) answers "unknown", and
 * callers read the mount table as before.
 */
import {
  AT_NO_AUTOMOUNT,
  AT_STATX_DONT_SYNC,
  AT_SYMLINK_NOFOLLOW,
  STATX_BTIME,
  STATX_INO,
  STATX_MNT_ID,
  STATX_OFFSET as OFF,
  STATX_SIZE,
  STATX_TYPE,
  statxInto,
  statxUnavailable,
} from "./statx";

const STATX_ATTR_MOUNT_ROOT = 0x2000;
const ENOENT = 2;
const ENOTDIR = 20;

const S_IFMT = 0o170000;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFBLK = 0o060000;

/** A file's identity as the kernel numbers it: file system device, inode, and for a device node the device it names. */
export interface FileNumbers {
  kind: "dir" | "file" | "block" | "other";
  dev: { major: number; minor: number };
  ino: bigint;
  /** Meaningful for a device node only. */
  rdev: { major: number; minor: number };
  /** Birth time, ns since the epoch, where the file system keeps one (the same statx asks it: no extra call). */
  born?: bigint;
}

export type MountRootAnswer =
  /** Nothing is there: nothing can be mounted there either. */
  | { kind: "absent" }
  /** Something is there, and it is not the root of a mount. */
  | { kind: "not-a-mount" }
  /** The root of the mount on top at the path; mountId: its ID as mountinfo lists it, where the kernel says (Linux 5.8). */
  | { kind: "mount"; root: FileNumbers; mountId?: number }
  /** This kernel cannot say: read the mount table. */
  | { kind: "unknown" };

const buf = Buffer.alloc(STATX_SIZE);
let unsupported = false;

/** What is mounted on top at `at`, the last component not followed (pass a path through an anchored parent). */
export function mountRootAt(at: string): MountRootAnswer {
  if (unsupported) return { kind: "unknown" };
  const errno = statx(at);
  if (errno === ENOENT || errno === ENOTDIR) return { kind: "absent" };
  if (errno !== 0) {
    // ENOSYS (before Linux 4.11), or a container's seccomp profile that refuses it.
    if (statxUnavailable(errno)) unsupported = true;
    return { kind: "unknown" };
  }
  const known = buf.readBigUInt64LE(OFF.attributesMask);
  if ((known & BigInt(STATX_ATTR_MOUNT_ROOT)) === 0n) {
    unsupported = true; // before Linux 5.8: it will not start knowing later
    return { kind: "unknown" };
  }
  const attributes = buf.readBigUInt64LE(OFF.attributes);
  if ((attributes & BigInt(STATX_ATTR_MOUNT_ROOT)) === 0n) return { kind: "not-a-mount" };
  const mountId = (buf.readUInt32LE(OFF.mask) & STATX_MNT_ID) !== 0 ? Number(buf.readBigUInt64LE(OFF.mntId)) : undefined;
  return { kind: "mount", root: numbers(), ...(mountId !== undefined ? { mountId } : {}) };
}

/** The numbers of the file at `p` (not following a last symlink); undefined when it is absent or the kernel has no statx. */
export function fileNumbers(p: string): FileNumbers | undefined {
  if (unsupported) return undefined;
  return statx(p) === 0 ? numbers() : undefined;
}

export function sameFile(a: FileNumbers, b: FileNumbers): boolean {
  return a.kind === b.kind && a.ino === b.ino && a.dev.major === b.dev.major && a.dev.minor === b.dev.minor;
}

function statx(p: string): number {
  return statxInto(p, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_STATX_DONT_SYNC, STATX_TYPE | STATX_INO | STATX_BTIME | STATX_MNT_ID, buf);
}

function numbers(): FileNumbers {
  const type = buf.readUInt16LE(OFF.mode) & S_IFMT;
  const n: FileNumbers = {
    kind: type === S_IFDIR ? "dir" : type === S_IFREG ? "file" : type === S_IFBLK ? "block" : "other",
    dev: { major: buf.readUInt32LE(OFF.devMajor), minor: buf.readUInt32LE(OFF.devMajor + 4) },
    ino: buf.readBigUInt64LE(OFF.ino),
    rdev: { major: buf.readUInt32LE(OFF.rdevMajor), minor: buf.readUInt32LE(OFF.rdevMajor + 4) },
  };
  if ((buf.readUInt32LE(OFF.mask) & STATX_BTIME) === 0) return n;
  return { ...n, born: buf.readBigInt64LE(OFF.btimeSec) * 1_000_000_000n + BigInt(buf.readUInt32LE(OFF.btimeNsec)) };
}
