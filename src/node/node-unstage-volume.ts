/**
 * NodeUnstageVolume: undo NodeStageVolume.
 *
 * Unmounts whatever is mounted at the staging path. The CO created that
 * directory, so it is left in place. Unstaging something not staged is
 * success: the CO may be retrying a call whose reply it never saw.
 */
import type { NodeUnstageVolumeRequest, NodeUnstageVolumeResponse } from "../gen/csi";
import { checkPath, checkToken } from "../csi/validate";
import { unmountAll } from "../mount/bind";
import { volumeKey } from "../controller/volume-view";
import { defineRpc } from "../server/rpc";

export const nodeUnstageVolume = defineRpc<NodeUnstageVolumeRequest, NodeUnstageVolumeResponse>({
  lockKeys: (req) => volumeKey(req.volumeId),

  async handle(req, { driver }) {
    checkToken(req.volumeId, "volume_id");
    const stagingPath = checkPath(req.stagingTargetPath, "staging_target_path");
    await unmountAll(stagingPath);
    driver.nodeRecords.remove("stage", stagingPath);
    return {};
  },
});
