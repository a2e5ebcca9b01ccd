// The per-node attach limit (--max-volumes-per-node): enforced by ControllerPublishVolume, counted across restarts.
import assert from "node:assert/strict";
import { Code, destroyDriver, expectCode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

describe("Attach limit per node", () => {
  let d: DriverProcess;
  beforeEach(async () => (d = await startDriver({ extraArgs: ["--enable-attach", "--max-volumes-per-node", "2"] })));
  afterEach(async () => destroyDriver(d));

  const newVolume = async () =>
    (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()] })).volume!.volumeId!;
  const publish = (volumeId: string) => d.client.controller.controllerPublishVolume({ volumeId, nodeId: d.nodeId, volumeCapability: mountCapability() });

  it("NodeGetInfo reports the limit that ControllerPublishVolume enforces with RESOURCE_EXHAUSTED", async () => {
    assert.equal((await d.client.node.nodeGetInfo({})).maxVolumesPerNode, 2);
    const [a, b, c] = [await newVolume(), await newVolume(), await newVolume()];
    await publish(a);
    await publish(b);
    await expectCode(publish(c), Code.RESOURCE_EXHAUSTED, /limit/);
    // Re-publishing an attached volume does not need a new slot.
    await publish(a);
    // Detaching one frees its slot.
    await d.client.controller.controllerUnpublishVolume({ volumeId: a, nodeId: d.nodeId });
    await publish(c);
  });

  it("the count is rebuilt from disk after a restart", async () => {
    const [a, b, c] = [await newVolume(), await newVolume(), await newVolume()];
    await publish(a);
    await publish(b);
    await d.restart();
    await expectCode(publish(c), Code.RESOURCE_EXHAUSTED);
  });

  it("volumes racing for the last slot: exactly one wins", async () => {
    const ids = [await newVolume(), await newVolume(), await newVolume(), await newVolume(), await newVolume()];
    await publish(ids[0]!);
    const results = await Promise.allSettled(ids.slice(1).map(publish));
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    for (const r of results) if (r.status === "rejected") assert.equal((r.reason as { code: number }).code, Code.RESOURCE_EXHAUSTED);
  });
});
