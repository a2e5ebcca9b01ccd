/**
 * NodeGetVolumeStats: how full is a volume, and is it healthy?
 *
 * The kubelet calls this about once a minute per mounted volume and
 * publishes the numbers as kubelet_volume_stats_* metrics. The path must be
 * one where this volume is really mounted — otherwise NOT_FOUND, so a
 * stale path never reports some other file system's numbers.
 *
 * The numbers are the volume's own where it has its own: a quota's
 * counters, an image's file system, a block device's size. Only a plain
 * directory (capacity: none) shares its file system with the root and
 * reports that file system's figures (src/node/layouts). A shared volume
 * reports its share's statfs, and a stale or hung share as an abnormal
 * condition (shared-volume.ts).
 */
import type { NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse } from "../gen/csi";
import { notFound } from "../csi/errors";
import { checkPath, checkToken, requireString } from "../csi/validate";
import { mountsOfVolume, volumeMountAt } from "../mount/volume-mounts";
import { layoutOf } from "../storage/volume-record";
import { defineRpc } from "../server/rpc";
import { storeVolumeId } from "./ephemeral";
import { volumeRef } from "../storage/volumes";
import { findSharedVolume, sharedStats } from "./shared-volume";
import { nodeLayout } from "./layouts";

export const nodeGetVolumeStats = defineRpc<NodeGetVolumeStatsRequest, NodeGetVolumeStatsResponse>({
  async handle(req, { driver }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    // Not checkPath: a relative or odd path is not an invalid request here,
    // just a place where the volume is certainly not mounted (NOT_FOUND).
    const volumePath = requireString(req.volumePath, "volume_path");
    if (req.stagingTargetPath) checkPath(req.stagingTargetPath, "staging_target_path");

    const ref = volumeRef(volumeId);
    if (ref.backend === "nfs") return sharedStats(driver, await findSharedVolume(driver, volumeId, ref.id, {}), volumePath);
    const id = storeVolumeId(driver, volumeId); // an inline volume is stored under its own ID
    const record = await driver.hostpath.get(id);
    if (!record) throw notFound(`volume ${volumeId} does not exist on this node`);
    const volumeCondition = await driver.hostpath.condition(id, record);
    if (volumeCondition.abnormal && !volumeCondition.usable) return { usage: [], volumeCondition };
    const layout = layoutOf(record);
    const dataDir = driver.hostpath.dataDir(id);
    const mounts = mountsOfVolume(dataDir, layout !== "dir");
    const mount = volumePath.startsWith("/") && !volumePath.includes("\0") ? volumeMountAt(mounts, volumePath) : undefined;
    if (!mount) throw notFound(`volume ${volumeId} is not mounted at ${volumePath}`);
    const usage = await nodeLayout(layout).stats(driver, { record, layout, dataDir, mounts }, volumePath, mount);
    return { usage, volumeCondition };
  },
});
