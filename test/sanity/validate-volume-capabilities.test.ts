// ValidateVolumeCapabilities: a real check of access type and mode.
import assert from "node:assert/strict";
import { Code, destroyDriver, expectCode, Mode, blockCapability, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
import { BACKENDS } from "./backends";

for (const b of BACKENDS) {
describe(`ValidateVolumeCapabilities (${b.name})`, () => {
  let d: DriverProcess;
  let id: string;
  before(async () => {
    d = await startDriver();
    id = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], parameters: b.parameters(d) })).volume!.volumeId!;
  });
  after(async () => destroyDriver(d));

  it("confirms a mount capability with a single-node mode", async () => {
    for (const mode of [Mode.SINGLE_NODE_WRITER, Mode.SINGLE_NODE_READER_ONLY, Mode.SINGLE_NODE_SINGLE_WRITER, Mode.SINGLE_NODE_MULTI_WRITER]) {
      const res = await d.client.controller.validateVolumeCapabilities({ volumeId: id, volumeCapabilities: [mountCapability(mode)] });
      assert.ok(res.confirmed, `mode ${mode}: ${res.message}`);
      assert.equal(res.confirmed.volumeCapabilities![0]!.accessMode!.mode, mode);
    }
  });

  it(b.multiNode ? "confirms multi-node modes (ReadWriteMany)" : "does not confirm multi-node modes, and says why", async () => {
    for (const mode of [Mode.MULTI_NODE_READER_ONLY, Mode.MULTI_NODE_SINGLE_WRITER, Mode.MULTI_NODE_MULTI_WRITER]) {
      const res = await d.client.controller.validateVolumeCapabilities({ volumeId: id, volumeCapabilities: [mountCapability(mode)] });
      if (b.multiNode) {
        assert.ok(res.confirmed, res.message);
      } else {
        assert.equal(res.confirmed, undefined);
        assert.match(res.message!, /MULTI_NODE/);
      }
    }
  });

  it("does not confirm block access", async () => {
    const res = await d.client.controller.validateVolumeCapabilities({ volumeId: id, volumeCapabilities: [blockCapability()] });
    assert.equal(res.confirmed, undefined);
    assert.match(res.message!, /block/);
  });

  it("does not confirm a mount flag a bind mount cannot apply", async () => {
    const res = await d.client.controller.validateVolumeCapabilities({ volumeId: id, volumeCapabilities: [mountCapability(Mode.SINGLE_NODE_WRITER, ["discard"])] });
    assert.equal(res.confirmed, undefined);
    assert.match(res.message!, /discard/);
  });

  it("of an unknown volume answers NOT_FOUND", async () => {
    await expectCode(d.client.controller.validateVolumeCapabilities({ volumeId: "fake-vol-id", volumeCapabilities: [mountCapability()] }), Code.NOT_FOUND);
  });

  it("without volume_id or capabilities answers INVALID_ARGUMENT", async () => {
    await expectCode(d.client.controller.validateVolumeCapabilities({ volumeCapabilities: [mountCapability()] }), Code.INVALID_ARGUMENT);
    await expectCode(d.client.controller.validateVolumeCapabilities({ volumeId: id }), Code.INVALID_ARGUMENT);
  });

  it("with a capability that has no access mode answers INVALID_ARGUMENT", async () => {
    await expectCode(
      d.client.controller.validateVolumeCapabilities({ volumeId: id, volumeCapabilities: [{ mount: { fsType: "", mountFlags: [], volumeMountGroup: "" } }] }),
      Code.INVALID_ARGUMENT,
      /access_mode/,
    );
  });
});
}
