/**
 * Directory volumes on the node: bind mounts all the way.
 *
 * The directory is bound at the staging path and the staging path at each
 * target; the directory is bound from a descriptor proven to be the
 * volume's own, never by its name (../volume-dir.ts). A quota, if the
 * volume has one, is the kernel's business once set: there is nothing to
 * mount for it and nothing to grow on the node.
 * Stats come from the quota's counters when there is one (the volume's own
 * usage), else from statfs (the whole file system's).
 */
import { hostPathStore } from "../store";
import { withVolumeDir } from "../volume-dir";
import { VolumeUsage_Unit as Unit, type VolumeUsage } from "../../../gen/csi";
import { volumeUsage } from "../../../node/volume-usage";
import { bindWithFlags } from "../../../mount/bind";
import { MS } from "../../../mount/options";
import { statfsUsage } from "../../../storage/fs-usage";
import type { NodeLayout } from "./index";

export const dirLayout: NodeLayout = {
  stagedChild: undefined,
  placeKind: "dir",

  async stage(_driver, vol, staged, readonly) {
    await withVolumeDir(vol.dataDir, vol.record, (dir) => bindWithFlags(dir, staged, readonly ? MS.RDONLY : 0));
  },

  async publish(_vol, source, target, bits) {
    bindWithFlags(source, target, bits);
  },

  async stats(driver, vol, volumePath) {
    const fs = await statfsUsage(volumePath);
    const quota = vol.record.quota && hostPathStore(driver).quota?.usage(vol.record.quota);
    if (!quota) return volumeUsage(fs);
    const total = quota.limitBytes || vol.record.capacityBytes;
    // The volume can grow to its limit, or until the disk is full.
    const available = Math.max(0, Math.min(total - quota.usedBytes, fs.availableBytes));
    const usage: VolumeUsage[] = [{ unit: Unit.BYTES, total, available, used: quota.usedBytes }];
    // Inodes are shared with the whole file system (none are set aside
    // per volume); btrfs has no fixed number at all.
    if (fs.totalInodes > 0) {
      usage.push({ unit: Unit.INODES, total: fs.totalInodes, available: fs.availableInodes, used: quota.usedInodes ?? fs.usedInodes });
    }
    return usage;
  },

  async expand() {
    // The controller raised the quota; nothing on the node depends on the size.
  },
};
