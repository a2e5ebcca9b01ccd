// NodeExpandVolume: the node's half of growing an image volume, and its errors.
import assert from "node:assert/strict";
import { promises as fsp, readFileSync } from "node:fs";
import { publishContextFor } from "../../src/csi/publish-context";
import { canGrowExt4Online } from "../../src/mount/filesystem";
import { readMountInfo } from "../../src/mount/mountinfo";
import { Code, destroyDriver, expectCode, blockCapability, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
import { IMAGE_FS_PROGRAMS, skipUnlessInstalled } from "./programs";

const MiB = 1024 * 1024;

describe("NodeExpandVolume", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));

  const fsCap = (fsType: string) => ({ ...mountCapability(), mount: { fsType, mountFlags: [], volumeMountGroup: "" } });

  /**
   * A published image volume of `size` bytes with `fsType`; `readonly` publishes it read-only, `stagedReadOnly`
   * stages it from a read-only attachment (every mount of it read-only).
   */
  async function published(fsType: string, size: number, opts: { readonly?: boolean; stagedReadOnly?: boolean } = {}) {
    const cap = fsCap(fsType);
    const { volumeId } = (
      await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [cap], capacityRange: { requiredBytes: size }, parameters: { capacity: "image" } })
    ).volume!;
    const stagingTargetPath = d.path(uniqueName("stage"));
    const targetPath = d.path(uniqueName("target"));
    const publishContext = opts.stagedReadOnly ? publishContextFor(d.nodeId, true) : {};
    await d.client.node.nodeStageVolume({ volumeId: volumeId!, stagingTargetPath, volumeCapability: cap, publishContext });
    await d.client.node.nodePublishVolume({ volumeId: volumeId!, stagingTargetPath, targetPath, volumeCapability: cap, publishContext, readonly: opts.readonly });
    const done = async () => {
      await d.client.node.nodeUnpublishVolume({ volumeId, targetPath });
      await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
      await d.client.controller.deleteVolume({ volumeId });
    };
    return { volumeId: volumeId!, stagingTargetPath, targetPath, done };
  }

  it("is advertised as EXPAND_VOLUME", async () => {
    const caps = (await d.client.node.nodeGetCapabilities({})).capabilities!.map((c) => c.rpc!.type);
    assert.ok(caps.includes(3 /* EXPAND_VOLUME */));
  });

  it("grows a mounted XFS image's file system while it is in use", async function () {
    skipUnlessInstalled(this, ...IMAGE_FS_PROGRAMS.xfs);
    const v = await published("xfs", 320 * MiB);
    const size = async () => {
      const s = await fsp.statfs(v.targetPath);
      return s.blocks * s.bsize;
    };
    const before = await size();
    await d.client.controller.controllerExpandVolume({ volumeId: v.volumeId, capacityRange: { requiredBytes: 640 * MiB } });
    const res = await d.client.node.nodeExpandVolume({ volumeId: v.volumeId, volumePath: v.targetPath, stagingTargetPath: v.stagingTargetPath });
    assert.equal(res.capacityBytes, 640 * MiB);
    const after = await size();
    assert.ok(after - before >= 310 * MiB, `file system grew from ${before} to ${after} bytes`);
    // Again: nothing left to do, still OK.
    await d.client.node.nodeExpandVolume({ volumeId: v.volumeId, volumePath: v.targetPath });
    await v.done();
  });

  it("grows a mounted ext4 image online — or, without CAP_SYS_RESOURCE, says so and grows it at the next stage", async () => {
    const v = await published("ext4", 64 * MiB);
    await d.client.controller.controllerExpandVolume({ volumeId: v.volumeId, capacityRange: { requiredBytes: 128 * MiB } });
    const expand = d.client.node.nodeExpandVolume({ volumeId: v.volumeId, volumePath: v.targetPath });
    if (canGrowExt4Online()) {
      await expand;
    } else {
      await expectCode(expand, Code.FAILED_PRECONDITION, /CAP_SYS_RESOURCE/);
      await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: v.targetPath });
      await d.client.node.nodeUnstageVolume({ volumeId: v.volumeId, stagingTargetPath: v.stagingTargetPath });
      await d.client.node.nodeStageVolume({ volumeId: v.volumeId, stagingTargetPath: v.stagingTargetPath, volumeCapability: fsCap("ext4") });
      await d.client.node.nodePublishVolume({ volumeId: v.volumeId, stagingTargetPath: v.stagingTargetPath, targetPath: v.targetPath, volumeCapability: fsCap("ext4") });
      await d.client.node.nodeExpandVolume({ volumeId: v.volumeId, volumePath: v.targetPath }); // nothing left to grow: OK
    }
    const s = await fsp.statfs(v.targetPath);
    assert.ok(s.blocks * s.bsize > 110 * MiB, `file system is ${s.blocks * s.bsize} bytes`);
    await v.done();
  });

  it("beyond the size recorded, grows the volume on the node itself (the controller may run apart)", async function () {
    skipUnlessInstalled(this, ...IMAGE_FS_PROGRAMS.xfs);
    const v = await published("xfs", 320 * MiB);
    const size = async () => {
      const s = await fsp.statfs(v.targetPath);
      return s.blocks * s.bsize;
    };
    const before = await size();
    const res = await d.client.node.nodeExpandVolume({ volumeId: v.volumeId, volumePath: v.targetPath, capacityRange: { requiredBytes: 400 * MiB } });
    assert.equal(res.capacityBytes, 400 * MiB);
    const after = await size();
    assert.ok(after - before >= 75 * MiB, `file system grew from ${before} to ${after} bytes`);
    const { volume } = await d.client.controller.controllerGetVolume({ volumeId: v.volumeId });
    assert.equal(volume!.capacityBytes, 400 * MiB, "the record grew too");
    await expectCode(
      d.client.node.nodeExpandVolume({ volumeId: v.volumeId, volumePath: v.targetPath, capacityRange: { requiredBytes: 0, limitBytes: 100 * MiB } }),
      Code.OUT_OF_RANGE,
      /cannot shrink/,
    );
    await v.done();
  });

  /** The size of the file system mounted at `p`, as statfs reports it (less what ext4 keeps for itself: a 320 MiB growth shows as 300). */
  async function fsBytes(p: string): Promise<number> {
    const s = await fsp.statfs(p);
    return s.blocks * s.bsize;
  }

  /** The size of the loop device whose file system is mounted at `p`. */
  function loopBytes(p: string): number {
    const m = readMountInfo().find((e) => e.mountPoint === p)!;
    return Number(readFileSync(`/sys/dev/block/${m.device}/size`, "utf8")) * 512;
  }

  for (const fsType of ["ext4", "xfs"]) {
    it(`grows a ${fsType} image published read-only through a read-write mount of the same file system`, async function () {
      skipUnlessInstalled(this, ...IMAGE_FS_PROGRAMS[fsType]!);
      const v = await published(fsType, 320 * MiB, { readonly: true });
      const before = await fsBytes(v.stagingTargetPath);
      await d.client.controller.controllerExpandVolume({ volumeId: v.volumeId, capacityRange: { requiredBytes: 640 * MiB } });
      const expand = d.client.node.nodeExpandVolume({ volumeId: v.volumeId, volumePath: v.targetPath, stagingTargetPath: v.stagingTargetPath });
      if (fsType === "ext4" && !canGrowExt4Online()) {
        await expectCode(expand, Code.FAILED_PRECONDITION, /CAP_SYS_RESOURCE/); // as for a read-write pod (above)
        return v.done();
      }
      const res = await expand;
      assert.equal(res.capacityBytes, 640 * MiB);
      const grown = await fsBytes(v.stagingTargetPath);
      assert.ok(grown - before >= 280 * MiB, `file system grew from ${before} to ${grown} bytes`);
      assert.equal(await fsBytes(v.targetPath), grown, "the pod's read-only mount shows the grown file system");
      // Without staging_target_path: the read-write mount the driver finds to be the volume's serves as well.
      await d.client.controller.controllerExpandVolume({ volumeId: v.volumeId, capacityRange: { requiredBytes: 960 * MiB } });
      await d.client.node.nodeExpandVolume({ volumeId: v.volumeId, volumePath: v.targetPath });
      const again = await fsBytes(v.targetPath);
      assert.ok(again - grown >= 280 * MiB, `file system grew from ${grown} to ${again} bytes`);
      await v.done();
    });

    it(`of a ${fsType} image staged read-only answers FAILED_PRECONDITION, changes nothing, and the next read-write stage grows it`, async function () {
      skipUnlessInstalled(this, ...IMAGE_FS_PROGRAMS[fsType]!);
      const v = await published(fsType, 320 * MiB, { stagedReadOnly: true });
      const expand = (requiredBytes = 0) =>
        d.client.node.nodeExpandVolume({ volumeId: v.volumeId, volumePath: v.targetPath, stagingTargetPath: v.stagingTargetPath, capacityRange: { requiredBytes } });
      await expand(); // nothing to grow: OK
      await d.client.controller.controllerExpandVolume({ volumeId: v.volumeId, capacityRange: { requiredBytes: 640 * MiB } });
      const [fsBefore, loopBefore] = [await fsBytes(v.stagingTargetPath), loopBytes(v.stagingTargetPath)];
      await expectCode(expand(), Code.FAILED_PRECONDITION, /mounted only read-only.*next staged read-write/);
      // Asked for more than the record says (a controller running apart): refused before the volume grows.
      await expectCode(expand(700 * MiB), Code.FAILED_PRECONDITION, /mounted only read-only/);
      const { volume } = await d.client.controller.controllerGetVolume({ volumeId: v.volumeId });
      assert.equal(volume!.capacityBytes, 640 * MiB, "the record did not grow");
      assert.equal(await fsBytes(v.stagingTargetPath), fsBefore, "the file system did not change");
      assert.equal(loopBytes(v.stagingTargetPath), loopBefore, "the loop device did not change");
      // Staged read-write, it grows.
      await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: v.targetPath });
      await d.client.node.nodeUnstageVolume({ volumeId: v.volumeId, stagingTargetPath: v.stagingTargetPath });
      await d.client.node.nodeStageVolume({ volumeId: v.volumeId, stagingTargetPath: v.stagingTargetPath, volumeCapability: fsCap(fsType) });
      await d.client.node.nodePublishVolume({ volumeId: v.volumeId, stagingTargetPath: v.stagingTargetPath, targetPath: v.targetPath, volumeCapability: fsCap(fsType) });
      const grown = await fsBytes(v.targetPath);
      assert.ok(grown - fsBefore >= 280 * MiB, `file system grew from ${fsBefore} to ${grown} bytes`);
      await expand(); // nothing left to grow: OK
      await v.done();
    });
  }

  it("grows ext4 through the proven read-write mount when the first mount of its device in the table is a read-only bind", async function () {
    // Staged at a second path, published read-only from the first, which is then unstaged: the pod's read-only bind is now
    // the first mount of the loop device the table lists, the second staging mount the only read-write one.
    if (!canGrowExt4Online()) this.skip(); // the offline growth at the next stage is the test above
    const v = await published("ext4", 64 * MiB, { readonly: true });
    const secondStage = d.path(uniqueName("stage"));
    await d.client.node.nodeStageVolume({ volumeId: v.volumeId, stagingTargetPath: secondStage, volumeCapability: fsCap("ext4") });
    await d.client.node.nodeUnstageVolume({ volumeId: v.volumeId, stagingTargetPath: v.stagingTargetPath });
    const device = readMountInfo().find((e) => e.mountPoint === v.targetPath)!.device;
    const first = readMountInfo().find((e) => e.device === device)!;
    assert.equal(first.mountPoint, v.targetPath, "the pod's bind is the device's first mount");
    assert.ok(first.options.includes("ro"), "and it is read-only");
    await d.client.controller.controllerExpandVolume({ volumeId: v.volumeId, capacityRange: { requiredBytes: 128 * MiB } });
    const res = await d.client.node.nodeExpandVolume({ volumeId: v.volumeId, volumePath: v.targetPath, stagingTargetPath: secondStage });
    assert.equal(res.capacityBytes, 128 * MiB);
    assert.ok((await fsBytes(v.targetPath)) > 110 * MiB, `file system is ${await fsBytes(v.targetPath)} bytes`);
    await d.client.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: v.targetPath });
    await d.client.node.nodeUnstageVolume({ volumeId: v.volumeId, stagingTargetPath: secondStage });
    await d.client.controller.deleteVolume({ volumeId: v.volumeId });
  });

  it("on a path where the volume is not mounted answers NOT_FOUND", async () => {
    const v = await published("ext4", 64 * MiB);
    await expectCode(d.client.node.nodeExpandVolume({ volumeId: v.volumeId, volumePath: d.path("elsewhere") }), Code.NOT_FOUND, /not staged or published/);
    await expectCode(d.client.node.nodeExpandVolume({ volumeId: v.volumeId, volumePath: "some/path" }), Code.NOT_FOUND);
    await v.done();
  });

  it("with a capability the volume cannot deliver answers INVALID_ARGUMENT", async () => {
    const v = await published("ext4", 64 * MiB);
    await expectCode(
      d.client.node.nodeExpandVolume({ volumeId: v.volumeId, volumePath: v.targetPath, volumeCapability: blockCapability() }),
      Code.INVALID_ARGUMENT,
      /access type block/,
    );
    await v.done();
  });

  it("of an unknown volume answers NOT_FOUND; without volume_id or volume_path INVALID_ARGUMENT", async () => {
    await expectCode(d.client.node.nodeExpandVolume({ volumeId: "hp-00000000000000000000000000000000", volumePath: "some/path" }), Code.NOT_FOUND);
    await expectCode(d.client.node.nodeExpandVolume({ volumePath: "/x" }), Code.INVALID_ARGUMENT, /volume_id/);
    await expectCode(d.client.node.nodeExpandVolume({ volumeId: "hp-00000000000000000000000000000000" }), Code.INVALID_ARGUMENT, /volume_path/);
  });
});
