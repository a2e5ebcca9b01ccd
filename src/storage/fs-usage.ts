/**
 * Space and inodes of a file system, from statfs(2).
 *
 * statfs counts in blocks: `blocks` in all, `bfree` free, and `bavail` free
 * for unprivileged users (ext4 keeps some blocks back for root). What a
 * volume can still take is `bavail`; what is used is everything not free.
 * Kept free of the driver's other modules: the share agent, a small process
 * of its own, uses it too.
 */
import { promises as fsp, type StatsFs } from "node:fs";

export interface FsUsage {
  totalBytes: number;
  availableBytes: number;
  usedBytes: number;
  totalInodes: number;
  availableInodes: number;
  usedInodes: number;
}

export function fsUsageOf(s: StatsFs): FsUsage {
  return {
    totalBytes: s.blocks * s.bsize,
    availableBytes: s.bavail * s.bsize,
    usedBytes: (s.blocks - s.bfree) * s.bsize,
    totalInodes: s.files,
    availableInodes: s.ffree,
    usedInodes: s.files - s.ffree,
  };
}

export async function statfsUsage(dir: string): Promise<FsUsage> {
  return fsUsageOf(await fsp.statfs(dir));
}
