// NodeStageVolume and NodeUnstageVolume make real bind mounts; their
// system calls appear in csi_lab_mount_duration_seconds by operation.
import { strict as assert } from "node:assert";
import * as path from "node:path";
import { connect, type CsiClient } from "../../src/client/csi-client";
import { mountCapability } from "../sanity/harness";
import { createVolumeRequest, get, sample, startDriverWithMetrics, type RunningDriver } from "./driver-process";

describe("metrics: mount and unmount durations", () => {
  let driver: RunningDriver;
  let client: CsiClient;

  before(async () => {
    driver = await startDriverWithMetrics();
    client = connect(driver.endpoint);
  });
  after(async () => {
    client?.close();
    await driver?.stop();
  });

  it("times the bind mount of NodeStage and the unmount of NodeUnstage", async () => {
    const { volume } = await client.controller.createVolume(createVolumeRequest("mount-metrics"));
    const volumeId = volume!.volumeId;
    const stagingTargetPath = path.join(driver.dir, "kubelet", "staging");
    await client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: mountCapability(), publishContext: {}, volumeContext: {}, secrets: {} });
    let page = (await get(driver.httpBase, "/metrics")).body;
    assert.equal(sample(page, "csi_lab_mount_duration_seconds_count", { operation: "bind", result: "ok" }), 1);
    assert.equal(sample(page, "csi_lab_mount_duration_seconds_count", { operation: "unmount", result: "ok" }), undefined);

    await client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
    page = (await get(driver.httpBase, "/metrics")).body;
    assert.equal(sample(page, "csi_lab_mount_duration_seconds_count", { operation: "unmount", result: "ok" }), 1);
    assert.ok((sample(page, "csi_lab_mount_duration_seconds_sum", { operation: "unmount", result: "ok" }) ?? 0) > 0);
  });
});
