/**
 * NodeUnpublishVolume: take a volume away from one pod.
 *
 * Unmounts the target and removes the directory NodePublishVolume created
 * there (the spec makes that the plugin's job). Like every undo call it is
 * idempotent: an unmounted or missing target is success.
 */
import type { NodeUnpublishVolumeRequest, NodeUnpublishVolumeResponse } from "../gen/csi";
import { checkPath, checkToken } from "../csi/validate";
import { removeMountPoint, unmountAll } from "../mount/bind";
import { volumeKey } from "../controller/volume-view";
import { defineRpc } from "../server/rpc";

export const nodeUnpublishVolume = defineRpc<NodeUnpublishVolumeRequest, NodeUnpublishVolumeResponse>({
  lockKeys: (req) => volumeKey(req.volumeId),

  async handle(req, { driver }) {
    checkToken(req.volumeId, "volume_id");
    const targetPath = checkPath(req.targetPath, "target_path");
    await unmountAll(targetPath);
    await removeMountPoint(targetPath);
    driver.nodeRecords.remove("publish", targetPath);
    return {};
  },
});
