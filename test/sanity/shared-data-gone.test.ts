// A shared volume whose directory on the share was removed behind the driver: the volume exists (its record,
// its marker), its data does not. That is FAILED_PRECONDITION to ControllerExpandVolume and ControllerModifyVolume,
// saying which directory is missing and what to do — never NOT_FOUND, which tells the CO the volume does not exist.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { NFS_LOCAL } from "./backends";
import { Code, destroyDriver, expectCode, isMounted, Mode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

const MiB = 1024 * 1024;
const MISSING = /directory \S+ is missing from .*; restore it there, or delete the volume/;

describe("A shared volume whose directory on the share is gone", () => {
  let d: DriverProcess;
  /** Another node's controller: the same share, none of d's records (it acts on the marker's proof). */
  let other: DriverProcess;
  before(async () => {
    d = await startDriver();
    other = await startDriver({ extraArgs: ["--allow-share", NFS_LOCAL.parameters(d).share!] });
  });
  after(async () => {
    await destroyDriver(other);
    await destroyDriver(d);
  });

  const goneVolume = async (extra: Record<string, string> = {}) => {
    const v = (
      await d.client.controller.createVolume({
        name: uniqueName("pvc"),
        volumeCapabilities: [mountCapability(Mode.MULTI_NODE_MULTI_WRITER)],
        capacityRange: { requiredBytes: 64 * MiB },
        parameters: NFS_LOCAL.parameters(d, extra),
      })
    ).volume!;
    await fsp.rm(NFS_LOCAL.contentDir(d, v.volumeId!), { recursive: true });
    return v.volumeId!;
  };
  const recordedSize = async (volumeId: string) => (await d.client.controller.controllerGetVolume({ volumeId })).volume!.capacityBytes;

  for (const [who, driver] of [["its controller", () => d], ["a controller without its record", () => other]] as const) {
    it(`ControllerExpandVolume on ${who} answers FAILED_PRECONDITION naming the directory, and the size stays`, async () => {
      const volumeId = await goneVolume();
      await expectCode(driver().client.controller.controllerExpandVolume({ volumeId, capacityRange: { requiredBytes: 96 * MiB } }), Code.FAILED_PRECONDITION, MISSING);
      assert.equal(await recordedSize(volumeId), 64 * MiB);
      await d.client.controller.deleteVolume({ volumeId }); // a volume whose directory is gone is deleted: OK
    });

    it(`ControllerModifyVolume on ${who} answers FAILED_PRECONDITION naming the directory, and creates nothing`, async () => {
      const volumeId = await goneVolume();
      await expectCode(driver().client.controller.controllerModifyVolume({ volumeId, mutableParameters: { mode: "0700" } }), Code.FAILED_PRECONDITION, MISSING);
      await assert.rejects(fsp.lstat(NFS_LOCAL.contentDir(d, volumeId)), { code: "ENOENT" });
      await d.client.controller.deleteVolume({ volumeId });
    });
  }

  it("CreateSnapshot on a controller without its record answers FAILED_PRECONDITION naming the directory, as on its own", async () => {
    const volumeId = await goneVolume();
    for (const c of [d, other]) await expectCode(c.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: volumeId }), Code.FAILED_PRECONDITION, MISSING);
    await d.client.controller.deleteVolume({ volumeId });
  });

  it("NodeStageVolume answers FAILED_PRECONDITION naming the directory, and mounts nothing", async () => {
    const volumeId = await goneVolume();
    const stagingTargetPath = d.path(uniqueName("stage"));
    const volumeCapability = mountCapability(Mode.MULTI_NODE_MULTI_WRITER);
    await expectCode(d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability }), Code.FAILED_PRECONDITION, MISSING);
    assert.equal(await isMounted(stagingTargetPath), false);
    await d.client.controller.deleteVolume({ volumeId });
    await expectCode(d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability }), Code.NOT_FOUND); // deleted: it does not exist
  });

  it("a volume deleted with onDelete: retain after its directory went is NOT_FOUND then, not FAILED_PRECONDITION", async () => {
    const volumeId = await goneVolume({ onDelete: "retain" });
    await d.client.controller.deleteVolume({ volumeId });
    for (const c of [d, other]) {
      await expectCode(c.client.controller.controllerExpandVolume({ volumeId, capacityRange: { requiredBytes: 96 * MiB } }), Code.NOT_FOUND);
      await expectCode(c.client.controller.controllerModifyVolume({ volumeId, mutableParameters: { mode: "0700" } }), Code.NOT_FOUND);
      await expectCode(c.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: volumeId }), Code.NOT_FOUND);
    }
  });

  it("once the volume is deleted, both answer NOT_FOUND: then it does not exist", async () => {
    const volumeId = await goneVolume();
    await d.client.controller.deleteVolume({ volumeId });
    for (const c of [d, other]) {
      await expectCode(c.client.controller.controllerExpandVolume({ volumeId, capacityRange: { requiredBytes: 96 * MiB } }), Code.NOT_FOUND);
      await expectCode(c.client.controller.controllerModifyVolume({ volumeId, mutableParameters: { mode: "0700" } }), Code.NOT_FOUND);
    }
  });
});

// A shared snapshot whose content on the share was removed behind the driver: its record says it exists, so a
// restore from it is FAILED_PRECONDITION saying so — NOT_FOUND would tell the CO the source snapshot does not exist —
// and DeleteSnapshot finishes the delete (its record goes) and answers OK.
describe("A shared snapshot whose content on the share is gone", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));

  const goneSnapshot = async () => {
    const parameters = NFS_LOCAL.parameters(d);
    const source = (await d.client.controller.createVolume({ name: uniqueName("pvc"), volumeCapabilities: [mountCapability()], parameters })).volume!.volumeId!;
    const snapshotId = (await d.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: source })).snapshot!.snapshotId!;
    const content = path.join(d.share, ".csi-lab", "snapshots", snapshotId.split(":").at(-1)!);
    await fsp.rm(content, { recursive: true });
    return { snapshotId, parameters, record: `${content}.json` };
  };

  it("CreateVolume from it answers FAILED_PRECONDITION naming its content, and makes no volume", async () => {
    const { snapshotId, parameters } = await goneSnapshot();
    const req = { name: uniqueName("pvc"), volumeCapabilities: [mountCapability()], parameters, volumeContentSource: { snapshot: { snapshotId } } };
    await expectCode(d.client.controller.createVolume(req), Code.FAILED_PRECONDITION, /content of snapshot \S+ .*is missing.*delete the snapshot/);
    const names = (await d.client.controller.listVolumes({})).entries!.map((e) => e.volume!.volumeId!);
    assert.ok(!names.some((id) => id.endsWith(`:${req.name}`)), "no volume was made");
  });

  it("DeleteSnapshot answers OK and removes its record; then it is NOT_FOUND", async () => {
    const { snapshotId, record } = await goneSnapshot();
    await d.client.controller.deleteSnapshot({ snapshotId });
    await assert.rejects(fsp.lstat(record), { code: "ENOENT" });
    await expectCode(d.client.controller.getSnapshot({ snapshotId }), Code.NOT_FOUND);
    await d.client.controller.deleteSnapshot({ snapshotId });
  });
});
