/**
 * NodeGetVolumeStats: how full is a volume, and is it healthy?
 *
 * The kubelet calls this about once a minute per mounted volume and
 * publishes the numbers as kubelet_volume_stats_* metrics. The path must be
 * one where this volume is really mounted — otherwise NOT_FOUND, so a
 * stale path never reports some other file system's numbers.
 *
 * The numbers are the volume's own where it has its own — a quota's
 * counters, an image's or a tmpfs's file system, a block device's size —
 * and its file system's otherwise (a plain directory, a share); a share
 * that is stale or does not answer is an abnormal condition. Which is the
 * backend's (src/backends).
 */
import type { NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse } from "../gen/csi";
import { notFound } from "../csi/errors";
import { checkToken, requireString } from "../csi/validate";
import { defineRpc } from "../server/rpc";
import { storeVolumeId } from "./ephemeral";
import { nodePath } from "./node-path";

export const nodeGetVolumeStats = defineRpc<NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse>({
  async handle(req, { driver }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    requireString(req.volumePath, "volume_path");
    if (req.stagingTargetPath) nodePath(driver, req.stagingTargetPath, "staging_target_path");
    const id = storeVolumeId(driver, volumeId); // an inline volume is kept under an ID of its own
    const backend = driver.backends.forId(id);
    if (!backend) throw notFound(`volume ${volumeId} does not exist on this node`);
    // A relative path, or one outside the kubelet directory, is not an
    // invalid request here, just a place where the volume is certainly not
    // mounted (NOT_FOUND), and nothing there is looked at.
    const volumePath = nodePath(driver, req.volumePath, "volume_path", "not-found").real;
    return backend.node.stats(driver, id, volumePath);
  },
});
