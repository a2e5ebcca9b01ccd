/**
 * Block volumes on the node: a loop device handed to the pod as a device.
 *
 * NodeStage attaches a loop device to the image and bind-mounts its device
 * node onto the file <staging path>/block; NodePublish binds that file onto
 * the target file, where the container runtime picks up the device. A
 * read-only publish gets a loop device of its own, attached read-only:
 * MS_RDONLY on the bind of a device node would not stop writes through it.
 *
 * A bind mount of a device node does not hold the device open, so AUTOCLEAR
 * (src/mount/loop.ts) cannot tie the device's life to its mounts the way it
 * does for image volumes. And a device detached while a bind of its node
 * exists leaves that bind naming whatever file the next attach on the node
 * gives the same number — another volume's. So the device is never let go
 * while a bind of it may exist: attach with AUTOCLEAR, clear the flag,
 * bind, close — a crash before the flag is cleared detaches the device —
 * and unbind before asking for detach-on-last-close again
 * (src/node/volume-owner.ts). A crash between those steps leaves the device
 * attached with nothing bound: the next stage (or read-only publish, a
 * read-only one) binds that one again, and an
 * unstage, an unpublish or a delete lets it go (src/mount/idle-loops.ts),
 * each looking only at the devices noted for the volume: a device is noted
 * while AUTOCLEAR still holds it (../loop-notes.ts), so none outlives a
 * crash unnoted.
 * (Clearing the flag costs about 15 ms — the kernel freezes the device's
 * queue for it — paid once per stage, on a worker thread.)
 */
import * as path from "node:path";
import { hostPathStore } from "../store";
import type { NodeVolume } from "../node-volume";
import { withVolumeImage } from "../volume-dir";
import { loopNotesOf } from "../loop-notes";
import { closeSync } from "node:fs";
import { VolumeUsage_Unit as Unit } from "../../../gen/csi";
import { internal } from "../../../csi/errors";
import { bindWithFlags, type MountPlace } from "../../../mount/bind";
import { withIdleLoop } from "../../../mount/idle-loops";
import {
  attachLoopTo,
  detachOnLastClose,
  isReadOnlyLoop,
  keepAttached,
  loopDevice,
  loopNumberOfNode,
  loopSizeBytes,
  refreshCapacity,
} from "../../../mount/loop";
import { volumeMountAt } from "../../../mount/volume-mounts";
import { growContent } from "../content";
import type { NodeLayout } from "./index";

/** The file under the staging path that carries the device. */
export const STAGED_DEVICE = "block";

/**
 * Attach a loop device to the volume's image and bind its node at `target`, leaving it attached. The image is
 * the one its record names, opened and proven (FAILED_PRECONDITION, nothing attached, if another file is at its
 * name: ../volume-dir.ts), and the device is attached to that descriptor.
 */
async function attachAndBind(vol: NodeVolume, target: MountPlace, readOnly: boolean, bits: number): Promise<void> {
  const attach = (backing: number) => attachLoopTo(backing, path.basename(vol.dataDir), { readOnly });
  const { loop, fd } = await withVolumeImage(vol.dataDir, vol.record, readOnly, attach);
  try {
    // Noted while a crash would still detach it (AUTOCLEAR), so that a later call finds it without looking at every device.
    loopNotesOf(vol.dataDir).add(loop.number);
    // Attached for good before anything refers to it: a bind must never outlive its device.
    await keepAttached(fd, loop.path);
    bindOrLetGo(loop.path, fd, target, bits);
  } finally {
    closeSync(fd);
  }
}

/** Bind the device held open at `fd`; if that fails, have it detach as `fd` closes (nothing refers to it). */
function bindOrLetGo(device: string, fd: number, target: MountPlace, bits: number): void {
  try {
    bindWithFlags(device, target, bits);
  } catch (err) {
    detachOnLastClose(fd, device);
    throw err;
  }
}

/** Bind a read-only device of the volume at `target`: one a crash left attached, bound nowhere (idle-loops.ts), or a new one. */
async function bindReadOnly(vol: NodeVolume, target: MountPlace, bits: number): Promise<void> {
  const image = vol.image;
  if (image && withIdleLoop(image, true, loopNotesOf(vol.dataDir), (loop, fd) => bindOrLetGo(loop.path, fd, target, bits))) return;
  await attachAndBind(vol, target, true, bits);
}

export const blockLayout: NodeLayout = {
  stagedChild: STAGED_DEVICE,
  placeKind: "file",

  async stage(_driver, vol, staged, readonly) {
    // A read-only attachment gets its own read-only device (a read-only
    // bind of a device node would not stop writes through it).
    if (readonly) return bindReadOnly(vol, staged, 0);
    // Staged elsewhere already: share that device rather than attach a second one.
    const attached = vol.mounts.loops.find((n) => !isReadOnlyLoop(n));
    if (attached !== undefined) return bindWithFlags(loopDevice(attached).path, staged, 0);
    // One a crash left attached, bound nowhere (src/mount/idle-loops.ts): bound again, not leaked.
    const image = vol.image;
    if (image && withIdleLoop(image, false, loopNotesOf(vol.dataDir), (loop, fd) => bindOrLetGo(loop.path, fd, staged, 0))) return;
    await attachAndBind(vol, staged, false, 0);
  },

  async publish(vol, source, target, bits, readonly) {
    if (readonly) await bindReadOnly(vol, target, bits);
    else bindWithFlags(source, target, bits);
  },

  async stats(_driver, vol, volumePath) {
    // A raw device has a size and nothing else the node can know.
    const mount = volumeMountAt(vol.mounts, volumePath);
    const n = mount && loopNumberOfNode(mount.root);
    const total = n === undefined ? undefined : loopSizeBytes(n);
    if (total === undefined) throw internal(`${volumePath} does not show a loop device`);
    return [{ unit: Unit.BYTES, total }];
  },

  async expand(driver, vol) {
    // A raw device has no file system to grow; read-only devices are told the new size too.
    await growContent(vol.dataDir, vol.record, vol.record.capacityBytes, hostPathStore(driver).quota);
    for (const n of vol.mounts.loops) refreshCapacity(loopDevice(n));
  },
};
