// published_node_ids: ListVolumes and ControllerGetVolume say where each volume is attached.
import assert from "node:assert/strict";
import { destroyDriver, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

describe("published_node_ids in ListVolumes and ControllerGetVolume", () => {
  let d: DriverProcess | undefined;
  afterEach(async () => destroyDriver(d));

  async function twoVolumes(drv: DriverProcess) {
    const make = async () =>
      (await drv.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()] })).volume!.volumeId!;
    return [await make(), await make()] as const;
  }
  const listed = async (drv: DriverProcess) =>
    new Map((await drv.client.controller.listVolumes({})).entries!.map((e) => [e.volume!.volumeId!, e.status!.publishedNodeIds ?? []]));

  it("with attach on, name the node of an attached volume and nothing for a detached one", async () => {
    d = await startDriver({ extraArgs: ["--enable-attach"] });
    const [attached, detached] = await twoVolumes(d);
    await d.client.controller.controllerPublishVolume({ volumeId: attached, nodeId: d.nodeId, volumeCapability: mountCapability() });
    const list = await listed(d);
    assert.deepEqual(list.get(attached), [d.nodeId]);
    assert.deepEqual(list.get(detached), []);
    assert.deepEqual((await d.client.controller.controllerGetVolume({ volumeId: attached })).status!.publishedNodeIds, [d.nodeId]);

    await d.client.controller.controllerUnpublishVolume({ volumeId: attached, nodeId: d.nodeId });
    assert.deepEqual((await listed(d)).get(attached), []);
    assert.deepEqual((await d.client.controller.controllerGetVolume({ volumeId: attached })).status!.publishedNodeIds, []);
  });

  it("with attach off, are empty", async () => {
    d = await startDriver();
    const [a] = await twoVolumes(d);
    assert.deepEqual((await listed(d)).get(a), []);
  });
});
