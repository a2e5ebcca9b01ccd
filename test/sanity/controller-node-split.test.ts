// The manifests run the driver twice: a controller Deployment (--mode controller, its own root,
// beside csi-resizer) and a node DaemonSet (--mode all, which provisions node-local volumes on its
// own disk). The controller holds no node-local volume; expansion still works end to end, and what
// cannot work from there (changing a node-local volume's mutable parameters) says why.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { blockCapability, Code, destroyDriver, expectCode, Mode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
import { encodePart } from "../../src/backends/nfs/volume-id";
import type { VolumeCapability } from "../../src/gen/csi";
import { IMAGE_FS_PROGRAMS, skipUnlessInstalled } from "./programs";

const MiB = 1024 * 1024;

describe("Controller and node in separate processes", () => {
  let node: DriverProcess;
  let controller: DriverProcess;
  before(async () => {
    node = await startDriver({ mode: "all" });
    controller = await startDriver({ mode: "controller", extraArgs: ["--allow-share", node.share] });
    await fsp.mkdir(node.share, { recursive: true });
  });
  after(async () => {
    await destroyDriver(controller);
    await destroyDriver(node);
  });

  it("a node-local volume grows: the controller answers the resizer, NodeExpandVolume grows it on its node", async function () {
    skipUnlessInstalled(this, ...IMAGE_FS_PROGRAMS.xfs);
    const cap = { ...mountCapability(), mount: { fsType: "xfs", mountFlags: [], volumeMountGroup: "" } };
    const { volumeId } = (await node.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [cap], capacityRange: { requiredBytes: 320 * MiB }, parameters: { capacity: "image" } })).volume!;
    const staging = node.path(uniqueName("stage"));
    const target = node.path(uniqueName("pod"));
    await node.client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: cap });
    await node.client.node.nodePublishVolume({ volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: cap });

    const before = (await fsp.statfs(target)).blocks * (await fsp.statfs(target)).bsize;
    const answer = await controller.client.controller.controllerExpandVolume({ volumeId, capacityRange: { requiredBytes: 400 * MiB, limitBytes: 0 } });
    assert.equal(answer.capacityBytes, 400 * MiB);
    assert.equal(answer.nodeExpansionRequired, true);
    await node.client.node.nodeExpandVolume({ volumeId, volumePath: target, capacityRange: { requiredBytes: 400 * MiB, limitBytes: 0 } });
    const s = await fsp.statfs(target);
    assert.ok(s.blocks * s.bsize - before >= 75 * MiB, `the pod's file system grew from ${before} to ${s.blocks * s.bsize} bytes`);

    await node.client.node.nodeUnpublishVolume({ volumeId, targetPath: target });
    await node.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
    await node.client.controller.deleteVolume({ volumeId });
  });

  // The resizer records the controller's answer as the PV's size, and the kubelet asks the node for that size.
  // The controller cannot tell these apart: [a volume, its claim's parameters, its capability, is it a file, the programs it needs]
  const xfsMount = () => ({ ...mountCapability(), mount: { fsType: "xfs", mountFlags: [], volumeMountGroup: "" } });
  const LAYOUTS: [string, Record<string, string>, () => VolumeCapability, boolean, string[]][] = [
    ["an image volume", { capacity: "image" }, xfsMount, true, IMAGE_FS_PROGRAMS.xfs], // xfs: grown mounted without CAP_SYS_RESOURCE
    ["a block volume", {}, blockCapability, true, []],
    ["a capacity: none directory", { capacity: "none" }, mountCapability, false, []],
  ];
  for (const [what, parameters, capability, isFile, programs] of LAYOUTS) {
    it(`${what} grown from the controller is answered with the size the node gives it, in whole MiB`, async function () {
      skipUnlessInstalled(this, ...programs);
      const volumeCapability = capability();
      const created = await node.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [volumeCapability], capacityRange: { requiredBytes: 320 * MiB }, parameters });
      const volumeId = created.volume!.volumeId!;
      const staging = node.path(uniqueName("stage"));
      const target = node.path(uniqueName("pod"));
      await node.client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability });
      await node.client.node.nodePublishVolume({ volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability });
      const answer = await controller.client.controller.controllerExpandVolume({ volumeId, capacityRange: { requiredBytes: 400 * MiB + 1, limitBytes: 0 } });
      assert.deepEqual([answer.capacityBytes, answer.nodeExpansionRequired], [401 * MiB, true]);
      const grown = await node.client.node.nodeExpandVolume({ volumeId, volumePath: target, stagingTargetPath: staging, capacityRange: { requiredBytes: answer.capacityBytes, limitBytes: 0 } });
      assert.equal(grown.capacityBytes, answer.capacityBytes, "the node's answer");
      assert.equal((await node.client.controller.controllerGetVolume({ volumeId })).volume!.capacityBytes, answer.capacityBytes, "the node's record");
      if (isFile) assert.equal((await fsp.stat(path.join(node.root, "data", volumeId))).size, answer.capacityBytes, "the image file");
      await node.client.node.nodeUnpublishVolume({ volumeId, targetPath: target });
      await node.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
      await node.client.controller.deleteVolume({ volumeId });
    });
  }

  it("a growth to a range that holds no whole MiB is OUT_OF_RANGE from the controller, saying why", async () => {
    const { volumeId } = (await node.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], capacityRange: { requiredBytes: 32 * MiB }, parameters: { capacity: "image" } })).volume!;
    await expectCode(controller.client.controller.controllerExpandVolume({ volumeId, capacityRange: { requiredBytes: 40 * MiB + 1, limitBytes: 40 * MiB + 4096 } }), Code.OUT_OF_RANGE, /whole MiB/);
    await node.client.controller.deleteVolume({ volumeId });
  });

  it("changing a node-local volume's mutable parameters from the controller is refused as infeasible, saying why", async () => {
    const { volumeId } = (await node.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()] })).volume!;
    await expectCode(controller.client.controller.controllerModifyVolume({ volumeId, mutableParameters: { mode: "0700" } }), Code.INVALID_ARGUMENT, /lives on a node's own disk/);
    await node.client.controller.deleteVolume({ volumeId });
  });

  it("a shared volume made by the node's provisioner can be grown and changed from the controller", async () => {
    const v = (await node.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability(Mode.MULTI_NODE_MULTI_WRITER)], parameters: { backend: "nfs", share: node.share } })).volume!;
    const grown = await controller.client.controller.controllerExpandVolume({ volumeId: v.volumeId, capacityRange: { requiredBytes: 2 * 1024 * MiB, limitBytes: 0 } });
    assert.equal(grown.nodeExpansionRequired, false);
    await controller.client.controller.controllerModifyVolume({ volumeId: v.volumeId, mutableParameters: { mode: "0750" } });
    assert.equal((await fsp.stat(path.join(node.share, v.volumeContext!["csi-lab/subDir"]!))).mode & 0o7777, 0o750);
    await node.client.controller.deleteVolume({ volumeId: v.volumeId });
  });

  it("a volume neither process made is NOT_FOUND everywhere", async () => {
    await expectCode(controller.client.controller.controllerExpandVolume({ volumeId: `nfs1:d::${encodePart(node.share.slice(1))}:never-made`, capacityRange: { requiredBytes: MiB, limitBytes: 0 } }), Code.NOT_FOUND);
    await expectCode(node.client.controller.controllerExpandVolume({ volumeId: "hp-00000000000000000000000000000000", capacityRange: { requiredBytes: MiB, limitBytes: 0 } }), Code.NOT_FOUND);
  });
});
