/**
 * NodeExpandVolume: the node's half of growing a volume.
 *
 * After ControllerExpandVolume grew an image file, the node must make the
 * loop device see the new size (LOOP_SET_CAPACITY) and grow the file
 * system inside to fill it (EXT4_IOC_RESIZE_FS, XFS_IOC_FSGROWFSDATA) — online, while pods
 * use it; a tmpfs is remounted with its new size. What a volume needs is
 * its backend's (src/backends).
 *
 * When the controller runs apart from the nodes (--mode controller), it
 * holds no node-local volume and only answered the resizer; then the
 * volume's record here is smaller than the size asked for, and the node
 * grows it first, by the same rules the controller would.
 *
 * volume_path is where the volume is staged or published; a path where it
 * is not mounted is NOT_FOUND — except for a raw block volume staged at
 * staging_target_path, which grows whatever volume_path says: the kubelet
 * sends the device path it keeps for the volume, the target of the pod it
 * last mapped the device for, even once that pod is gone. A file system
 * grows through a read-write mount of it, which volume_path need not be (a
 * pod may mount the volume read-only); one mounted only read-only cannot
 * grow: FAILED_PRECONDITION, before anything changes. Repeating the
 * call is harmless: both tools do nothing when the file system already
 * fills its device.
 */
import type { NodeExpandVolumeRequest, NodeExpandVolumeResponse } from "../gen/csi";
import { toCapability } from "../csi/capabilities";
import { notFound } from "../csi/errors";
import { checkMap, checkToken, requireString } from "../csi/validate";
import { checkRange } from "../controller/capacity";
import { volumeKey } from "../controller/volume-view";
import { defineRpc } from "../server/rpc";
import { nodePath } from "./node-path";

export const nodeExpandVolume = defineRpc<NodeExpandVolumeRequest, NodeExpandVolumeResponse>({
  lockKeys: (req) => volumeKey(req.volumeId),

  async handle(req, { driver }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    requireString(req.volumePath, "volume_path");
    const staging = req.stagingTargetPath ? nodePath(driver, req.stagingTargetPath, "staging_target_path") : undefined;
    const range = checkRange(req.capacityRange);
    const cap = req.volumeCapability && toCapability(req.volumeCapability, "volume_capability");
    checkMap(req.secrets, "secrets");
    // As for NodeGetVolumeStats: a path outside the kubelet directory is where the volume is not (NOT_FOUND).
    const volumePath = nodePath(driver, req.volumePath, "volume_path", "not-found").real;
    const backend = driver.backends.forId(volumeId);
    if (!backend) throw notFound(`volume ${volumeId} does not exist on this node`);
    return { capacityBytes: await backend.node.expand(driver, { volumeId, volumePath, staging, range, cap }) };
  },
});
