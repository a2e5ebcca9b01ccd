/**
 * XFS and ext4 project quotas, through ioctl(2) and quotactl_fd(2).
 *
 * A volume directory gets a project id of its own and the PROJINHERIT
 * flag (FS_IOC_FSSETXATTR), so everything created inside inherits the id;
 * the kernel then charges every block under it to that project, and a hard
 * block limit set with quotactl(Q_SETQUOTA, PRJQUOTA) caps it. The same
 * two calls work on XFS and ext4. xfs_quota / chattr -p + setquota do the
 * same from the shell at a process start each.
 *
 * Project ids are 32-bit numbers shared with anything else on the file
 * system that uses project quotas. A volume's id is taken from its volume
 * ID (a hash, so ids spread evenly) and, if that id is already in use —
 * it has a limit or any usage — the next one is tried. Checking and
 * claiming happen in one synchronous stretch of JavaScript, so two
 * CreateVolumes in this process cannot pick the same id.
 */
import { constants as fsc, promises as fsp } from "node:fs";
import { DIR_FLAGS, ioc, ioctlPtr, quotactlFd, withFd } from "../../../mount/ioctl";
import type { SyscallError } from "../../../mount/syscalls";
import type { QuotaBackend, QuotaInfo, QuotaUsage } from "./quota-backend";

// struct fsxattr (28 bytes): fsx_xflags @0, fsx_projid @12.
const FSXATTR_SIZE = 28;
const FS_IOC_FSGETXATTR = ioc("r", 0x58, 31, FSXATTR_SIZE);
const FS_IOC_FSSETXATTR = ioc("w", 0x58, 32, FSXATTR_SIZE);
const FS_XFLAG_PROJINHERIT = 0x200;

// quotactl commands: QCMD(cmd, PRJQUOTA) = cmd << 8 | 2.
const PRJQUOTA = 2;
const Q_GETQUOTA = 0x800007;
const Q_SETQUOTA = 0x800008;
const qcmd = (cmd: number) => ((cmd << 8) | PRJQUOTA) >>> 0;
// struct if_dqblk (72 bytes): bhardlimit @0 (1 KiB units), bsoftlimit @8,
// curspace @16 (bytes), ihardlimit @24, isoftlimit @32, curinodes @40,
// btime @48, itime @56, valid @64.
const DQBLK_SIZE = 72;
const QIF_BLIMITS = 1;

const MAX_PROJECT_ID = 0xfffffffe;

interface Dquot {
  hardLimitBytes: number;
  usedBytes: number;
  usedInodes: number;
}

export class ProjectQuota implements QuotaBackend {
  readonly description: string;

  /** `rootFd` stays open for the driver's life: quotactl_fd names the file system by it. */
  constructor(
    private readonly rootFd: number,
    fsType: string,
  ) {
    this.description = `${fsType} project quotas`;
  }

  /** Whether project quotas answer on the file system of `rootFd` (quota on, this kernel built with it). */
  static probe(rootFd: number): boolean {
    try {
      quotactlFd(rootFd, qcmd(Q_GETQUOTA), 0, Buffer.alloc(DQBLK_SIZE), "root");
      return true;
    } catch {
      return false;
    }
  }

  private get(id: number): Dquot | undefined {
    const buf = Buffer.alloc(DQBLK_SIZE);
    try {
      quotactlFd(this.rootFd, qcmd(Q_GETQUOTA), id, buf, `project ${id}`);
    } catch (err) {
      // XFS answers ENOENT for an id that has never been used.
      if ((err as SyscallError).code === "ENOENT") return undefined;
      throw err;
    }
    return {
      hardLimitBytes: Number(buf.readBigUInt64LE(0)) * 1024,
      usedBytes: Number(buf.readBigUInt64LE(16)),
      usedInodes: Number(buf.readBigUInt64LE(40)),
    };
  }

  setLimit(info: QuotaInfo, bytes: number): void {
    this.setHardLimit(projectOf(info), bytes);
  }

  private setHardLimit(id: number, bytes: number): void {
    const buf = Buffer.alloc(DQBLK_SIZE);
    const kib = BigInt(Math.ceil(bytes / 1024));
    buf.writeBigUInt64LE(kib, 0);
    buf.writeUInt32LE(QIF_BLIMITS, 64);
    quotactlFd(this.rootFd, qcmd(Q_SETQUOTA), id, buf, `project ${id}`);
  }

  private isFree(id: number): boolean {
    const q = this.get(id);
    return !q || (q.hardLimitBytes === 0 && q.usedBytes === 0 && q.usedInodes === 0);
  }

  async makeDirectory(dir: string, bytes: number, volumeId: string): Promise<QuotaInfo> {
    await fsp.mkdir(dir, { mode: 0o755 });
    await fsp.chmod(dir, 0o777);
    // From here to the limit, nothing awaits: choosing a free id, tagging
    // the directory with it and setting its limit is one step for every
    // other call in this process. The directory is tagged before the limit
    // is set, so a crash leaves the id findable from the directory.
    const start = (parseInt(volumeId.slice(-8), 16) % MAX_PROJECT_ID) + 1;
    for (let i = 0; i < 1000; i++) {
      const id = ((start - 1 + i) % MAX_PROJECT_ID) + 1;
      if (!this.isFree(id)) continue;
      setProject(dir, id);
      this.setHardLimit(id, bytes);
      return { kind: "project", projectId: id };
    }
    throw new Error("no free project id found near this volume's (1000 tried)");
  }

  usage(info: QuotaInfo): QuotaUsage {
    const q = this.get(projectOf(info));
    return { usedBytes: q?.usedBytes ?? 0, limitBytes: q?.hardLimitBytes ?? 0, usedInodes: q?.usedInodes ?? 0 };
  }

  identify(dir: string): QuotaInfo | undefined {
    try {
      const id = withFd(dir, DIR_FLAGS, (fd) => {
        const x = Buffer.alloc(FSXATTR_SIZE);
        ioctlPtr(fd, FS_IOC_FSGETXATTR, x, dir);
        return x.readUInt32LE(12);
      });
      return id > 0 ? { kind: "project", projectId: id } : undefined;
    } catch {
      return undefined; // not a directory (an image volume), or already gone
    }
  }

  /** Drop the limit first: the id becomes free once the files are gone too. */
  beforeRemove(info: QuotaInfo): void {
    this.setHardLimit(projectOf(info), 0);
  }

  afterRemove(): void {}
}

function projectOf(info: QuotaInfo): number {
  if (info.kind !== "project") throw new Error(`a ${info.kind} quota is not a project quota`);
  return info.projectId;
}

/** Give a directory a project id, inherited by everything created in it. */
function setProject(dir: string, id: number): void {
  withFd(dir, DIR_FLAGS | fsc.O_RDONLY, (fd) => {
    const x = Buffer.alloc(FSXATTR_SIZE);
    ioctlPtr(fd, FS_IOC_FSGETXATTR, x, dir);
    x.writeUInt32LE((x.readUInt32LE(0) | FS_XFLAG_PROJINHERIT) >>> 0, 0);
    x.writeUInt32LE(id, 12);
    ioctlPtr(fd, FS_IOC_FSSETXATTR, x, dir);
  });
}
