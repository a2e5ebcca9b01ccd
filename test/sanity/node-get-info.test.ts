// NodeGetInfo and NodeGetCapabilities.
import assert from "node:assert/strict";
import { NodeServiceCapability_RPC_Type as Cap } from "../../src/gen/csi";
import { destroyDriver, startDriver, type DriverProcess } from "./harness";

describe("NodeGetInfo and NodeGetCapabilities", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ nodeId: "worker-7", extraArgs: ["--max-volumes-per-node", "42"] })));
  after(async () => destroyDriver(d));

  it("NodeGetInfo reports the node id, the limit and this node's topology segment, which says it reaches shares", async () => {
    const info = await d.client.node.nodeGetInfo({});
    assert.equal(info.nodeId, "worker-7");
    assert.equal(info.maxVolumesPerNode, 42);
    assert.deepEqual(info.accessibleTopology, { segments: { "csi-lab.example.org/node": "worker-7", "csi-lab.example.org/shared": "reachable" } });
  });

  it("a node allowed no share does not say it reaches shared volumes", async () => {
    const bare = await startDriver({ nodeId: "worker-8", noShare: true });
    try {
      assert.deepEqual((await bare.client.node.nodeGetInfo({})).accessibleTopology, { segments: { "csi-lab.example.org/node": "worker-8" } });
    } finally {
      await destroyDriver(bare);
    }
  });

  it("NodeGetCapabilities offers staging, stats, condition and single-node multi-writer", async () => {
    const caps = (await d.client.node.nodeGetCapabilities({})).capabilities!.map((c) => c.rpc!.type);
    for (const c of [Cap.STAGE_UNSTAGE_VOLUME, Cap.GET_VOLUME_STATS, Cap.VOLUME_CONDITION, Cap.SINGLE_NODE_MULTI_WRITER]) assert.ok(caps.includes(c), Cap[c]);
  });
});
