// NodeStageVolume and NodeUnstageVolume make real bind mounts; their
// system calls appear in csi_lab_mount_duration_seconds by operation.
import { strict as assert } from "node:assert";
import * as path from "node:path";
import { mountCapability } from "../sanity/harness";
import { createVolumeRequest, get, sample, useDriverWithMetrics } from "./driver-process";

describe("metrics: mount and unmount durations", () => {
  const live = useDriverWithMetrics();

  it("times the bind mount of NodeStage and the unmount of NodeUnstage", async () => {
    const { volume } = await live.client.controller.createVolume(createVolumeRequest("mount-metrics"));
    const volumeId = volume!.volumeId;
    const stagingTargetPath = path.join(live.driver.dir, "kubelet", "staging");
    await live.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: mountCapability(), publishContext: {}, volumeContext: {}, secrets: {} });
    let page = (await get(live.driver.httpBase, "/metrics")).body;
    assert.equal(sample(page, "csi_lab_mount_duration_seconds_count", { operation: "bind", result: "ok" }), 1);
    assert.equal(sample(page, "csi_lab_mount_duration_seconds_count", { operation: "unmount", result: "ok" }), undefined);

    await live.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
    page = (await get(live.driver.httpBase, "/metrics")).body;
    assert.equal(sample(page, "csi_lab_mount_duration_seconds_count", { operation: "unmount", result: "ok" }), 1);
    assert.ok((sample(page, "csi_lab_mount_duration_seconds_sum", { operation: "unmount", result: "ok" }) ?? 0) > 0);
  });
});
