// ControllerUnpublishVolume (detach): idempotent, and never under a mounted volume.
import assert from "node:assert/strict";
import { Code, destroyDriver, expectCode, mountCapability, startDriver, uniqueName, type DriverProcess, DIR_VOLUMES } from "./harness";

describe("ControllerUnpublishVolume", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ extraArgs: [...DIR_VOLUMES, "--enable-attach"] })));
  after(async () => destroyDriver(d));

  async function attached() {
    const volumeId = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()] })).volume!.volumeId!;
    const { publishContext } = await d.client.controller.controllerPublishVolume({ volumeId, nodeId: d.nodeId, volumeCapability: mountCapability() });
    return { volumeId, publishContext };
  }
  const publishedTo = async (volumeId: string) => (await d.client.controller.controllerGetVolume({ volumeId })).status!.publishedNodeIds;

  it("detaches, and detaching again answers OK", async () => {
    const { volumeId } = await attached();
    await d.client.controller.controllerUnpublishVolume({ volumeId, nodeId: d.nodeId });
    assert.deepEqual(await publishedTo(volumeId), []);
    await d.client.controller.controllerUnpublishVolume({ volumeId, nodeId: d.nodeId });
  });

  it("without node_id detaches from every node", async () => {
    const { volumeId } = await attached();
    await d.client.controller.controllerUnpublishVolume({ volumeId });
    assert.deepEqual(await publishedTo(volumeId), []);
  });

  it("of an unknown volume or from an unknown node answers OK (already detached) and changes nothing", async () => {
    const { volumeId } = await attached();
    await d.client.controller.controllerUnpublishVolume({ volumeId: "hp-00000000000000000000000000000000", nodeId: d.nodeId });
    await d.client.controller.controllerUnpublishVolume({ volumeId: "not-one-of-ours", nodeId: d.nodeId });
    await d.client.controller.controllerUnpublishVolume({ volumeId, nodeId: "some-other-node" });
    assert.deepEqual(await publishedTo(volumeId), [d.nodeId]);
    await d.client.controller.controllerUnpublishVolume({ volumeId, nodeId: d.nodeId });
  });

  it("while the volume is still staged on this node answers FAILED_PRECONDITION", async () => {
    const { volumeId, publishContext } = await attached();
    const stagingTargetPath = d.path(uniqueName("stage"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: mountCapability(), publishContext });
    await expectCode(d.client.controller.controllerUnpublishVolume({ volumeId, nodeId: d.nodeId }), Code.FAILED_PRECONDITION, /still mounted/);
    assert.deepEqual(await publishedTo(volumeId), [d.nodeId]);
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
    await d.client.controller.controllerUnpublishVolume({ volumeId, nodeId: d.nodeId });
  });

  it("without volume_id answers INVALID_ARGUMENT", async () => {
    await expectCode(d.client.controller.controllerUnpublishVolume({ nodeId: d.nodeId }), Code.INVALID_ARGUMENT, /volume_id/);
    await expectCode(d.client.controller.controllerUnpublishVolume({ volumeId: "a/b" }), Code.INVALID_ARGUMENT);
  });
});
