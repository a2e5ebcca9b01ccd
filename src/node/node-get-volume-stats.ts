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
import { checkToken, requireString } from "../csi/validate";
import { nodePath } from "./node-path";
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
    requireString(req.volumePath, "volume_path");
    if (req.stagingTargetPath) nodePath(driver, req.stagingTargetPath, "staging_target_path");
    const ref = volumeRef(volumeId);
    if (ref.backend === undefined && !(await driver.hostpath.get(storeVolumeId(driver, volumeId)))) throw notFound(`volume ${volumeId} does not exist on this node`);
    // A relative path, or one outside the kubelet directory, is not an
    // invalid request here, just a place where the volume is certainly not
    // mounted (NOT_FOUND), and nothing there is looked at.
    const volumePath = nodePath(driver, req.volumePath, "volume_path", "not-found").real;

    if (ref.backend === "nfs") return sharedStats(driver, await findSharedVolume(driver, volumeId, ref.id, {}), volumePath);
    const id = storeVolumeId(driver, volumeId); // an inline volume is stored under its own ID
    const record = await driver.hostpath.get(id);
    if (!record) throw notFound(`volume ${volumeId} does not exist on this node`);
    const volumeCondition = await driver.hostpath.condition(id, record);
    if (volumeCondition.abnormal && !volumeCondition.usable) return { usage: [], volumeCondition };
    const layout = layoutOf(record);
    const dataDir = driver.hostpath.dataDir(id);
    const mounts = mountsOfVolume(dataDir, layout !== "dir");
    const mount = volumeMountAt(mounts, volumePath);
    if (!mount) throw notFound(`volume ${volumeId} is not mounted at ${volumePath}`);
    const usage = await nodeLayout(layout).stats(driver, { record, layout, dataDir, mounts }, volumePath, mount);
    return { usage, volumeCondition };
  },
});
