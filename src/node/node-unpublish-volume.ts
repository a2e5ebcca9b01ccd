/**
 * NodeUnpublishVolume: take a volume away from one pod.
 *
 * Unmounts the target and removes the directory (or, for a block volume,
 * the device file) NodePublishVolume created there — the spec makes that
 * the plugin's job. A read-only block target's own loop device goes with
 * it. Like every undo call it is idempotent: an unmounted or missing
 * target is success. An ephemeral inline volume is deleted with its last
 * target (ephemeral.ts).
 */
import type { NodeUnpublishVolumeRequest, NodeUnpublishVolumeResponse } from "../gen/csi";
import { checkPath, checkToken } from "../csi/validate";
import { removeMountPoint, unmountAll } from "../mount/bind";
import { volumeRef } from "../storage/volumes";
import { HostPathStore } from "../storage/hostpath-store";
import { defineRpc } from "../server/rpc";
import { nodeLockKeys, removeEphemeralIfUnused } from "./ephemeral";
import { unmountReleasingLoop } from "./layouts/block";

export const nodeUnpublishVolume = defineRpc<NodeUnpublishVolumeRequest, NodeUnpublishVolumeResponse>({
  lockKeys: (req, driver) => nodeLockKeys(driver, req.volumeId),

  async handle(req, { driver, log }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    const targetPath = checkPath(req.targetPath, "target_path");
    if (volumeRef(volumeId).backend === "nfs") await unmountAll(targetPath, { detach: true }); // never wait on a gone server
    else await unmountReleasingLoop(targetPath, HostPathStore.isVolumeId(volumeId) ? driver.hostpath.dataDir(volumeId) : undefined);
    await removeMountPoint(targetPath);
    driver.nodeRecords.remove("publish", targetPath);
    if (await removeEphemeralIfUnused(driver, volumeId)) log.debug("removed the inline volume with its last target");
    return {};
  },
});
