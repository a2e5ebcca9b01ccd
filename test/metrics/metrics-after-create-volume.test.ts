// After a CreateVolume over the real socket, GET /metrics on the running
// driver shows that call counted, with its latency histogram, and the new
// volume in the per-backend gauges. A failed call shows up by its code.
import { strict as assert } from "node:assert";
import { createVolumeRequest, get, sample, useDriverWithMetrics } from "./driver-process";

const MiB = 1024 * 1024;

describe("metrics: /metrics after CreateVolume", () => {
  const live = useDriverWithMetrics();

  it("counts the CreateVolume call with its latency, and the volume per backend", async () => {
    await live.client.controller.createVolume(createVolumeRequest("metrics-vol-1", 64 * MiB));
    const page = await get(live.driver.httpBase, "/metrics");
    assert.equal(page.status, 200);
    assert.match(page.type, /^text\/plain/);
    const call = { service: "Controller", method: "CreateVolume" };
    assert.equal(sample(page.body, "csi_lab_rpc_requests_total", { ...call, code: "OK" }), 1);
    assert.equal(sample(page.body, "csi_lab_rpc_duration_seconds_count", call), 1);
    const seconds = sample(page.body, "csi_lab_rpc_duration_seconds_sum", call);
    assert.ok(seconds !== undefined && seconds > 0, "the latency sum is recorded");
    assert.equal(sample(page.body, "csi_lab_rpc_duration_seconds_bucket", { ...call, le: "+Inf" }), 1);
    assert.equal(sample(page.body, "csi_lab_volumes", { backend: "hostpath" }), 1);
    assert.equal(sample(page.body, "csi_lab_volume_capacity_bytes", { backend: "hostpath" }), 64 * MiB);
  });

  it("counts a failed call under its status code in the errors counter", async () => {
    await assert.rejects(live.client.controller.createVolume(createVolumeRequest("")));
    const page = (await get(live.driver.httpBase, "/metrics")).body;
    const failed = { service: "Controller", method: "CreateVolume", code: "INVALID_ARGUMENT" };
    assert.equal(sample(page, "csi_lab_rpc_requests_total", failed), 1);
    assert.equal(sample(page, "csi_lab_rpc_errors_total", failed), 1);
    assert.equal(sample(page, "csi_lab_rpc_errors_total", { service: "Controller", method: "CreateVolume", code: "OK" }), undefined);
  });

  it("drops a deleted volume from the per-backend gauges", async () => {
    const { volume } = await live.client.controller.createVolume(createVolumeRequest("metrics-vol-2", 32 * MiB));
    assert.equal(sample((await get(live.driver.httpBase, "/metrics")).body, "csi_lab_volumes", { backend: "hostpath" }), 2);
    await live.client.controller.deleteVolume({ volumeId: volume!.volumeId, secrets: {} });
    const page = (await get(live.driver.httpBase, "/metrics")).body;
    assert.equal(sample(page, "csi_lab_volumes", { backend: "hostpath" }), 1);
    assert.equal(sample(page, "csi_lab_volume_capacity_bytes", { backend: "hostpath" }), 64 * MiB);
  });
});
