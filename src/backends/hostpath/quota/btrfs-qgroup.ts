/**
 * btrfs qgroups: one subvolume per volume, limited by its quota group.
 *
 * On btrfs a quota belongs to a subvolume, not to a directory, so a quota
 * volume is made as a subvolume (BTRFS_IOC_SUBVOL_CREATE — as cheap as a
 * directory to the user, and removed by rmdir(2) once empty) and its
 * quota group is given a limit on the bytes it references
 * (BTRFS_IOC_QGROUP_LIMIT). Usage is the group's "referenced" counter,
 * which the kernel publishes in sysfs:
 * /sys/fs/btrfs/<fsid>/qgroups/0_<subvolume id>/referenced. Beside it,
 * "exclusive" counts what no other subvolume shares: the capacity ledger
 * uses that, since a snapshot made by reflink shares the volume's extents.
 *
 * Quotas must have been switched on for the file system by its
 * administrator (`btrfs quota enable <mount point>`); the driver never
 * switches them on itself, because doing so starts a rescan of the whole
 * file system.
 *
 * A deleted subvolume's quota group outlives it until the kernel's cleaner
 * has dropped its blocks; it is destroyed after the delete when possible,
 * and `btrfs qgroup clear-stale` removes any left behind. Subvolume ids
 * are never reused, so a stale group can never limit a new volume.
 */
import { promises as fsp, readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import { DIR_FLAGS, ioc, ioctlPtr, withFd } from "../../../mount/ioctl";
import type { QuotaBackend, QuotaInfo, QuotaUsage } from "./quota-backend";

const BTRFS = 0x94;
// struct btrfs_ioctl_vol_args { __s64 fd; char name[4088]; }
const SUBVOL_CREATE = ioc("w", BTRFS, 14, 4096);
// struct btrfs_ioctl_ino_lookup_args { __u64 treeid, objectid; char name[4080]; }
const INO_LOOKUP = ioc("rw", BTRFS, 18, 4096);
// struct btrfs_ioctl_fs_info_args: fsid[16] at offset 16; 1024 bytes.
const FS_INFO = ioc("r", BTRFS, 31, 1024);
// struct btrfs_ioctl_qgroup_create_args { __u64 create, qgroupid; }
const QGROUP_CREATE = ioc("w", BTRFS, 42, 16);
// struct btrfs_ioctl_qgroup_limit_args { __u64 qgroupid; { flags, max_rfer,
// max_excl, rsv_rfer, rsv_excl } } = 48 bytes.
const QGROUP_LIMIT = ioc("r", BTRFS, 43, 48);
const LIMIT_MAX_RFER = 1;
/** The inode number of every subvolume's root directory. */
const FIRST_FREE_OBJECTID = 256n;

/** The file system's UUID, as sysfs names its directory. */
export function btrfsFsid(dir: string): string {
  const info = Buffer.alloc(1024);
  withFd(dir, DIR_FLAGS, (fd) => ioctlPtr(fd, FS_INFO, info, dir));
  const hex = info.subarray(16, 32).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The id of the subvolume that holds `dir`. */
function subvolumeIdOf(dir: string): number {
  const args = Buffer.alloc(4096);
  args.writeBigUInt64LE(0n, 0);
  args.writeBigUInt64LE(FIRST_FREE_OBJECTID, 8);
  withFd(dir, DIR_FLAGS, (fd) => ioctlPtr(fd, INO_LOOKUP, args, dir));
  return Number(args.readBigUInt64LE(0));
}

export class BtrfsQgroups implements QuotaBackend {
  readonly description = "btrfs qgroups";
  private readonly sysfs: string;

  /** `root`: any directory on the file system, to carry ioctls that name a quota group. */
  constructor(
    fsid: string,
    private readonly root: string,
  ) {
    this.sysfs = `/sys/fs/btrfs/${fsid}/qgroups`;
  }

  /** Whether quotas are switched on for the btrfs file system `fsid`. */
  static enabled(fsid: string): boolean {
    try {
      return readFileSync(`/sys/fs/btrfs/${fsid}/qgroups/enabled`, "utf8").trim() !== "0";
    } catch {
      // Kernels before 6.x have no "enabled" file; the directory exists only with quotas on.
      try {
        readFileSync(`/sys/fs/btrfs/${fsid}/qgroups/0_5/referenced`);
        return true;
      } catch {
        return false;
      }
    }
  }

  async makeDirectory(dir: string, bytes: number): Promise<QuotaInfo> {
    const name = path.basename(dir);
    const args = Buffer.alloc(4096);
    args.write(name, 8, "utf8");
    withFd(path.dirname(dir), DIR_FLAGS, (fd) => ioctlPtr(fd, SUBVOL_CREATE, args, dir));
    await fsp.chmod(dir, 0o777);
    const info: QuotaInfo = { kind: "btrfs-qgroup", subvolumeId: subvolumeIdOf(dir) };
    this.limit(dir, bytes);
    return info;
  }

  /** Set the limit of the subvolume whose root is `dir` (qgroupid 0 means "this fd's subvolume"). */
  private limit(dir: string, bytes: number, qgroupid = 0n): void {
    const args = Buffer.alloc(48);
    args.writeBigUInt64LE(qgroupid, 0);
    args.writeBigUInt64LE(BigInt(LIMIT_MAX_RFER), 8);
    args.writeBigUInt64LE(BigInt(bytes), 16);
    withFd(dir, DIR_FLAGS, (fd) => ioctlPtr(fd, QGROUP_LIMIT, args, dir));
  }

  setLimit(info: QuotaInfo, bytes: number): void {
    this.limit(this.root, bytes, BigInt(subvolumeOf(info)));
  }

  usage(info: QuotaInfo): QuotaUsage {
    const group = `${this.sysfs}/0_${subvolumeOf(info)}`;
    const read = (f: string) => Number(readFileSync(`${group}/${f}`, "utf8").trim());
    return { usedBytes: read("referenced"), limitBytes: read("max_referenced"), exclusiveBytes: read("exclusive") };
  }

  identify(dir: string): QuotaInfo | undefined {
    try {
      const id = subvolumeIdOf(dir);
      // A plain directory answers with the subvolume that contains it.
      return id > 5 && isSubvolumeRoot(dir) ? { kind: "btrfs-qgroup", subvolumeId: id } : undefined;
    } catch {
      return undefined;
    }
  }

  beforeRemove(): void {}

  /** Best effort: the group cannot go while the cleaner still owes it blocks. */
  afterRemove(info: QuotaInfo): void {
    const args = Buffer.alloc(16);
    args.writeBigUInt64LE(0n, 0);
    args.writeBigUInt64LE(BigInt(subvolumeOf(info)), 8);
    try {
      withFd(this.root, DIR_FLAGS, (fd) => ioctlPtr(fd, QGROUP_CREATE, args, "qgroup"));
    } catch {
      // EBUSY until the subvolume's blocks are dropped; a stale group is harmless.
    }
  }
}

function isSubvolumeRoot(dir: string): boolean {
  // Every subvolume's root directory is inode 256.
  return statSync(dir, { bigint: true }).ino === FIRST_FREE_OBJECTID;
}

function subvolumeOf(info: QuotaInfo): number {
  if (info.kind !== "btrfs-qgroup") throw new Error(`a ${info.kind} quota is not a btrfs qgroup`);
  return info.subvolumeId;
}
