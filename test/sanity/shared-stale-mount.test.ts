// A shared volume whose directory is replaced under its mount: reported, and healed by the next NodeStageVolume.
//
// On NFS this is a stale file handle (ESTALE), which needs a kernel NFS
// client to produce. On a local share the same event — the directory is
// removed and made again while mounted — leaves the mount holding the old,
// removed directory; the driver must notice and mount the new one.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { NFS_LOCAL } from "./backends";
import { Code, destroyDriver, expectCode, Mode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

describe("A shared volume's directory replaced under its mounts", () => {
  let d: DriverProcess;
  before(async () => {
    d = await startDriver();
  });
  after(async () => destroyDriver(d));

  it("is abnormal in NodeGetVolumeStats, refused by NodePublishVolume, and mounted again by NodeStageVolume", async () => {
    const cap = mountCapability(Mode.MULTI_NODE_MULTI_WRITER);
    const v = (await d.client.controller.createVolume({ name: uniqueName("pvc"), volumeCapabilities: [cap], parameters: NFS_LOCAL.parameters(d) })).volume!;
    const dir = path.join(NFS_LOCAL.parameters(d).share!, v.volumeContext!["csi-lab/subDir"]!);
    const req = { volumeId: v.volumeId, volumeContext: v.volumeContext, volumeCapability: cap };
    const stagingTargetPath = d.path(uniqueName("stage"));
    await d.client.node.nodeStageVolume({ ...req, stagingTargetPath });

    // Replaced on the "server": removed with its data, made again, new data written.
    await fsp.rm(dir, { recursive: true });
    await fsp.mkdir(dir);
    await fsp.writeFile(path.join(dir, "new"), "after");

    const stats = await d.client.node.nodeGetVolumeStats({ volumeId: v.volumeId, volumePath: stagingTargetPath });
    assert.equal(stats.volumeCondition!.abnormal, true);
    assert.match(stats.volumeCondition!.message ?? "", /removed/);
    // A pod must not be given the dead directory.
    await expectCode(d.client.node.nodePublishVolume({ ...req, stagingTargetPath, targetPath: d.path(uniqueName("pod")) }), Code.UNAVAILABLE);

    // The kubelet stages again (as after a node restart); the driver mounts the new directory.
    await d.client.node.nodeStageVolume({ ...req, stagingTargetPath });
    assert.equal(await fsp.readFile(path.join(stagingTargetPath, "new"), "utf8"), "after");
    const healed = await d.client.node.nodeGetVolumeStats({ volumeId: v.volumeId, volumePath: stagingTargetPath });
    assert.equal(healed.volumeCondition!.abnormal, false, healed.volumeCondition!.message);
    const targetPath = d.path(uniqueName("pod"));
    await d.client.node.nodePublishVolume({ ...req, stagingTargetPath, targetPath });
    assert.equal(await fsp.readFile(path.join(targetPath, "new"), "utf8"), "after");

    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath });
    await d.client.node.nodeUnstageVolume({ volumeId: v.volumeId, stagingTargetPath });
  });
});
