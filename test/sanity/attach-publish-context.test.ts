// The node's half of attach: NodeStage/NodePublish check the attachment and honour a read-only one.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { readMountInfo } from "../../src/mount/mountinfo";
import { Code, destroyDriver, expectCode, isMounted, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

describe("Attach as the node sees it", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ extraArgs: ["--enable-attach"] })));
  after(async () => destroyDriver(d));

  const newVolume = async () =>
    (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()] })).volume!.volumeId!;

  it("NodeStageVolume of a volume not attached to this node answers FAILED_PRECONDITION", async () => {
    const volumeId = await newVolume();
    const stagingTargetPath = d.path(uniqueName("stage"));
    await expectCode(d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: mountCapability() }), Code.FAILED_PRECONDITION, /not attached/);
    assert.equal(await isMounted(stagingTargetPath), false);
  });

  it("a publish_context naming another node answers FAILED_PRECONDITION in NodeStage and NodePublish", async () => {
    const volumeId = await newVolume();
    const { publishContext } = await d.client.controller.controllerPublishVolume({ volumeId, nodeId: d.nodeId, volumeCapability: mountCapability() });
    const elsewhere = { ...publishContext, "csi-lab/attached-node": "another-node" };
    const stagingTargetPath = d.path(uniqueName("stage"));
    await expectCode(
      d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: mountCapability(), publishContext: elsewhere }),
      Code.FAILED_PRECONDITION,
      /another-node/,
    );
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: mountCapability(), publishContext });
    await expectCode(
      d.client.node.nodePublishVolume({ volumeId, stagingTargetPath, targetPath: d.path(uniqueName("t")), volumeCapability: mountCapability(), publishContext: elsewhere }),
      Code.FAILED_PRECONDITION,
      /another-node/,
    );
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
    await d.client.controller.controllerUnpublishVolume({ volumeId, nodeId: d.nodeId });
  });

  it("a read-only attachment is staged and published read-only, even when NodePublish asks for read-write", async () => {
    const volumeId = await newVolume();
    const { publishContext } = await d.client.controller.controllerPublishVolume({ volumeId, nodeId: d.nodeId, volumeCapability: mountCapability(), readonly: true });
    const stagingTargetPath = d.path(uniqueName("stage"));
    const targetPath = d.path(uniqueName("t"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: mountCapability(), publishContext });
    await d.client.node.nodePublishVolume({ volumeId, stagingTargetPath, targetPath, volumeCapability: mountCapability(), publishContext, readonly: false });
    const mounts = await readMountInfo();
    for (const p of [stagingTargetPath, targetPath]) assert.ok(mounts.find((m) => m.mountPoint === p)!.options.includes("ro"), p);
    await assert.rejects(fsp.writeFile(path.join(targetPath, "x"), "x"), { code: "EROFS" });
    // The same call again is the idempotent OK, not a conflict.
    await d.client.node.nodePublishVolume({ volumeId, stagingTargetPath, targetPath, volumeCapability: mountCapability(), publishContext, readonly: false });
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath });
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
    await d.client.controller.controllerUnpublishVolume({ volumeId, nodeId: d.nodeId });
  });
});
