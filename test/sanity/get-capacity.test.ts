// GetCapacity: the free space of the root's file system, 0 where we cannot serve.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import { destroyDriver, Mode, mountCapability, startDriver, type DriverProcess } from "./harness";

describe("GetCapacity", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));

  it("reports the root file system's available bytes (statfs)", async () => {
    const res = await d.client.controller.getCapacity({});
    const s = await fsp.statfs(d.root);
    const expected = s.bavail * s.bsize;
    // Other processes write to the same disk; allow 64 MiB of drift.
    assert.ok(Math.abs(res.availableCapacity! - expected) < 64 * 1024 * 1024, `${res.availableCapacity} vs ${expected}`);
    assert.equal(res.maximumVolumeSize, res.availableCapacity);
  });

  it("is 0 for a capability this node cannot serve", async () => {
    const res = await d.client.controller.getCapacity({ volumeCapabilities: [mountCapability(Mode.MULTI_NODE_MULTI_WRITER)] });
    assert.equal(res.availableCapacity ?? 0, 0);
  });

  it("is 0 for another node's topology and positive for this one's", async () => {
    const other = await d.client.controller.getCapacity({ accessibleTopology: { segments: { "csi-lab.example.org/node": "elsewhere" } } });
    assert.equal(other.availableCapacity ?? 0, 0);
    const here = await d.client.controller.getCapacity({ accessibleTopology: { segments: { "csi-lab.example.org/node": "test-node" } } });
    assert.ok(here.availableCapacity! > 0);
  });
});
