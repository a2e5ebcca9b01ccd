/**
 * NodeStageVolume: make a volume available on this node, once.
 *
 * Staging is the per-node half of mounting. For a disk it is where the
 * device gets formatted and mounted; every pod on the node then gets a
 * cheap bind mount of that one global mount. For a hostPath volume the
 * "device" is a directory, so staging binds the volume's directory at the
 * staging path. Calling it again for the same volume and path is a no-op;
 * a different volume or capability at that path is ALREADY_EXISTS. With
 * attach on, the volume must be attached to this node, and a read-only
 * attachment is staged read-only (attachment-check.ts); a pod's fsGroup
 * (volume_mount_group) is applied to the volume's root (mount-group.ts).
 */
import type { NodeStageVolumeRequest, NodeStageVolumeResponse } from "../gen/csi";
import { sameCapability } from "../csi/capabilities";
import { alreadyExists } from "../csi/errors";
import { checkMap, checkPath, checkToken } from "../csi/validate";
import { bindWithFlags, ensureDirectory } from "../mount/bind";
import { mountAt } from "../mount/mountinfo";
import { MS } from "../mount/options";
import { isMountOf } from "../mount/volume-mounts";
import { volumeKey } from "../controller/volume-view";
import { defineRpc } from "../server/rpc";
import { checkAttachment } from "./attachment-check";
import { applyVolumeMountGroup } from "./mount-group";
import { findVolume, nodeCapability } from "./staged-volume";

export const nodeStageVolume = defineRpc<NodeStageVolumeRequest, NodeStageVolumeResponse>({
  lockKeys: (req) => volumeKey(req.volumeId),

  async handle(req, { driver }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    const stagingPath = checkPath(req.stagingTargetPath, "staging_target_path");
    const { cap } = nodeCapability(driver, req.volumeCapability);
    const publishContext = checkMap(req.publishContext, "publish_context");
    checkMap(req.volumeContext, "volume_context");
    checkMap(req.secrets, "secrets");

    const vol = await findVolume(driver, volumeId);
    const { readonly } = checkAttachment(driver, volumeId, publishContext);
    await ensureDirectory(stagingPath, "staging_target_path");
    const { entries, location } = vol.mounts;
    if (isMountOf(entries, stagingPath, location)) {
      const rec = driver.nodeRecords.get("stage", stagingPath);
      if (rec && (rec.volumeId !== volumeId || !sameCapability(rec.capability, cap))) {
        throw alreadyExists(`volume ${volumeId} is already staged at ${stagingPath} with a different volume_capability`);
      }
      applyVolumeMountGroup(cap, stagingPath, readonly); // finish what a crash may have cut short
      return {};
    }
    if (mountAt(entries, stagingPath)) {
      throw alreadyExists(`something else is already mounted at ${stagingPath}`);
    }
    // Write the record first: if we crash between the two steps, a record
    // without a mount is ignored, while a mount without a record would
    // lose the capability it was made for.
    driver.nodeRecords.put("stage", { volumeId, path: stagingPath, capability: cap, readonly });
    bindWithFlags(vol.dataDir, stagingPath, readonly ? MS.RDONLY : 0);
    applyVolumeMountGroup(cap, stagingPath, readonly);
    return {};
  },
});
