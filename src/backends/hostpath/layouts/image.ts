/**
 * Image volumes on the node: a file system in a file, loop-mounted.
 *
 * NodeStage attaches a loop device to the image, with AUTOCLEAR (see
 * src/mount/loop.ts) — the image its record names, opened and proven, not
 * whatever file is at its name (../volume-dir.ts: withVolumeImage) — and
 * mounts its file system at the staging path; pods
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
 * (mount/filesystem.ts: ioctls on the root of a read-write mount of it,
 * ../node-expand.ts, proven that mount's and the image's: growThrough);
 * one mounted only read-only waits for its next
 * read-write stage. A file system smaller than its image when it is
 * staged read-write — the volume was expanded while not staged, or staged
 * only read-only — is grown there and then, ext4 before mounting
 * (offline, which needs no CAP_SYS_RESOURCE), XFS after (it only grows
 * online). Gaps under GROW_MIN are left alone:
 * ext4 cannot use a last block group that small anyway, and growing would
 * be retried at every stage for nothing.
 */
import * as path from "node:path";
import { hostPathStore } from "../store";
import { withVolumeImage } from "../volume-dir";
import { MS } from "../../../mount/options";
import { closeSync } from "node:fs";
import { aborted, failedPrecondition, internal } from "../../../csi/errors";
import { volumeUsage } from "../../../node/volume-usage";
import { bindWithFlags } from "../../../mount/bind";
import {
  canGrowExt4Online,
  filesystemBytes,
  growMountedFilesystem,
  growUnmountedExt4,
  imageMountData,
  isImageFsType,
  type FsType,
} from "../../../mount/filesystem";
import { attachLoopTo, loopDevice, loopNumberOfDevice, loopSizeBytes, refreshCapacity, type LoopDevice } from "../../../mount/loop";
import { mountTable, type MountEntry } from "../../../mount/mountinfo";
import { openImageRoot } from "../../../mount/open-mount-root";
import { mountFsAsync, unmount } from "../../../mount/syscalls";
import { statfsUsage } from "../../../storage/fs-usage";
import { growContent } from "../content";
import type { VolumeRecord } from "../../../storage/volume-record";
import type { NodeVolume } from "../node-volume";
import type { NodeLayout } from "./index";

const GROW_MIN = 4 * 1024 * 1024;

/**
 * How much larger the device is than its file system (0 if unknown), the
 * super-block read from `superBlockOf`: the loop device while the file
 * system is mounted (its newest super-block is in the device's cache), the
 * image file before it is (the same bytes, already in the page cache,
 * without a read through the new loop device).
 */
function growthPending(superBlockOf: string, loop: LoopDevice, fsType: FsType): number {
  const fs = filesystemBytes(superBlockOf, fsType);
  return fs === undefined ? 0 : (loopSizeBytes(loop.number) ?? 0) - fs;
}

/**
 * Grow the file system mounted at `m` to fill its loop device, through a descriptor of the mount's root
 * proven to be that mount's and the volume's image's (mount/open-mount-root.ts), not by its name.
 */
async function growThrough(vol: NodeVolume, m: MountEntry | undefined, fsType: FsType): Promise<void> {
  const fd = m && openImageRoot(m, vol.image);
  if (fd === undefined) {
    throw aborted(`volume ${vol.record.volumeId}: its mount at ${m?.mountPoint ?? "the staging path"} changed while it was growing; try again`);
  }
  try {
    const bytes = loopSizeBytes(loopNumberOfDevice(m!.device)!); // a loop device: openImageRoot proved it
    if (bytes === undefined) throw internal(`the loop device of volume ${vol.record.volumeId} is gone`);
    await growMountedFilesystem(fsType, fd, bytes, m!.mountPoint);
  } finally {
    closeSync(fd);
  }
}

/** The mount stage just made of `loop` at `mountPoint` (the last, topmost, the table lists there). */
function stagedMount(mountPoint: string, loop: LoopDevice): MountEntry | undefined {
  return mountTable().list.findLast((m) => m.mountPoint === mountPoint && loopNumberOfDevice(m.device) === loop.number);
}

function fsTypeOf(record: VolumeRecord): FsType {
  const t = record.fsType ?? "ext4";
  if (!isImageFsType(t)) throw internal(`volume ${record.volumeId} records an unknown file system ${JSON.stringify(t)}`);
  return t;
}

export const imageLayout: NodeLayout = {
  stagedChild: undefined,
  placeKind: "dir",

  async stage(_driver, vol, staged, readonly) {
    const fsType = fsTypeOf(vol.record);
    const bits = readonly ? MS.RDONLY : 0;
    const mounted = vol.mounts.loops[0];
    if (mounted !== undefined) {
      await mountFsAsync(loopDevice(mounted).path, staged.mountOn, fsType, bits, imageMountData(fsType));
      return;
    }
    // The image the record names, opened and proven (FAILED_PRECONDITION if another file is at its name), is what is attached.
    const { loop, fd, grow } = await withVolumeImage(vol.dataDir, vol.record, readonly, async (backing) => {
      const attached = await attachLoopTo(backing, path.basename(vol.dataDir), { readOnly: readonly });
      try {
        // Its super-block is read through the same descriptor, not by the name.
        return { ...attached, grow: !readonly && growthPending(`/proc/self/fd/${backing}`, attached.loop, fsType) >= GROW_MIN };
      } catch (err) {
        closeSync(attached.fd);
        throw err;
      }
    });
    try {
      if (grow && fsType === "ext4") await growUnmountedExt4(loop.path);
      await mountFsAsync(loop.path, staged.mountOn, fsType, bits, imageMountData(fsType));
      if (grow && fsType === "xfs") {
        await growThrough(vol, stagedMount(staged.path, loop), fsType).catch((err: unknown) => {
          unmount(staged.at, { detach: true });
          throw err;
        });
      }
    } finally {
      // Mounted: the file system holds the device now. Not mounted: this
      // close detaches it again.
      closeSync(fd);
    }
  },

  async publish(_vol, source, target, bits) {
    bindWithFlags(source, target, bits);
  },

  async stats(_driver, _vol, volumePath) {
    // The image's own file system: its size, its usage, its inodes.
    return volumeUsage(await statfsUsage(volumePath));
  },

  cannotExpand(vol, at, required) {
    if (at.writable) return undefined;
    // Mounted only read-only: nothing grows. Fine while there is nothing to grow (a
    // read-only super-block does not lag), else refused.
    const fsType = fsTypeOf(vol.record);
    const n = loopNumberOfDevice(at.mount.device);
    const fs = n === undefined ? undefined : filesystemBytes(loopDevice(n).path, fsType);
    if (required <= vol.record.capacityBytes && (fs === undefined || vol.record.capacityBytes - fs < GROW_MIN)) return undefined;
    return (
      `volume ${vol.record.volumeId} is mounted only read-only on this node (it was staged from a read-only attachment), and a file ` +
      "system grows only through a read-write mount; it grows when the volume is next staged read-write"
    );
  },

  async expand(driver, vol, { volumePath, mount, writable }) {
    if (!writable) return; // mounted only read-only, with nothing to grow (cannotExpand)
    const n = loopNumberOfDevice(mount.device);
    if (n === undefined) throw internal(`${volumePath} is not on a loop device`);
    const loop = loopDevice(n);
    const fsType = fsTypeOf(vol.record);
    // The controller grew the file already; make sure, in case it was interrupted.
    await growContent(vol.dataDir, vol.record, vol.record.capacityBytes, hostPathStore(driver).quota);
    refreshCapacity(loop);
    // (A mounted XFS's on-disk super-block may lag: the kernel's own geometry decides, growMountedFilesystem.)
    if (fsType === "ext4") {
      if (growthPending(loop.path, loop, fsType) < GROW_MIN) return;
      if (!canGrowExt4Online()) {
        throw failedPrecondition(
          `volume ${vol.record.volumeId} is mounted, and growing a mounted ext4 file system needs CAP_SYS_RESOURCE, which this driver ` +
            "does not have; it grows when the volume is next staged",
        );
      }
    }
    // Through the read-write mount chosen (a pod's may be read-only), whatever else the table lists first.
    await growThrough(vol, writable, fsType);
  },
};
