/**
 * NodeUnpublishVolume: take a volume away from one pod.
 *
 * Unmounts the target and removes the directory NodePublishVolume created
 * there (the spec makes that the plugin's job). Like every undo call it is
 * idempotent: an unmounted or missing target is success. An ephemeral
 * inline volume is deleted with its last target (ephemeral.ts).
 */
import type { NodeUnpublishVolumeRequest, NodeUnpublishVolumeResponse } from "../gen/csi";
import { checkPath, checkToken } from "../csi/validate";
import { removeMountPoint, unmountAll } from "../mount/bind";
import { defineRpc } from "../server/rpc";
import { nodeLockKeys, removeEphemeralIfUnused } from "./ephemeral";

export const nodeUnpublishVolume = defineRpc<NodeUnpublishVolumeRequest, NodeUnpublishVolumeResponse>({
  lockKeys: (req, driver) => nodeLockKeys(driver, req.volumeId),

  async handle(req, { driver, log }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    const targetPath = checkPath(req.targetPath, "target_path");
    await unmountAll(targetPath);
    await removeMountPoint(targetPath);
    driver.nodeRecords.remove("publish", targetPath);
    if (await removeEphemeralIfUnused(driver, volumeId)) log.debug("removed the inline volume with its last target");
    return {};
  },
});
