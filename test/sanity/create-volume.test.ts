// CreateVolume: required fields, idempotency by name, capacity, topology, parameters.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { Code, destroyDriver, expectCode, Mode, blockCapability, mountCapability, startDriver, uniqueName, DIR_VOLUMES, type DriverProcess } from "./harness";
import { BACKENDS } from "./backends";

const MiB = 1024 * 1024;

describe("CreateVolume", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ extraArgs: DIR_VOLUMES })));
  after(async () => destroyDriver(d));

  const create = (name: string, extra: Record<string, unknown> = {}) =>
    d.client.controller.createVolume({ name, volumeCapabilities: [mountCapability()], ...extra });

  it("without a name answers INVALID_ARGUMENT", async () => {
    await expectCode(d.client.controller.createVolume({ volumeCapabilities: [mountCapability()] }), Code.INVALID_ARGUMENT, /name is required/);
  });

  it("without capabilities answers INVALID_ARGUMENT", async () => {
    await expectCode(d.client.controller.createVolume({ name: uniqueName() }), Code.INVALID_ARGUMENT, /volume_capabilities/);
  });

  it("makes a directory and metadata under the root, with this node's topology", async () => {
    const res = await create(uniqueName(), { capacityRange: { requiredBytes: 10 * MiB } });
    const v = res.volume!;
    assert.match(v.volumeId!, /^hp-[0-9a-f]{32}$/);
    assert.equal(v.capacityBytes, 10 * MiB);
    assert.deepEqual(v.accessibleTopology, [{ segments: { "csi-lab.example.org/node": "test-node" } }]);
    assert.ok((await fsp.stat(path.join(d.root, "data", v.volumeId!))).isDirectory());
    const meta = JSON.parse(await fsp.readFile(path.join(d.root, "volumes", `${v.volumeId}.json`), "utf8"));
    assert.equal(meta.capacityBytes, 10 * MiB);
  });

  it("gives a default size when no capacity is asked for", async () => {
    const res = await create(uniqueName());
    assert.equal(res.volume!.capacityBytes, 1024 ** 3);
  });

  it("with only a limit stays within it", async () => {
    const res = await create(uniqueName(), { capacityRange: { limitBytes: 5 * MiB } });
    assert.equal(res.volume!.capacityBytes, 5 * MiB);
  });

  it("with the same name and compatible arguments returns the same volume", async () => {
    const name = uniqueName();
    const a = await create(name, { capacityRange: { requiredBytes: MiB } });
    const b = await create(name, { capacityRange: { requiredBytes: MiB, limitBytes: 2 * MiB } });
    assert.equal(b.volume!.volumeId, a.volume!.volumeId);
    assert.equal(b.volume!.capacityBytes, MiB);
  });

  it("with the same name and a different size answers ALREADY_EXISTS", async () => {
    const name = uniqueName();
    await create(name, { capacityRange: { requiredBytes: MiB, limitBytes: MiB } });
    await expectCode(create(name, { capacityRange: { requiredBytes: 2 * MiB, limitBytes: 2 * MiB } }), Code.ALREADY_EXISTS, /outside the requested range/);
  });

  it("with the same name and different parameters answers ALREADY_EXISTS", async () => {
    const name = uniqueName();
    await create(name);
    await expectCode(create(name, { parameters: { backend: "hostpath" } }), Code.ALREADY_EXISTS, /parameters/);
  });

  it("accepts a 128-byte name and refuses a 129-byte one", async () => {
    await create("n".repeat(128));
    await expectCode(create("n".repeat(129)), Code.INVALID_ARGUMENT, /128/);
  });

  it("with limit below required answers OUT_OF_RANGE", async () => {
    await expectCode(create(uniqueName(), { capacityRange: { requiredBytes: 2 * MiB, limitBytes: MiB } }), Code.OUT_OF_RANGE);
  });

  it("larger than the whole file system answers OUT_OF_RANGE", async () => {
    await expectCode(create(uniqueName(), { capacityRange: { requiredBytes: 2 ** 52 } }), Code.OUT_OF_RANGE, /cannot fit/);
  });

  it("past 2^53 − 1 bytes (a PVC of 8Ei, well formed on the wire) answers OUT_OF_RANGE, not a decoding error", async () => {
    for (const capacityRange of [{ requiredBytes: 2 ** 62 }, { requiredBytes: MiB, limitBytes: 2 ** 60 }]) {
      await expectCode(create(uniqueName(), { capacityRange }), Code.OUT_OF_RANGE, /a byte count above 9007199254740991 \(8 PiB\)/);
    }
  });

  it("refuses access modes a node-local directory cannot deliver", async () => {
    await expectCode(
      d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability(Mode.MULTI_NODE_MULTI_WRITER)] }),
      Code.INVALID_ARGUMENT,
      /MULTI_NODE_MULTI_WRITER is not supported/,
    );
  });

  it("refuses block access for a directory volume (capacity: none)", async () => {
    await expectCode(
      d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [blockCapability()], parameters: { capacity: "none" } }),
      Code.INVALID_ARGUMENT,
      /block/,
    );
  });

  it("refuses an unknown StorageClass parameter, naming it", async () => {
    await expectCode(create(uniqueName(), { parameters: { backnd: "hostpath" } }), Code.INVALID_ARGUMENT, /backnd/);
  });

  it("accepts the provisioner's csi.storage.k8s.io/ metadata", async () => {
    await create(uniqueName(), { parameters: { "csi.storage.k8s.io/pvc/name": "data", "csi.storage.k8s.io/pvc/namespace": "default" } });
  });

  it("with requisite topology elsewhere answers RESOURCE_EXHAUSTED", async () => {
    const accessibilityRequirements = { requisite: [{ segments: { "csi-lab.example.org/node": "other-node" } }] };
    await expectCode(create(uniqueName(), { accessibilityRequirements }), Code.RESOURCE_EXHAUSTED, /other|not among/);
  });

  it("with requisite topology including this node succeeds", async () => {
    const accessibilityRequirements = {
      requisite: [{ segments: { "csi-lab.example.org/node": "other-node" } }, { segments: { "csi-lab.example.org/node": "test-node" } }],
    };
    await create(uniqueName(), { accessibilityRequirements });
  });

  it("a retry whose requisite topologies no longer reach the volume answers ALREADY_EXISTS; one that does returns it", async () => {
    const name = uniqueName();
    const here = { segments: { "csi-lab.example.org/node": "test-node" } };
    const elsewhere = { segments: { "csi-lab.example.org/node": "other-node" } };
    const made = await create(name, { accessibilityRequirements: { requisite: [here] } });
    await expectCode(create(name, { accessibilityRequirements: { requisite: [elsewhere] } }), Code.ALREADY_EXISTS, /requisite topologies do not reach/);
    const again = await create(name, { accessibilityRequirements: { requisite: [elsewhere, here], preferred: [elsewhere] } });
    assert.equal(again.volume!.volumeId, made.volume!.volumeId);
  });

  it("with a content source naming neither a snapshot nor a volume answers INVALID_ARGUMENT", async () => {
    await expectCode(create(uniqueName(), { volumeContentSource: {} }), Code.INVALID_ARGUMENT, /neither a snapshot nor a volume/);
  });
});

// The backend-independent part of the contract, run against every backend.
for (const b of BACKENDS) {
  describe(`CreateVolume contract (${b.name})`, () => {
    let d: DriverProcess;
    before(async () => (d = await startDriver({ extraArgs: DIR_VOLUMES })));
    after(async () => destroyDriver(d));

    const create = (name: string | undefined, extra: Record<string, unknown> = {}) =>
      d.client.controller.createVolume({ name, volumeCapabilities: [mountCapability()], parameters: b.parameters(d), ...extra });

    it("without a name or capabilities answers INVALID_ARGUMENT", async () => {
      await expectCode(create(undefined), Code.INVALID_ARGUMENT, /name is required/);
      await expectCode(d.client.controller.createVolume({ name: uniqueName(), parameters: b.parameters(d) }), Code.INVALID_ARGUMENT, /volume_capabilities/);
    });

    it("gives the default size, or what the range asks", async () => {
      assert.equal((await create(uniqueName())).volume!.capacityBytes, 1024 ** 3);
      assert.equal((await create(uniqueName(), { capacityRange: { limitBytes: 5 * MiB } })).volume!.capacityBytes, 5 * MiB);
    });

    it("is idempotent by name; a different size is ALREADY_EXISTS", async () => {
      const name = uniqueName();
      const a = await create(name, { capacityRange: { requiredBytes: MiB, limitBytes: MiB } });
      const again = await create(name, { capacityRange: { requiredBytes: MiB, limitBytes: 2 * MiB } });
      assert.equal(again.volume!.volumeId, a.volume!.volumeId);
      await expectCode(create(name, { capacityRange: { requiredBytes: 2 * MiB, limitBytes: 2 * MiB } }), Code.ALREADY_EXISTS, /outside the requested range/);
    });

    it("accepts a 128-byte name and refuses a 129-byte one", async () => {
      await create("m".repeat(128));
      await expectCode(create("m".repeat(129)), Code.INVALID_ARGUMENT, /128/);
    });

    it("with limit below required answers OUT_OF_RANGE", async () => {
      await expectCode(create(uniqueName(), { capacityRange: { requiredBytes: 2 * MiB, limitBytes: MiB } }), Code.OUT_OF_RANGE);
    });

    it("refuses an unknown parameter, naming it", async () => {
      await expectCode(create(uniqueName(), { parameters: b.parameters(d, { colour: "blue" }) }), Code.INVALID_ARGUMENT, /colour/);
    });

    it(b.multiNode ? "accepts ReadWriteMany (MULTI_NODE_MULTI_WRITER)" : "refuses ReadWriteMany (MULTI_NODE_MULTI_WRITER)", async () => {
      const call = d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability(Mode.MULTI_NODE_MULTI_WRITER)], parameters: b.parameters(d) });
      if (b.multiNode) await call;
      else await expectCode(call, Code.INVALID_ARGUMENT, /MULTI_NODE_MULTI_WRITER/);
    });
  });
}
