/**
 * NodeGetVolumeStats: how full is a volume, and is it healthy?
 *
 * The kubelet calls this about once a minute per mounted volume and
 * publishes the numbers as kubelet_volume_stats_* metrics. The path must be
 * one where this volume is really mounted — otherwise NOT_FOUND, so a
 * stale path never reports some other file system's numbers.
 *
 * A hostPath volume shares its file system with the root, so bytes and
 * inodes here are that file system's; per-volume limits come with quotas.
 */
import type { NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse } from "../gen/csi";
import { VolumeUsage_Unit as Unit } from "../gen/csi";
import { notFound } from "../csi/errors";
import { checkPath, checkToken, requireString } from "../csi/validate";
import { isMountOf, mountsOfDir } from "../mount/volume-mounts";
import { statfsUsage } from "../storage/hostpath-store";
import { defineRpc } from "../server/rpc";
import { storeVolumeId } from "./ephemeral";

export const nodeGetVolumeStats = defineRpc<NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse>({
  async handle(req, { driver }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    // Not checkPath: a relative or odd path is not an invalid request here,
    // just a place where the volume is certainly not mounted (NOT_FOUND).
    const volumePath = requireString(req.volumePath, "volume_path");
    if (req.stagingTargetPath) checkPath(req.stagingTargetPath, "staging_target_path");

    const id = storeVolumeId(driver, volumeId); // an inline volume is stored under its own ID
    const record = await driver.hostpath.get(id);
    if (!record) throw notFound(`volume ${volumeId} does not exist on this node`);
    const volumeCondition = await driver.hostpath.condition(id);
    if (volumeCondition.abnormal) return { usage: [], volumeCondition };
    const mounts = mountsOfDir(driver.hostpath.dataDir(id));
    if (!volumePath.startsWith("/") || volumePath.includes("\0") || !isMountOf(mounts.entries, volumePath, mounts.location)) {
      throw notFound(`volume ${volumeId} is not mounted at ${volumePath}`);
    }
    const u = await statfsUsage(volumePath);
    return {
      usage: [
        { unit: Unit.BYTES, total: u.totalBytes, available: u.availableBytes, used: u.usedBytes },
        { unit: Unit.INODES, total: u.totalInodes, available: u.availableInodes, used: u.usedInodes },
      ],
      volumeCondition,
    };
  },
});
