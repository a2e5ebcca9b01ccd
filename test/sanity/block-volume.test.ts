// Block volumes: a loop device on a sparse image, published as a device
// node at the target, readable and writable there, read-only when asked,
// and gone — device and all — once unpublished and unstaged.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { constants as fsc, promises as fsp } from "node:fs";
import * as path from "node:path";
import { publishContextFor } from "../../src/csi/publish-context";
import { VolumeUsage_Unit as Unit } from "../../src/gen/csi";
import { readMountInfo } from "../../src/mount/mountinfo";
import { blockCapability, Code, destroyDriver, expectCode, Mode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
import { loopsOf } from "./loop-fs";

const MiB = 1024 * 1024;

describe("Block volumes", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));

  const create = async (size = 64 * MiB, mode = Mode.SINGLE_NODE_WRITER) =>
    (await d.client.controller.createVolume({ name: uniqueName("blk"), volumeCapabilities: [blockCapability(mode)], capacityRange: { requiredBytes: size } })).volume!;

  it("CreateVolume with block access makes a sparse image of exactly the size", async () => {
    const v = await create(64 * MiB);
    assert.equal(v.capacityBytes, 64 * MiB);
    const st = await fsp.stat(path.join(d.root, "data", v.volumeId!));
    assert.ok(st.isFile());
    assert.equal(st.size, 64 * MiB);
    assert.equal(st.blocks, 0, "nothing is allocated until written");
    const meta = JSON.parse(await fsp.readFile(path.join(d.root, "volumes", `${v.volumeId}.json`), "utf8"));
    assert.equal(meta.layout, "block");
  });

  it("publishes a device node that can be written and read, backed by the volume's image", async () => {
    const v = await create(64 * MiB, Mode.SINGLE_NODE_MULTI_WRITER);
    const volumeId = v.volumeId!;
    const image = path.join(d.root, "data", volumeId);
    const stagingTargetPath = d.path(uniqueName("stage"));
    const targetPath = d.path(uniqueName("dev"));
    const roTarget = d.path(uniqueName("ro-dev"));
    const cap = blockCapability(Mode.SINGLE_NODE_MULTI_WRITER);
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap });
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap }); // idempotent
    await d.client.node.nodePublishVolume({ volumeId, stagingTargetPath, targetPath, volumeCapability: cap });
    await d.client.node.nodePublishVolume({ volumeId, stagingTargetPath, targetPath, volumeCapability: cap }); // idempotent
    assert.ok((await fsp.stat(targetPath)).isBlockDevice(), "the target is a block device");
    assert.equal(loopsOf(image).length, 1, "one loop device for the volume");
    const entry = readMountInfo().find((m) => m.mountPoint === targetPath)!;
    assert.match(entry.root, /^\/loop\d+$/);

    const pattern = Buffer.alloc(MiB, 0x5a);
    const fh = await fsp.open(targetPath, fsc.O_RDWR);
    await fh.write(pattern, 0, MiB, 3 * MiB);
    await fh.sync();
    await fh.close();
    const back = Buffer.alloc(MiB);
    const img = await fsp.open(image, "r");
    await img.read(back, 0, MiB, 3 * MiB);
    await img.close();
    assert.ok(back.equals(pattern), "what the pod wrote is in the volume's image");

    // Read-only: a device of its own, attached read-only.
    await d.client.node.nodePublishVolume({ volumeId, stagingTargetPath, targetPath: roTarget, volumeCapability: cap, readonly: true });
    const ro = await fsp.open(roTarget, fsc.O_RDONLY);
    const seen = Buffer.alloc(MiB);
    await ro.read(seen, 0, MiB, 3 * MiB);
    await ro.close();
    assert.ok(seen.equals(pattern), "the read-only device shows the same data");
    // The kernel may let the device be opened for writing; the write itself is refused.
    await assert.rejects(
      (async () => {
        const w = await fsp.open(roTarget, fsc.O_RDWR);
        try {
          await w.write(Buffer.alloc(4096, 1), 0, 4096, 0);
          await w.sync();
        } finally {
          await w.close();
        }
      })(),
      (e: NodeJS.ErrnoException) => ["EROFS", "EACCES", "EPERM", "EIO"].includes(e.code!),
    );

    const stats = await d.client.node.nodeGetVolumeStats({ volumeId, volumePath: targetPath });
    assert.deepEqual(
      stats.usage!.map((u) => [u.unit, u.total]),
      [[Unit.BYTES, 64 * MiB]],
    );

    await expectCode(d.client.controller.deleteVolume({ volumeId }), Code.FAILED_PRECONDITION, /mounted/);
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath: roTarget });
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath });
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath }); // idempotent
    assert.equal((await fsp.stat(targetPath).catch(() => undefined)) === undefined, true, "the target file is removed");
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath }); // idempotent
    assert.deepEqual(loopsOf(image), [], "no loop device is left attached");
    assert.deepEqual(await fsp.readdir(stagingTargetPath), [], "the device placeholder is removed");
    await d.client.controller.deleteVolume({ volumeId });
    assert.equal((await fsp.stat(image).catch(() => undefined)) === undefined, true);
  });

  it("grows: ControllerExpandVolume grows the image, NodeExpandVolume the device", async () => {
    const { volumeId } = await create(64 * MiB);
    const stagingTargetPath = d.path(uniqueName("stage"));
    const targetPath = d.path(uniqueName("dev"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: blockCapability() });
    await d.client.node.nodePublishVolume({ volumeId, stagingTargetPath, targetPath, volumeCapability: blockCapability() });
    const res = await d.client.controller.controllerExpandVolume({ volumeId, capacityRange: { requiredBytes: 96 * MiB } });
    assert.equal(res.capacityBytes, 96 * MiB);
    assert.equal(res.nodeExpansionRequired, true);
    await d.client.node.nodeExpandVolume({ volumeId, volumePath: targetPath, stagingTargetPath });
    const size = Number(execFileSync("blockdev", ["--getsize64", targetPath], { encoding: "utf8" }).trim());
    assert.equal(size, 96 * MiB);
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath });
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
    await d.client.controller.deleteVolume({ volumeId });
  });

  it("NodeExpandVolume grows read-only devices too: a read-only publish's own device, and a volume staged read-only", async () => {
    // A block volume has no file system to grow: every loop device of its image is told the new size, read-only or not.
    const blockSize = (p: string) => Number(execFileSync("blockdev", ["--getsize64", p], { encoding: "utf8" }).trim());
    for (const publishContext of [{}, publishContextFor(d.nodeId, true)]) {
      const { volumeId } = await create(64 * MiB, Mode.SINGLE_NODE_MULTI_WRITER);
      const cap = blockCapability(Mode.SINGLE_NODE_MULTI_WRITER);
      const stagingTargetPath = d.path(uniqueName("stage"));
      const targetPath = d.path(uniqueName("dev"));
      await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap, publishContext });
      await d.client.node.nodePublishVolume({ volumeId, stagingTargetPath, targetPath, volumeCapability: cap, publishContext, readonly: true });
      await d.client.controller.controllerExpandVolume({ volumeId, capacityRange: { requiredBytes: 96 * MiB } });
      await d.client.node.nodeExpandVolume({ volumeId, volumePath: targetPath, stagingTargetPath, volumeCapability: cap });
      assert.equal(blockSize(targetPath), 96 * MiB, "the read-only device sees the new size");
      assert.equal(blockSize(path.join(stagingTargetPath, "block")), 96 * MiB, "the staged device sees the new size");
      await d.client.node.nodeUnpublishVolume({ volumeId, targetPath });
      await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
      await d.client.controller.deleteVolume({ volumeId });
    }
  });

  it("NodeExpandVolume grows the device at the kubelet's device path, though the pod it names is gone, where the staging path shows it", async () => {
    // The kubelet keeps the target of the pod it last mapped the device for as the volume's device
    // path, and sends that to NodeExpandVolume, even once that pod's target is unpublished.
    const { volumeId } = await create(64 * MiB, Mode.SINGLE_NODE_MULTI_WRITER);
    const cap = blockCapability(Mode.SINGLE_NODE_MULTI_WRITER);
    const stagingTargetPath = d.path(uniqueName("stage"));
    const [first, last] = [d.path(uniqueName("dev")), d.path(uniqueName("dev"))];
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap });
    for (const targetPath of [first, last]) await d.client.node.nodePublishVolume({ volumeId, stagingTargetPath, targetPath, volumeCapability: cap });
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath: last });
    await d.client.controller.controllerExpandVolume({ volumeId, capacityRange: { requiredBytes: 96 * MiB } });
    await expectCode(d.client.node.nodeExpandVolume({ volumeId, volumePath: last, volumeCapability: cap }), Code.NOT_FOUND, /not staged or published/);
    const res = await d.client.node.nodeExpandVolume({ volumeId, volumePath: last, stagingTargetPath, volumeCapability: cap, capacityRange: { requiredBytes: 96 * MiB } });
    assert.equal(res.capacityBytes, 96 * MiB);
    const size = Number(execFileSync("blockdev", ["--getsize64", first], { encoding: "utf8" }).trim());
    assert.equal(size, 96 * MiB, "the device the remaining pod has sees the new size");
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath: first });
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
    await d.client.controller.deleteVolume({ volumeId });
  });

  it("NodeGetVolumeStats at the kubelet's own bind of the device (volumeDevices/<pv>/dev/<pod uid>): its size, and once detached an abnormal condition", async () => {
    const volumeId = (await create(8 * MiB)).volumeId!;
    const image = path.join(d.root, "data", volumeId);
    const cap = blockCapability();
    const stagingTargetPath = d.path(uniqueName("stage"));
    const targetPath = d.path(uniqueName("dev"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap });
    await d.client.node.nodePublishVolume({ volumeId, stagingTargetPath, targetPath, volumeCapability: cap });
    // What the kubelet does once the device is published (MapBlockVolume): binds it at a file of its own.
    const kubeletBind = d.path(uniqueName("kubelet-dev"));
    await fsp.writeFile(kubeletBind, "");
    execFileSync("mount", ["--bind", targetPath, kubeletBind]);
    try {
      const stats = await d.client.node.nodeGetVolumeStats({ volumeId, volumePath: kubeletBind });
      assert.deepEqual(
        stats.usage!.map((u) => [u.unit, u.total]),
        [[Unit.BYTES, 8 * MiB]],
      );
      for (const dev of loopsOf(image)) execFileSync("losetup", ["-d", dev]);
      const lost = await d.client.node.nodeGetVolumeStats({ volumeId, volumePath: kubeletBind });
      assert.equal(lost.volumeCondition!.abnormal, true, JSON.stringify(lost));
      assert.match(lost.volumeCondition!.message!, /detached/);
    } finally {
      execFileSync("umount", [kubeletBind]);
      await fsp.unlink(kubeletBind);
    }
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath });
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
    await d.client.controller.deleteVolume({ volumeId });
  });

  it("is only ever a device: mount access is refused where it is checked", async () => {
    const { volumeId } = await create();
    const v = await d.client.controller.validateVolumeCapabilities({ volumeId, volumeCapabilities: [mountCapability()] });
    assert.equal(v.confirmed, undefined);
    assert.match(v.message!, /access type mount/);
    const ok = await d.client.controller.validateVolumeCapabilities({ volumeId, volumeCapabilities: [blockCapability()] });
    assert.ok(ok.confirmed);
    await expectCode(
      d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: d.path(uniqueName("stage")), volumeCapability: mountCapability() }),
      Code.FAILED_PRECONDITION,
      /access type mount/,
    );
  });

  it("CreateVolume refuses block and mount together, and block with capacity none or quota", async () => {
    await expectCode(
      d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [blockCapability(), mountCapability()] }),
      Code.INVALID_ARGUMENT,
      /both block and mount/,
    );
    for (const capacity of ["none", "quota"]) {
      await expectCode(
        d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [blockCapability()], parameters: { capacity } }),
        Code.INVALID_ARGUMENT,
        /block volumes are always image files/,
      );
    }
  });

  it("a directory volume is refused block access at NodeStageVolume", async () => {
    const { volumeId } = (
      await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], parameters: { capacity: "none" } })
    ).volume!;
    await expectCode(
      d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: d.path(uniqueName("stage")), volumeCapability: blockCapability() }),
      Code.FAILED_PRECONDITION,
      /access type block/,
    );
  });

  it("NodeGetVolumeStats reports an abnormal condition once the device has been detached behind the driver's back", async () => {
    const v = await create(8 * MiB);
    const volumeId = v.volumeId!;
    const image = path.join(d.root, "data", volumeId);
    const stagingTargetPath = d.path(uniqueName("stage"));
    const targetPath = d.path(uniqueName("dev"));
    const cap = blockCapability();
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap });
    await d.client.node.nodePublishVolume({ volumeId, stagingTargetPath, targetPath, volumeCapability: cap });
    // A bind of a device node does not hold the device: losetup -d detaches it at once.
    for (const dev of loopsOf(image)) execFileSync("losetup", ["-d", dev]);
    const stats = await d.client.node.nodeGetVolumeStats({ volumeId, volumePath: targetPath });
    assert.equal(stats.volumeCondition!.abnormal, true, JSON.stringify(stats));
    assert.match(stats.volumeCondition!.message!, /detached/);
    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath });
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
    await d.client.controller.deleteVolume({ volumeId });
  });
});
