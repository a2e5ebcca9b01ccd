// A create whose content vanishes from .tmp between the commit of its record and the move into place
// (something other than the driver emptied .tmp, or a share's .csi-lab/tmp) answers ABORTED saying so — not NOT_FOUND, which would
// tell the CO the content source is missing — keeps nothing, and its retry makes the volume or snapshot.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { BACKENDS } from "./backends";
import { Code, destroyDriver, expectCode, Mode, mountCapability, uniqueName, type DriverProcess } from "./harness";
import { startSwapDriver } from "./swap-driver";

const list = async (dir: string) => (await fsp.readdir(dir)).sort();

describe("A create whose content is removed from .tmp just before it is moved into place", function () {
  this.timeout(60_000);
  let d: DriverProcess;
  let swapFile: string;
  before(async () => ({ d, swapFile } = await startSwapDriver()));
  after(async () => destroyDriver(d));

  it("CreateVolume (hostpath) answers ABORTED, keeps no record or data, and the retry makes the volume", async () => {
    const dirs = ["volumes", "data", ".tmp"].map((x) => path.join(d.root, x));
    const before = await Promise.all(dirs.map(list));
    const req = { name: uniqueName(), volumeCapabilities: [mountCapability()], parameters: {} };
    await fsp.writeFile(swapFile, `move ${path.join(d.root, "volumes")}\nrm -rf ${path.join(d.root, ".tmp")}/*\n`);
    const err = await expectCode(d.client.controller.createVolume(req), Code.ABORTED, /was removed .*nothing was kept.*retry/);
    assert.doesNotMatch(err.details, /^ENOENT/);
    assert.deepEqual(await Promise.all(dirs.map(list)), before, "nothing half-made is left");
    const volumeId = (await d.client.controller.createVolume(req)).volume!.volumeId!;
    assert.equal((await d.client.controller.controllerGetVolume({ volumeId })).volume!.volumeId, volumeId);
  });

  for (const b of BACKENDS.filter((x) => x.name !== "nfs")) {
    it(`CreateSnapshot (of a ${b.name} volume) answers ABORTED, keeps no record or content, and the retry makes the snapshot`, async () => {
      const sourceVolumeId = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], parameters: b.parameters(d) }))
        .volume!.volumeId!;
      const dirs = ["meta", "data", ".tmp"].map((x) => path.join(d.root, "snapshots", x));
      const before = await Promise.all(dirs.map(list));
      const req = { sourceVolumeId, name: uniqueName("snap") };
      await fsp.writeFile(swapFile, `move ${path.join(d.root, "snapshots", "meta")}\nrm -rf ${path.join(d.root, "snapshots", ".tmp")}/*\n`);
      const err = await expectCode(d.client.controller.createSnapshot(req), Code.ABORTED, /was removed .*nothing was kept.*retry/);
      assert.doesNotMatch(err.details, /^ENOENT/);
      assert.deepEqual(await Promise.all(dirs.map(list)), before, "nothing half-made is left");
      const snapshotId = (await d.client.controller.createSnapshot(req)).snapshot!.snapshotId!;
      assert.equal((await d.client.controller.getSnapshot({ snapshotId })).snapshot!.snapshotId, snapshotId);
    });
  }

  // On a share the move into place is the share agent's (renameSync); the hook runs at its first rename of the call.
  it("CreateVolume (nfs) whose directory is removed from the share's .csi-lab/tmp answers ABORTED, makes no volume, and the retry makes it", async () => {
    const b = BACKENDS.find((x) => x.name === "nfs")!;
    const req = { name: uniqueName(), volumeCapabilities: [mountCapability(Mode.MULTI_NODE_MULTI_WRITER)], parameters: b.parameters(d) };
    const dirs = [d.share, path.join(d.root, "shared")];
    await fsp.mkdir(path.join(d.share, ".csi-lab"), { recursive: true }); // the share's metadata, made on its first use
    const before = await Promise.all(dirs.map(list));
    const tmp = path.join(d.share, ".csi-lab", "tmp");
    await fsp.writeFile(swapFile, `rename\nrm -rf ${tmp}/*\n`);
    const err = await expectCode(d.client.controller.createVolume(req), Code.ABORTED, /was removed .*nothing was kept.*retry/);
    assert.doesNotMatch(err.details, /does not exist/);
    assert.deepEqual(await Promise.all(dirs.map(list)), before, "no volume directory or record is left");
    assert.deepEqual(await list(tmp), []);
    const volumeId = (await d.client.controller.createVolume(req)).volume!.volumeId!;
    assert.equal((await d.client.controller.controllerGetVolume({ volumeId })).volume!.volumeId, volumeId);
  });

  it("CreateSnapshot (nfs) whose copy is removed from the share's .csi-lab/tmp answers ABORTED, keeps no snapshot, and the retry makes it", async () => {
    const b = BACKENDS.find((x) => x.name === "nfs")!;
    const cap = mountCapability(Mode.MULTI_NODE_MULTI_WRITER);
    const sourceVolumeId = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [cap], parameters: b.parameters(d) })).volume!.volumeId!;
    const snapshots = path.join(d.share, ".csi-lab", "snapshots");
    await fsp.mkdir(snapshots, { recursive: true });
    const dirs = [snapshots, path.join(d.root, "shared-snapshots")];
    const before = await Promise.all(dirs.map(list));
    const req = { sourceVolumeId, name: uniqueName("snap") };
    const tmp = path.join(d.share, ".csi-lab", "tmp");
    await fsp.writeFile(swapFile, `rename\nrm -rf ${tmp}/*\n`);
    const err = await expectCode(d.client.controller.createSnapshot(req), Code.ABORTED, /was removed .*nothing was kept.*retry/);
    assert.doesNotMatch(err.details, /does not exist/);
    assert.deepEqual(await Promise.all(dirs.map(list)), before, "no snapshot copy or record is left");
    const snapshotId = (await d.client.controller.createSnapshot(req)).snapshot!.snapshotId!;
    assert.equal((await d.client.controller.getSnapshot({ snapshotId })).snapshot!.snapshotId, snapshotId);
  });

  // Its NOT_FOUND would say a source volume does not exist.
  it("CreateVolumeGroupSnapshot whose copy is removed from .tmp answers INTERNAL, keeps no member, and the retry makes the group", async () => {
    const sourceVolumeIds = [];
    for (let i = 0; i < 2; i++) {
      sourceVolumeIds.push((await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], parameters: {} })).volume!.volumeId!);
    }
    const dirs = ["meta", "data", ".tmp"].map((x) => path.join(d.root, "snapshots", x));
    const before = await Promise.all(dirs.map(list));
    const req = { name: uniqueName("group"), sourceVolumeIds };
    const tmp = path.join(d.root, "snapshots", ".tmp");
    await fsp.writeFile(swapFile, `move ${tmp}\nrm -rf ${tmp}/*\n`);
    const err = await expectCode(d.client.groupController.createVolumeGroupSnapshot(req), Code.INTERNAL, /^the driver met what it did not expect/);
    assert.match(err.details, /ENOENT during rename/);
    assert.deepEqual(await Promise.all(dirs.map(list)), before, "nothing half-made is left");
    const g = (await d.client.groupController.createVolumeGroupSnapshot(req)).groupSnapshot!;
    assert.equal(g.snapshots!.length, 2);
  });
});
