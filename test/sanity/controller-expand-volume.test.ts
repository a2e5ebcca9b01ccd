// ControllerExpandVolume: grows the record and what enforces it; never shrinks.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { blockCapability, Code, destroyDriver, expectCode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

const MiB = 1024 * 1024;

describe("ControllerExpandVolume", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));

  const create = async (parameters: Record<string, string> = {}, size = 64 * MiB) =>
    (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], capacityRange: { requiredBytes: size }, parameters }))
      .volume!.volumeId!;
  const meta = async (id: string) => JSON.parse(await fsp.readFile(path.join(d.root, "volumes", `${id}.json`), "utf8"));

  it("is advertised as EXPAND_VOLUME", async () => {
    const caps = (await d.client.controller.controllerGetCapabilities({})).capabilities!.map((c) => c.rpc!.type);
    assert.ok(caps.includes(9 /* EXPAND_VOLUME */));
  });

  it("grows an image volume's file and record, and asks for node expansion", async () => {
    const id = await create({ capacity: "image" });
    const res = await d.client.controller.controllerExpandVolume({ volumeId: id, capacityRange: { requiredBytes: 96 * MiB } });
    assert.equal(res.capacityBytes, 96 * MiB);
    assert.equal(res.nodeExpansionRequired, true);
    assert.equal((await fsp.stat(path.join(d.root, "data", id))).size, 96 * MiB);
    assert.equal((await meta(id)).capacityBytes, 96 * MiB);
    const listed = (await d.client.controller.controllerGetVolume({ volumeId: id })).volume!;
    assert.equal(listed.capacityBytes, 96 * MiB);
  });

  for (const capacity of ["image", "none"]) {
    it(`a ${capacity} volume whose data is gone answers FAILED_PRECONDITION saying so, and keeps its size`, async () => {
      const id = await create({ capacity });
      await fsp.rm(path.join(d.root, "data", id), { recursive: true });
      await expectCode(
        d.client.controller.controllerExpandVolume({ volumeId: id, capacityRange: { requiredBytes: 96 * MiB } }),
        Code.FAILED_PRECONDITION,
        /cannot be expanded: the volume's (image file|data directory) is missing/,
      );
      assert.equal((await meta(id)).capacityBytes, 64 * MiB);
      // Asking for no more than it has is still answered from the record.
      assert.equal((await d.client.controller.controllerExpandVolume({ volumeId: id, capacityRange: { requiredBytes: 64 * MiB } })).capacityBytes, 64 * MiB);
      await d.client.controller.deleteVolume({ volumeId: id });
    });
  }

  it("rounds an image volume up to whole MiB", async () => {
    const id = await create({ capacity: "image" });
    const res = await d.client.controller.controllerExpandVolume({ volumeId: id, capacityRange: { requiredBytes: 64 * MiB + 1 } });
    assert.equal(res.capacityBytes, 65 * MiB);
  });

  it("records a new size for a directory volume without node expansion", async () => {
    const id = await create({ capacity: "none" });
    const res = await d.client.controller.controllerExpandVolume({ volumeId: id, capacityRange: { requiredBytes: 100 * MiB + 5 } });
    assert.equal(res.capacityBytes, 100 * MiB + 5);
    assert.equal(res.nodeExpansionRequired, false);
  });

  it("refuses to shrink (limit_bytes below the size) with OUT_OF_RANGE and changes nothing", async () => {
    const id = await create({ capacity: "image" });
    await expectCode(
      d.client.controller.controllerExpandVolume({ volumeId: id, capacityRange: { requiredBytes: 32 * MiB, limitBytes: 32 * MiB } }),
      Code.OUT_OF_RANGE,
      /cannot shrink/,
    );
    assert.equal((await fsp.stat(path.join(d.root, "data", id))).size, 64 * MiB);
    assert.equal((await meta(id)).capacityBytes, 64 * MiB);
  });

  it("answers OK with the current size when the volume is already as large (the spec's idempotency rule)", async () => {
    const id = await create({ capacity: "image" });
    const smaller = await d.client.controller.controllerExpandVolume({ volumeId: id, capacityRange: { requiredBytes: 16 * MiB } });
    assert.equal(smaller.capacityBytes, 64 * MiB);
    await d.client.controller.controllerExpandVolume({ volumeId: id, capacityRange: { requiredBytes: 80 * MiB } });
    const again = await d.client.controller.controllerExpandVolume({ volumeId: id, capacityRange: { requiredBytes: 80 * MiB } });
    assert.equal(again.capacityBytes, 80 * MiB);
    assert.equal(again.nodeExpansionRequired, true);
  });

  it("refuses a size larger than the node can promise with RESOURCE_EXHAUSTED", async () => {
    const id = await create({ capacity: "image" });
    const { availableCapacity } = await d.client.controller.getCapacity({});
    await expectCode(
      d.client.controller.controllerExpandVolume({ volumeId: id, capacityRange: { requiredBytes: availableCapacity! + 128 * MiB } }),
      Code.RESOURCE_EXHAUSTED,
      /can promise only/,
    );
    assert.equal((await meta(id)).capacityBytes, 64 * MiB);
  });

  it("refuses a size beyond the whole file system with OUT_OF_RANGE", async () => {
    const id = await create({ capacity: "image" });
    await expectCode(d.client.controller.controllerExpandVolume({ volumeId: id, capacityRange: { requiredBytes: 2 ** 52 } }), Code.OUT_OF_RANGE, /cannot fit/);
  });

  it("with a capability the volume cannot deliver answers INVALID_ARGUMENT", async () => {
    const id = await create({ capacity: "image" });
    await expectCode(
      d.client.controller.controllerExpandVolume({ volumeId: id, capacityRange: { requiredBytes: 96 * MiB }, volumeCapability: blockCapability() }),
      Code.INVALID_ARGUMENT,
      /access type block/,
    );
  });

  it("of an unknown volume answers NOT_FOUND", async () => {
    await expectCode(
      d.client.controller.controllerExpandVolume({ volumeId: "hp-00000000000000000000000000000000", capacityRange: { requiredBytes: MiB } }),
      Code.NOT_FOUND,
    );
  });

  it("without volume_id or capacity_range answers INVALID_ARGUMENT; past 2^53 − 1 bytes OUT_OF_RANGE", async () => {
    const id = await create();
    await expectCode(d.client.controller.controllerExpandVolume({ capacityRange: { requiredBytes: MiB } }), Code.INVALID_ARGUMENT, /volume_id/);
    await expectCode(d.client.controller.controllerExpandVolume({ volumeId: id }), Code.INVALID_ARGUMENT, /capacity_range/);
    await expectCode(d.client.controller.controllerExpandVolume({ volumeId: id, capacityRange: {} }), Code.INVALID_ARGUMENT, /no size/);
    await expectCode(
      d.client.controller.controllerExpandVolume({ volumeId: id, capacityRange: { requiredBytes: -1 } }),
      Code.INVALID_ARGUMENT,
      /negative/,
    );
    await expectCode(
      d.client.controller.controllerExpandVolume({ volumeId: id, capacityRange: { requiredBytes: 2 ** 62 } }),
      Code.OUT_OF_RANGE,
      /a byte count above 9007199254740991 \(8 PiB\)/,
    );
  });
});
