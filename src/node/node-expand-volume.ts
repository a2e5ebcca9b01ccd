/**
 * NodeExpandVolume: the node's half of growing a volume.
 *
 * After ControllerExpandVolume grew an image file, the node must make the
 * loop device see the new size (LOOP_SET_CAPACITY) and grow the file
 * system inside to fill it (resize2fs, xfs_growfs) — online, while pods
 * use it. A block volume only needs its device refreshed; a directory
 * volume needs nothing (its quota was raised by the controller).
 *
 * When the controller runs apart from the nodes (--mode controller), it
 * holds no node-local volume and only answered the resizer; then the
 * volume's record here is smaller than the size asked for, and this node
 * grows it first — record, image file or quota — by the same rules the
 * controller would (src/controller/grow-volume.ts).
 *
 * volume_path is where the volume is staged or published; a path where it
 * is not mounted is NOT_FOUND. Repeating the call is harmless: both tools
 * do nothing when the file system already fills its device.
 */
import type { NodeExpandVolumeRequest, NodeExpandVolumeResponse } from "../gen/csi";
import { toCapability, unsupportedReason } from "../csi/capabilities";
import { invalidArgument, notFound, outOfRange } from "../csi/errors";
import { checkMap, checkToken, requireString } from "../csi/validate";
import { nodePath } from "./node-path";
import { mountOwner } from "./volume-owner";
import { volumeMountAt } from "../mount/volume-mounts";
import { mountAt, readMountInfo } from "../mount/mountinfo";
import { getVolume, volumeRef } from "../storage/volumes";
import { checkRange } from "../controller/capacity";
import { growHostPathVolume } from "../controller/grow-volume";
import { volumeKey } from "../controller/volume-view";
import { defineRpc } from "../server/rpc";
import { nodeLayout } from "./layouts";
import { findVolume } from "./staged-volume";

export const nodeExpandVolume = defineRpc<NodeExpandVolumeRequest, NodeExpandVolumeResponse>({
  lockKeys: (req) => volumeKey(req.volumeId),

  async handle(req, { driver }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    requireString(req.volumePath, "volume_path");
    if (req.stagingTargetPath) nodePath(driver, req.stagingTargetPath, "staging_target_path");
    const range = checkRange(req.capacityRange);
    const cap = req.volumeCapability && toCapability(req.volumeCapability, "volume_capability");
    checkMap(req.secrets, "secrets");
    // As for NodeGetVolumeStats: a path outside the kubelet directory is where the volume is not (NOT_FOUND).
    const volumePath = nodePath(driver, req.volumePath, "volume_path", "not-found").real;

    if (volumeRef(volumeId).backend === "nfs") {
      // A shared volume's size is a label: nothing on the node depends on it.
      const owner = await mountOwner(driver, volumeId);
      const entries = readMountInfo();
      const m = mountAt(entries, volumePath);
      if (!owner || !m || !owner.owns(m, entries)) throw notFound(`volume ${volumeId} is not staged or published at ${volumePath}`);
      const record = await getVolume(driver, volumeId);
      return { capacityBytes: record?.capacityBytes ?? range.required };
    }
    let vol = await findVolume(driver, volumeId);
    if (cap) {
      const why = unsupportedReason(cap, driver.hostpath.profileOf(vol.record));
      if (why) throw invalidArgument(`volume ${volumeId}: ${why}`);
    }
    if (range.limit > 0 && range.limit < vol.record.capacityBytes) {
      throw outOfRange(`volume ${volumeId} has ${vol.record.capacityBytes} bytes and volumes cannot shrink`);
    }
    const mount = volumeMountAt(vol.mounts, volumePath);
    if (!mount) throw notFound(`volume ${volumeId} is not staged or published at ${volumePath}`);
    if (range.required > vol.record.capacityBytes) vol = { ...vol, record: await growHostPathVolume(driver, vol.record, range) };
    await nodeLayout(vol.layout).expand(driver, vol, volumePath, mount);
    return { capacityBytes: vol.record.capacityBytes };
  },
});
