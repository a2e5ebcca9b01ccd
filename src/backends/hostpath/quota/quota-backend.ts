/**
 * Quotas: a size limit on one directory of a shared file system.
 *
 * A hostPath volume is a directory on the node's disk, and nothing in a
 * directory stops it from filling the disk. Some file systems can count
 * the blocks of a directory tree and refuse writes past a limit:
 *
 * - XFS and ext4 *project quotas*: every inode carries a project id,
 *   inherited from its directory (the PROJINHERIT flag); the kernel keeps a
 *   usage counter and a limit per project id. One project id per volume
 *   makes a per-volume limit. (ext4 needs the `project` and `quota`
 *   features; both need the `prjquota` mount option.)
 * - btrfs *qgroups*: each subvolume has a quota group counting the bytes it
 *   references. One subvolume per volume makes a per-volume limit.
 *
 * Either way a write past the limit fails inside the volume (ENOSPC on
 * XFS, EDQUOT on ext4 and btrfs) while the rest of the disk is untouched,
 * and the usage can be read back in O(1) from the kernel's counter — no
 * walking the tree the way du(1) does.
 *
 * A QuotaBackend is one of those mechanisms, found at start-up by looking
 * at the file system the root is on (detectQuota in ./index.ts).
 */

/** What a volume's record keeps about its quota. */
export type QuotaInfo = { kind: "project"; projectId: number } | { kind: "btrfs-qgroup"; subvolumeId: number };

export interface QuotaUsage {
  usedBytes: number;
  limitBytes: number;
  /** Files and directories charged to the volume, where the file system counts them. */
  usedInodes?: number;
  /**
   * Of usedBytes, what no other subvolume or file shares (btrfs counts it:
   * a snapshot or clone made by reflink shares the volume's extents).
   * Undefined where the file system counts only the whole.
   */
  exclusiveBytes?: number;
}

export interface QuotaBackend {
  /** For messages and logs, e.g. "xfs project quotas". */
  readonly description: string;
  /**
   * Make `dir` (a new path under the root's .tmp) a directory whose
   * contents may use at most `bytes`, and return what identifies its quota.
   * Everything it changes is found again from `dir` by `identify`, so a
   * crash half-way leaves nothing the start-up sweep cannot undo.
   */
  makeDirectory(dir: string, bytes: number, volumeId: string): Promise<QuotaInfo>;
  /** Change the limit (expansion). */
  setLimit(info: QuotaInfo, bytes: number): void;
  /** Current usage and limit, from the kernel's counters. */
  usage(info: QuotaInfo): QuotaUsage;
  /** The quota a directory carries, if any (read before removing it). */
  identify(dir: string): QuotaInfo | undefined;
  /** Called with a removed volume's quota before its files are deleted. */
  beforeRemove(info: QuotaInfo): void;
  /** Called once its files are gone. */
  afterRemove(info: QuotaInfo): void;
}

export function isQuotaInfo(v: unknown): v is QuotaInfo {
  if (typeof v !== "object" || v === null) return false;
  const q = v as Record<string, unknown>;
  if (q.kind === "project") return Number.isSafeInteger(q.projectId) && (q.projectId as number) > 0;
  if (q.kind === "btrfs-qgroup") return Number.isSafeInteger(q.subvolumeId) && (q.subvolumeId as number) > 0;
  return false;
}
