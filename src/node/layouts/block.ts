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
 * does for image volumes. Instead: attach with AUTOCLEAR, bind, clear the
 * flag, close — a crash before the flag is cleared detaches the device —
 * and before the last bind is removed ask for detach-on-last-close again,
 * so the device goes away with our descriptor once it is unmounted, even
 * if we die in between. No step leaves a device attached that nothing
 * refers to. (Clearing the flag costs about 15 ms — the kernel freezes the
 * device's queue for it — paid once per stage, on a worker thread.)
 */
import { closeSync, constants as fsc, lstatSync, promises as fsp, realpathSync } from "node:fs";
import * as path from "node:path";
import { VolumeUsage_Unit as Unit } from "../../gen/csi";
import { failedPrecondition, internal } from "../../csi/errors";
import { bindWithFlags, unmountAll } from "../../mount/bind";
import {
  attachLoop,
  backingFile,
  detachOnLastClose,
  isReadOnlyLoop,
  keepAttached,
  loopDevice,
  loopNumberOfNode,
  loopSizeBytes,
  openLoop,
  refreshCapacity,
} from "../../mount/loop";
import { locate, mountAt, readMountInfo } from "../../mount/mountinfo";
import { unmount } from "../../mount/syscalls";
import { growContent } from "../../storage/volume-content";
import type { NodeLayout } from "./index";

/** The file under the staging path that carries the device. */
export const STAGED_DEVICE = "block";

/** Create an empty file to bind a device node onto; refuse a symlink or a directory. */
export async function ensureFile(file: string, field: string): Promise<void> {
  try {
    const fh = await fsp.open(file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
    await fh.close();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    const st = lstatSync(file);
    if (st.isSymbolicLink()) throw failedPrecondition(`${field} ${file} is a symbolic link; refusing to mount over it`);
    if (st.isDirectory()) throw failedPrecondition(`${field} ${file} is a directory; a block volume is published as a device file`);
  }
}

/** Attach a loop device to `image` and bind its node at `target`, leaving it attached. */
async function attachAndBind(image: string, target: string, readOnly: boolean, bits: number): Promise<void> {
  const { loop, fd } = attachLoop(image, { readOnly });
  try {
    bindWithFlags(loop.path, target, bits);
    try {
      await keepAttached(fd, loop.path);
    } catch (err) {
      unmount(target, { detach: true });
      throw err;
    }
  } finally {
    closeSync(fd);
  }
}

export const blockLayout: NodeLayout = {
  stagedPath: (stagingPath) => path.join(stagingPath, STAGED_DEVICE),

  async stage(_driver, vol, stagingPath, readonly) {
    const node = path.join(stagingPath, STAGED_DEVICE);
    await ensureFile(node, "staging_target_path");
    // A read-only attachment gets its own read-only device (a read-only
    // bind of a device node would not stop writes through it).
    if (readonly) return attachAndBind(vol.dataDir, node, true, 0);
    // Staged elsewhere already: share that device rather than attach a second one.
    const attached = vol.mounts.loops.find((n) => !isReadOnlyLoop(n));
    if (attached !== undefined) bindWithFlags(loopDevice(attached).path, node, 0);
    else await attachAndBind(vol.dataDir, node, false, 0);
  },

  prepareTarget: (targetPath) => ensureFile(targetPath, "target_path"),

  async publish(vol, stagedPath, targetPath, bits, readonly) {
    if (readonly) await attachAndBind(vol.dataDir, targetPath, true, bits);
    else bindWithFlags(stagedPath, targetPath, bits);
  },

  async stats(_driver, _vol, volumePath, mount) {
    // A raw device has a size and nothing else the node can know.
    const n = loopNumberOfNode(mount.root);
    const total = n === undefined ? undefined : loopSizeBytes(n);
    if (total === undefined) throw internal(`${volumePath} does not show a loop device`);
    return [{ unit: Unit.BYTES, total }];
  },

  async expand(driver, vol) {
    await growContent(vol.dataDir, vol.record, vol.record.capacityBytes, driver.hostpath.quota);
    for (const n of vol.mounts.loops) refreshCapacity(loopDevice(n));
  },
};

/**
 * Unmount everything at `p`. If it is the last bind of a loop device
 * attached to `image`, the device is let go with it: holding it open, we
 * ask it to detach on its last close, remove the bind, and close. A crash
 * in between still detaches it (the kernel closes our descriptor) and
 * leaves at worst a bind of a detached device, which the next stage or
 * publish there removes. Used by NodeUnstage and NodeUnpublish, which
 * know the volume only by its ID.
 */
export async function unmountReleasingLoop(p: string, image: string | undefined): Promise<void> {
  const entries = readMountInfo();
  const m = mountAt(entries, p);
  const n = m && m.device === locate(entries, "/dev")?.device ? loopNumberOfNode(m.root) : undefined;
  const lastBind = m !== undefined && entries.filter((e) => e.device === m.device && e.root === m.root).length === 1;
  if (n === undefined || !lastBind || !image || backingFile(n) !== realOrUndefined(image)) {
    await unmountAll(p);
    return;
  }
  const fd = openLoop(loopDevice(n));
  try {
    detachOnLastClose(fd, loopDevice(n).path);
    await unmountAll(p);
  } finally {
    closeSync(fd);
  }
}

function realOrUndefined(p: string): string | undefined {
  try {
    return realpathSync(p);
  } catch {
    return undefined;
  }
}
