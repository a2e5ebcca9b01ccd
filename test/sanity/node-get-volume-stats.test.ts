// NodeGetVolumeStats: numbers from statfs of a path where the volume really is.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { VolumeUsage_Unit as Unit } from "../../src/gen/csi";
import { Code, destroyDriver, expectCode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
import { BACKENDS } from "./backends";

for (const b of BACKENDS) {
describe(`NodeGetVolumeStats (${b.name})`, () => {
  let d: DriverProcess;
  let volumeId: string;
  let target: string;
  before(async () => {
    d = await startDriver();
    volumeId = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], parameters: b.parameters(d) })).volume!.volumeId!;
    const stagingTargetPath = d.path("stage");
    target = d.path("target");
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: mountCapability() });
    await d.client.node.nodePublishVolume({ volumeId, stagingTargetPath, targetPath: target, volumeCapability: mountCapability() });
  });
  after(async () => destroyDriver(d));

  it("reports bytes and inodes, consistent with statfs", async () => {
    await fsp.writeFile(path.join(target, "some-data"), Buffer.alloc(64 * 1024, 1)); // a fresh file system of its own (a tmpfs) holds nothing yet
    const res = await d.client.node.nodeGetVolumeStats({ volumeId, volumePath: target });
    const bytes = res.usage!.find((u) => u.unit === Unit.BYTES)!;
    const inodes = res.usage!.find((u) => u.unit === Unit.INODES)!;
    const s = await fsp.statfs(target);
    assert.equal(bytes.total, s.blocks * s.bsize);
    assert.ok(bytes.used! > 0 && bytes.available! > 0 && bytes.used! <= bytes.total!);
    assert.equal(inodes.total, s.files);
    assert.equal(res.volumeCondition!.abnormal ?? false, false);
  });

  it("of an unknown volume answers NOT_FOUND", async () => {
    await expectCode(d.client.node.nodeGetVolumeStats({ volumeId: "fake-vol-id", volumePath: target }), Code.NOT_FOUND);
  });

  it("on a path where the volume is not mounted answers NOT_FOUND", async () => {
    await expectCode(d.client.node.nodeGetVolumeStats({ volumeId, volumePath: d.path() }), Code.NOT_FOUND, /not mounted/);
    await expectCode(d.client.node.nodeGetVolumeStats({ volumeId, volumePath: "some/path" }), Code.NOT_FOUND);
  });

  it("on a path where another volume is mounted answers NOT_FOUND, not that volume's numbers", async () => {
    const other = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], parameters: b.parameters(d) })).volume!.volumeId!;
    const staging = d.path(uniqueName("stage"));
    await d.client.node.nodeStageVolume({ volumeId: other, stagingTargetPath: staging, volumeCapability: mountCapability() });
    await expectCode(d.client.node.nodeGetVolumeStats({ volumeId, volumePath: staging }), Code.NOT_FOUND, /not mounted/);
    await d.client.node.nodeGetVolumeStats({ volumeId: other, volumePath: staging });
    await d.client.node.nodeUnstageVolume({ volumeId: other, stagingTargetPath: staging });
  });

  it("reports an abnormal condition when the volume's directory has gone", async () => {
    const name = uniqueName();
    const id = (await d.client.controller.createVolume({ name, volumeCapabilities: [mountCapability()], parameters: b.parameters(d) })).volume!.volumeId!;
    const [staging, published] = [d.path(uniqueName("stage")), d.path(uniqueName("pod"))];
    await d.client.node.nodeStageVolume({ volumeId: id, stagingTargetPath: staging, volumeCapability: mountCapability() });
    await d.client.node.nodePublishVolume({ volumeId: id, stagingTargetPath: staging, targetPath: published, volumeCapability: mountCapability() });
    // Removed underneath its mounts (they keep the deleted directory alive).
    await b.removeContent(d, id);
    const res = await d.client.node.nodeGetVolumeStats({ volumeId: id, volumePath: published });
    assert.equal(res.volumeCondition!.abnormal, true, JSON.stringify(res.volumeCondition));
    await d.client.node.nodeUnpublishVolume({ volumeId: id, targetPath: published });
    await d.client.node.nodeUnstageVolume({ volumeId: id, stagingTargetPath: staging });
  });

  it("without volume_id or volume_path answers INVALID_ARGUMENT", async () => {
    await expectCode(d.client.node.nodeGetVolumeStats({ volumePath: target }), Code.INVALID_ARGUMENT);
    await expectCode(d.client.node.nodeGetVolumeStats({ volumeId }), Code.INVALID_ARGUMENT);
  });
});
}
