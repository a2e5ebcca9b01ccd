// A file system's statfs figures as NodeGetVolumeStats reports them: bytes and inodes.
import { VolumeUsage_Unit as Unit, type VolumeUsage } from "../gen/csi";
import type { FsUsage } from "../storage/fs-usage";

export function volumeUsage(fs: FsUsage): VolumeUsage[] {
  return [
    { unit: Unit.BYTES, total: fs.totalBytes, available: fs.availableBytes, used: fs.usedBytes },
    { unit: Unit.INODES, total: fs.totalInodes, available: fs.availableInodes, used: fs.usedInodes },
  ];
}
