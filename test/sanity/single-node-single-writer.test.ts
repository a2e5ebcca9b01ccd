// ReadWriteOncePod (SINGLE_NODE_SINGLE_WRITER): one target at a time, judged from the kernel's mount table, across restarts.
import assert from "node:assert/strict";
import { Code, destroyDriver, expectCode, isMounted, literal, Mode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

describe("SINGLE_NODE_SINGLE_WRITER (ReadWriteOncePod)", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));

  async function staged(createdFor: Mode[], stageMode = createdFor[0]!) {
    const volumeId = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: createdFor.map((m) => mountCapability(m)) })).volume!.volumeId!;
    const stagingTargetPath = d.path(uniqueName("stage"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: mountCapability(stageMode) });
    return { volumeId, stagingTargetPath };
  }
  const publish = (v: { volumeId: string; stagingTargetPath: string }, targetPath: string, mode: Mode) =>
    d.client.node.nodePublishVolume({ ...v, targetPath, volumeCapability: mountCapability(mode) });

  it("a second target asking for SINGLE_NODE_MULTI_WRITER is refused while the first holds it as SINGLE_NODE_SINGLE_WRITER", async () => {
    const v = await staged([Mode.SINGLE_NODE_SINGLE_WRITER, Mode.SINGLE_NODE_MULTI_WRITER]);
    const [t1, t2] = [d.path(uniqueName("pod")), d.path(uniqueName("pod"))];
    await publish(v, t1, Mode.SINGLE_NODE_SINGLE_WRITER);
    await expectCode(publish(v, t2, Mode.SINGLE_NODE_MULTI_WRITER), Code.FAILED_PRECONDITION, new RegExp(`published at ${literal(t1)}`));
    assert.equal(await isMounted(t2), false);
    // Once the first pod is gone the second may have it.
    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: t1 });
    await publish(v, t2, Mode.SINGLE_NODE_MULTI_WRITER);
    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: t2 });
  });

  it("a second target asking for a one-workload mode is refused while the first holds it as SINGLE_NODE_MULTI_WRITER", async () => {
    // Only the request says "one workload" here: neither the volume's own modes nor the first target's record do.
    const v = await staged([Mode.SINGLE_NODE_MULTI_WRITER]);
    const [t1, t2] = [d.path(uniqueName("pod")), d.path(uniqueName("pod"))];
    await publish(v, t1, Mode.SINGLE_NODE_MULTI_WRITER);
    for (const mode of [Mode.SINGLE_NODE_WRITER, Mode.SINGLE_NODE_SINGLE_WRITER]) {
      await expectCode(publish(v, t2, mode), Code.FAILED_PRECONDITION, new RegExp(`published at ${literal(t1)} and its access mode .* allows one workload only`));
      assert.equal(await isMounted(t2), false);
    }
    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: t1 });
  });

  it("after a driver restart the existing target still counts (read from the mount table)", async () => {
    const v = await staged([Mode.SINGLE_NODE_SINGLE_WRITER]);
    const [t1, t2] = [d.path(uniqueName("pod")), d.path(uniqueName("pod"))];
    await publish(v, t1, Mode.SINGLE_NODE_SINGLE_WRITER);
    await d.restart();
    // Memory of the first publish is gone; the mount and the volume's access mode are not.
    await expectCode(publish(v, t2, Mode.SINGLE_NODE_MULTI_WRITER), Code.FAILED_PRECONDITION, /one workload/);
    await expectCode(publish(v, t2, Mode.SINGLE_NODE_SINGLE_WRITER), Code.FAILED_PRECONDITION, /one workload/);
    // The first target's own retry is still the idempotent OK.
    await publish(v, t1, Mode.SINGLE_NODE_SINGLE_WRITER);
    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: t1 });
    await publish(v, t2, Mode.SINGLE_NODE_SINGLE_WRITER);
    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: t2 });
  });

  it("SINGLE_NODE_MULTI_WRITER volumes still take many targets after a restart", async () => {
    const v = await staged([Mode.SINGLE_NODE_MULTI_WRITER]);
    const targets = [d.path(uniqueName("pod")), d.path(uniqueName("pod")), d.path(uniqueName("pod"))];
    await publish(v, targets[0]!, Mode.SINGLE_NODE_MULTI_WRITER);
    await d.restart();
    for (const t of targets.slice(1)) await publish(v, t, Mode.SINGLE_NODE_MULTI_WRITER);
    for (const t of targets) await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: t });
  });
});
