// ControllerModifyVolume and mutable_parameters (VolumeAttributesClass): real changes, refused ones change nothing.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { ControllerServiceCapability_RPC_Type as Cap } from "../../src/gen/csi";
import { Code, destroyDriver, expectCode, mountCapability, startDriver, uniqueName, type DriverProcess, DIR_VOLUMES } from "./harness";
import { BACKENDS } from "./backends";

describe("ControllerModifyVolume and mutable parameters", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ extraArgs: DIR_VOLUMES })));
  after(async () => destroyDriver(d));

  const create = async (mutableParameters?: Record<string, string>, name = uniqueName()) =>
    (await d.client.controller.createVolume({ name, volumeCapabilities: [mountCapability()], mutableParameters })).volume!.volumeId!;
  const rootMode = async (id: string) => (await fsp.stat(path.join(d.root, "data", id))).mode & 0o7777;
  const recorded = async (id: string) => JSON.parse(await fsp.readFile(path.join(d.root, "volumes", `${id}.json`), "utf8")).mutableParameters;

  it("MODIFY_VOLUME is advertised", async () => {
    const caps = (await d.client.controller.controllerGetCapabilities({})).capabilities!.map((c) => c.rpc!.type);
    assert.ok(caps.includes(Cap.MODIFY_VOLUME));
  });

  it("CreateVolume applies mutable_parameters (mode) to the volume's root and records them", async () => {
    const plain = await create();
    assert.equal(await rootMode(plain), 0o777);
    const id = await create({ mode: "750" });
    assert.equal(await rootMode(id), 0o750);
    assert.deepEqual(await recorded(id), { mode: "0750" });
  });

  it("CreateVolume with an unknown or invalid mutable parameter answers INVALID_ARGUMENT and creates nothing", async () => {
    const before = await fsp.readdir(path.join(d.root, "volumes"));
    await expectCode(d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], mutableParameters: { iops: "100" } }), Code.INVALID_ARGUMENT, /iops/);
    await expectCode(d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], mutableParameters: { mode: "999" } }), Code.INVALID_ARGUMENT, /octal/);
    await expectCode(d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], mutableParameters: { mode: "4755" } }), Code.INVALID_ARGUMENT, /setuid/);
    assert.deepEqual(await fsp.readdir(path.join(d.root, "volumes")), before);
  });

  it("with no mutable_parameters changes nothing: OK for a volume that exists, NOT_FOUND for one that does not", async () => {
    const id = await create({ mode: "750" });
    await d.client.controller.controllerModifyVolume({ volumeId: id });
    assert.equal(await rootMode(id), 0o750);
    assert.deepEqual(await recorded(id), { mode: "0750" });
    await expectCode(d.client.controller.controllerModifyVolume({ volumeId: "hp-00000000000000000000000000000000" }), Code.NOT_FOUND);
  });

  it("CreateVolume again with the same name and different mutable_parameters answers ALREADY_EXISTS", async () => {
    const name = uniqueName();
    const id = await create({ mode: "0770" }, name);
    assert.equal(await create({ mode: "770" }, name), id, "the same value spelled differently is the same request");
    await expectCode(d.client.controller.createVolume({ name, volumeCapabilities: [mountCapability()], mutableParameters: { mode: "0700" } }), Code.ALREADY_EXISTS, /mutable/);
  });

  it("changes the root's mode, records it, and is idempotent", async () => {
    const id = await create();
    await d.client.controller.controllerModifyVolume({ volumeId: id, mutableParameters: { mode: "0700" } });
    assert.equal(await rootMode(id), 0o700);
    assert.deepEqual(await recorded(id), { mode: "0700" });
    await d.client.controller.controllerModifyVolume({ volumeId: id, mutableParameters: { mode: "0700" } });
    assert.equal(await rootMode(id), 0o700);
    // The change is real: a pod's view through a mount shows it too.
    const stagingTargetPath = d.path(uniqueName("stage"));
    await d.client.node.nodeStageVolume({ volumeId: id, stagingTargetPath, volumeCapability: mountCapability() });
    assert.equal((await fsp.stat(stagingTargetPath)).mode & 0o7777, 0o700);
    await d.client.controller.controllerModifyVolume({ volumeId: id, mutableParameters: { mode: "2775" } });
    assert.equal((await fsp.stat(stagingTargetPath)).mode & 0o7777, 0o2775);
    await d.client.node.nodeUnstageVolume({ volumeId: id, stagingTargetPath });
  });

  it("with an unknown key among valid ones answers INVALID_ARGUMENT and modifies nothing", async () => {
    const id = await create({ mode: "0770" });
    await expectCode(d.client.controller.controllerModifyVolume({ volumeId: id, mutableParameters: { mode: "0700", XXX_FakeKey: "x" } }), Code.INVALID_ARGUMENT, /XXX_FakeKey/);
    assert.equal(await rootMode(id), 0o770);
    assert.deepEqual(await recorded(id), { mode: "0770" });
  });

  it("without volume_id answers INVALID_ARGUMENT; an unknown volume NOT_FOUND", async () => {
    await expectCode(d.client.controller.controllerModifyVolume({ mutableParameters: { mode: "0700" } }), Code.INVALID_ARGUMENT, /volume_id/);
    await expectCode(d.client.controller.controllerModifyVolume({ volumeId: "hp-00000000000000000000000000000000", mutableParameters: { mode: "0700" } }), Code.NOT_FOUND);
    await expectCode(d.client.controller.controllerModifyVolume({ volumeId: "non-existing-volume-id", mutableParameters: { mode: "0700" } }), Code.NOT_FOUND);
  });

  it("of a volume whose directory has gone answers FAILED_PRECONDITION", async () => {
    const id = await create();
    await fsp.rm(path.join(d.root, "data", id), { recursive: true });
    await expectCode(d.client.controller.controllerModifyVolume({ volumeId: id, mutableParameters: { mode: "0700" } }), Code.FAILED_PRECONDITION, /missing/);
  });

  it("CreateVolume retried for a volume whose directory has gone answers FAILED_PRECONDITION", async () => {
    const name = uniqueName();
    const id = await create({ mode: "0770" }, name);
    await fsp.rm(path.join(d.root, "data", id), { recursive: true });
    await expectCode(d.client.controller.createVolume({ name, volumeCapabilities: [mountCapability()], mutableParameters: { mode: "0770" } }), Code.FAILED_PRECONDITION, /missing/);
  });

  it("keeps the mutable parameters CreateVolume asked for beside the ones the volume has; a record without them still loads", async () => {
    const name = uniqueName();
    const id = await create({ mode: "0770" }, name);
    await d.client.controller.controllerModifyVolume({ volumeId: id, mutableParameters: { mode: "0700" } });
    const file = path.join(d.root, "volumes", `${id}.json`);
    const meta = JSON.parse(await fsp.readFile(file, "utf8"));
    assert.deepEqual([meta.mutableParameters, meta.createdMutableParameters], [{ mode: "0700" }, { mode: "0770" }]);
    // As a driver before the field wrote it: what the volume has is all there is to compare with.
    delete meta.createdMutableParameters;
    await fsp.writeFile(file, JSON.stringify(meta));
    await d.restart();
    assert.equal(await create({ mode: "0700" }, name), id);
    assert.equal(await rootMode(id), 0o700);
  });

  it("ValidateVolumeCapabilities confirms the volume's mutable parameters and says which differ", async () => {
    const id = await create({ mode: "0770" });
    const req = { volumeId: id, volumeCapabilities: [mountCapability()] };
    const ok = await d.client.controller.validateVolumeCapabilities({ ...req, mutableParameters: { mode: "770" } });
    assert.deepEqual(ok.confirmed!.mutableParameters, { mode: "770" });
    const differs = await d.client.controller.validateVolumeCapabilities({ ...req, mutableParameters: { mode: "0700" } });
    assert.equal(differs.confirmed, undefined);
    assert.match(differs.message!, /mode is "0770"/);
    const unknown = await d.client.controller.validateVolumeCapabilities({ ...req, mutableParameters: { iops: "1" } });
    assert.equal(unknown.confirmed, undefined);
    assert.match(unknown.message!, /iops/);
  });
});

// The external-provisioner retries CreateVolume with the request it first sent; ControllerModifyVolume may have come between.
for (const b of BACKENDS) {
  describe(`CreateVolume retried after ControllerModifyVolume (${b.name})`, () => {
    let d: DriverProcess;
    before(async () => (d = await startDriver({ extraArgs: DIR_VOLUMES })));
    after(async () => destroyDriver(d));

    const create = (name: string, mode: string) =>
      d.client.controller.createVolume({ name, volumeCapabilities: [mountCapability()], parameters: b.parameters(d), mutableParameters: { mode } });
    const rootMode = async (id: string) => (await fsp.stat(b.contentDir(d, id))).mode & 0o7777;

    it("returns the volume, as modified, with the mutable_parameters it was created with, also after a restart; others are ALREADY_EXISTS", async () => {
      const name = uniqueName();
      const id = (await create(name, "0770")).volume!.volumeId!;
      await d.client.controller.controllerModifyVolume({ volumeId: id, mutableParameters: { mode: "0700" } });
      await d.client.controller.controllerModifyVolume({ volumeId: id, mutableParameters: { mode: "0750" } });
      for (const when of ["after the modifications", "after a restart"]) {
        if (when === "after a restart") await d.restart();
        assert.equal((await create(name, "770")).volume!.volumeId, id, when);
        assert.equal(await rootMode(id), 0o750, `${when}: the retry did not undo the modification`);
        await expectCode(create(name, "0755"), Code.ALREADY_EXISTS, /mutable_parameters/);
      }
      await d.client.controller.deleteVolume({ volumeId: id });
    });
  });
}
