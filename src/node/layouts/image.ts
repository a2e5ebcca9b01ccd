/**
 * Image volumes on the node: a file system in a file, loop-mounted.
 *
 * NodeStage attaches a loop device to the image, with AUTOCLEAR (see
 * src/mount/loop.ts), and mounts its file system at the staging path; pods
 * get bind mounts of that. NodeUnstage only unmounts: once the last mount
 * of the file system is gone nobody holds the device open and the kernel
 * detaches it by itself — also when the driver died half-way.
 *
 * An image is never attached twice: two file systems caching one image
 * would corrupt it. If the volume is mounted already (at another staging
 * path), its device is mounted again, and the kernel shares the one file
 * system between the two places.
 *
 * Expansion: the controller grew the image file; the node makes the loop
 * device follow (LOOP_SET_CAPACITY) and grows the file system online
 * (resize2fs, xfs_growfs).
 */
import { closeSync } from "node:fs";
import { VolumeUsage_Unit as Unit } from "../../gen/csi";
import { bindWithFlags, ensureDirectory } from "../../mount/bind";
import { growFilesystem, imageMountData, isImageFsType, type FsType } from "../../mount/filesystem";
import { attachLoop, loopDevice, loopNumberOfDevice, refreshCapacity } from "../../mount/loop";
import { mountFsAsync } from "../../mount/syscalls";
import { statfsUsage } from "../../storage/hostpath-store";
import { growContent } from "../../storage/volume-content";
import type { VolumeRecord } from "../../storage/volume-record";
import { internal } from "../../csi/errors";
import type { NodeLayout } from "./index";

function fsTypeOf(record: VolumeRecord): FsType {
  const t = record.fsType ?? "ext4";
  if (!isImageFsType(t)) throw internal(`volume ${record.volumeId} records an unknown file system ${JSON.stringify(t)}`);
  return t;
}

export const imageLayout: NodeLayout = {
  stagedPath: (stagingPath) => stagingPath,

  async stage(_driver, vol, stagingPath) {
    const fsType = fsTypeOf(vol.record);
    const mounted = vol.mounts.loops[0];
    if (mounted !== undefined) {
      await mountFsAsync(loopDevice(mounted).path, stagingPath, fsType, 0, imageMountData(fsType));
      return;
    }
    const { loop, fd } = attachLoop(vol.dataDir, { readOnly: false });
    try {
      await mountFsAsync(loop.path, stagingPath, fsType, 0, imageMountData(fsType));
    } finally {
      // Mounted: the file system holds the device now. Not mounted: this
      // close detaches it again.
      closeSync(fd);
    }
  },

  prepareTarget: (targetPath) => ensureDirectory(targetPath, "target_path"),

  async publish(_vol, stagedPath, targetPath, bits) {
    bindWithFlags(stagedPath, targetPath, bits);
  },

  async stats(_driver, _vol, volumePath) {
    // The image's own file system: its size, its usage, its inodes.
    const u = await statfsUsage(volumePath);
    return [
      { unit: Unit.BYTES, total: u.totalBytes, available: u.availableBytes, used: u.usedBytes },
      { unit: Unit.INODES, total: u.totalInodes, available: u.availableInodes, used: u.usedInodes },
    ];
  },

  async expand(driver, vol, volumePath, mount) {
    const n = loopNumberOfDevice(mount.device);
    if (n === undefined) throw internal(`${volumePath} is not on a loop device`);
    // The controller grew the file already; make sure, in case it was interrupted.
    await growContent(vol.dataDir, vol.record, vol.record.capacityBytes, driver.hostpath.quota);
    refreshCapacity(loopDevice(n));
    await growFilesystem(fsTypeOf(vol.record), loopDevice(n).path, volumePath);
  },
};
