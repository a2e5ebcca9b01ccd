// ControllerGetVolume: description plus a volume condition that tells the truth.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import { Code, destroyDriver, expectCode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
import { BACKENDS } from "./backends";

for (const b of BACKENDS) {
describe(`ControllerGetVolume (${b.name})`, () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));
  const dataDir = (id: string) => b.contentDir(d, id);

  it("describes a volume as CreateVolume did, with a normal condition", async () => {
    const created = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], parameters: b.parameters(d) })).volume!;
    const res = await d.client.controller.controllerGetVolume({ volumeId: created.volumeId });
    assert.deepEqual(res.volume, created);
    assert.equal(res.status!.volumeCondition!.abnormal ?? false, false);
  });

  it("reports abnormal when the volume's directory has gone", async () => {
    const id = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], parameters: b.parameters(d) })).volume!.volumeId!;
    await b.removeContent(d, id);
    const res = await d.client.controller.controllerGetVolume({ volumeId: id });
    assert.equal(res.status!.volumeCondition!.abnormal, true);
    assert.match(res.status!.volumeCondition!.message!, /missing/);
  });

  it("reports abnormal when the directory was replaced by a symlink", async () => {
    const id = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], parameters: b.parameters(d) })).volume!.volumeId!;
    const data = dataDir(id);
    await b.removeContent(d, id);
    await fsp.symlink("/etc", data);
    const res = await d.client.controller.controllerGetVolume({ volumeId: id });
    assert.equal(res.status!.volumeCondition!.abnormal, true);
    assert.match(res.status!.volumeCondition!.message!, /symlink/);
  });

  it("of an unknown volume answers NOT_FOUND", async () => {
    await expectCode(d.client.controller.controllerGetVolume({ volumeId: "hp-00000000000000000000000000000000" }), Code.NOT_FOUND);
  });
});
}
