// Hostile and malformed input: the right status, nothing created, the process alive.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { Client, credentials, type ServiceError } from "@grpc/grpc-js";
import { Code, destroyDriver, expectCode, Mode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
import { BACKENDS } from "./backends";

const HOSTILE_TOKENS: [string, string][] = [
  ["parent directory", ".."],
  ["current directory", "."],
  ["path traversal", "../../etc/passwd"],
  ["slash", "a/b"],
  ["backslash", "a\\b"],
  ["NUL byte", "vol\0x"],
  ["newline", "vol\nx"],
  ["space", "vol x"],
  ["129 bytes", "v".repeat(129)],
  ["non-ASCII", "volüme"],
];

for (const b of BACKENDS) {
describe(`Bad input (${b.name})`, () => {
  let d: DriverProcess;
  let good: string;
  before(async () => {
    d = await startDriver();
    good = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], parameters: b.parameters(d) })).volume!.volumeId!;
  });
  after(async () => destroyDriver(d));

  const volumeDirs = async () => [...(await fsp.readdir(path.join(d.root, "volumes"))), ...(await fsp.readdir(path.join(d.root, "data")))];

  for (const [what, name] of HOSTILE_TOKENS) {
    it(`CreateVolume with a name containing ${what} answers INVALID_ARGUMENT and creates nothing`, async () => {
      const before = await volumeDirs();
      await expectCode(d.client.controller.createVolume({ name, volumeCapabilities: [mountCapability()], parameters: b.parameters(d) }), Code.INVALID_ARGUMENT, /name/);
      assert.deepEqual(await volumeDirs(), before);
    });
  }

  const byId: [string, (id: string) => Promise<unknown>][] = [
    ["DeleteVolume", (id) => d.client.controller.deleteVolume({ volumeId: id })],
    ["ValidateVolumeCapabilities", (id) => d.client.controller.validateVolumeCapabilities({ volumeId: id, volumeCapabilities: [mountCapability()] })],
    ["ControllerGetVolume", (id) => d.client.controller.controllerGetVolume({ volumeId: id })],
    ["NodeStageVolume", (id) => d.client.node.nodeStageVolume({ volumeId: id, stagingTargetPath: d.path("s"), volumeCapability: mountCapability() })],
    ["NodeUnstageVolume", (id) => d.client.node.nodeUnstageVolume({ volumeId: id, stagingTargetPath: d.path("s") })],
    ["NodePublishVolume", (id) => d.client.node.nodePublishVolume({ volumeId: id, stagingTargetPath: d.path("s"), targetPath: d.path("t"), volumeCapability: mountCapability() })],
    ["NodeUnpublishVolume", (id) => d.client.node.nodeUnpublishVolume({ volumeId: id, targetPath: d.path("t") })],
    ["NodeGetVolumeStats", (id) => d.client.node.nodeGetVolumeStats({ volumeId: id, volumePath: d.path("t") })],
  ];
  for (const [rpc, call] of byId) {
    it(`${rpc} with a traversal or NUL in volume_id answers INVALID_ARGUMENT`, async () => {
      for (const id of ["../../../etc", "hp-x/../../y", "a\0b", ".."]) await expectCode(call(id), Code.INVALID_ARGUMENT, /volume_id/);
    });
  }

  it("node calls refuse relative paths and '..' components in staging/target paths", async () => {
    const cap = mountCapability();
    await expectCode(d.client.node.nodeStageVolume({ volumeId: good, stagingTargetPath: "relative/dir", volumeCapability: cap }), Code.INVALID_ARGUMENT, /absolute/);
    await expectCode(d.client.node.nodeStageVolume({ volumeId: good, stagingTargetPath: `${d.dir}/a/../../x`, volumeCapability: cap }), Code.INVALID_ARGUMENT, /\.\./);
    await expectCode(d.client.node.nodeUnpublishVolume({ volumeId: good, targetPath: "/tmp/\0x" }), Code.INVALID_ARGUMENT, /NUL/);
  });

  it("a map over the spec's 4 KiB limit answers INVALID_ARGUMENT", async () => {
    await expectCode(
      d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], parameters: { "csi.storage.k8s.io/x": "y".repeat(5000) } }),
      Code.INVALID_ARGUMENT,
      /4096/,
    );
  });

  it("an unknown StorageClass parameter answers INVALID_ARGUMENT naming it and the keys the backend knows", async () => {
    const err = await expectCode(
      d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], parameters: b.parameters(d, { bogus: "1" }) }),
      Code.INVALID_ARGUMENT,
      new RegExp(`unknown parameters key "bogus" \\(known for backend ${b.name}: backend(, [a-zA-Z]+)*\\)$`),
    );
    assert.doesNotMatch(err.details, /, \)/);
  });

  it("an unknown access mode number answers INVALID_ARGUMENT", async () => {
    await expectCode(
      d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [{ mount: { fsType: "", mountFlags: [], volumeMountGroup: "" }, accessMode: { mode: 99 as Mode } }] }),
      Code.INVALID_ARGUMENT,
      /access_mode/,
    );
  });

  it("a capability with both block and mount answers INVALID_ARGUMENT", async () => {
    await expectCode(
      d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [{ block: {}, mount: { fsType: "", mountFlags: [], volumeMountGroup: "" }, accessMode: { mode: 1 } }] }),
      Code.INVALID_ARGUMENT,
      /both/,
    );
  });

  it("bytes that are not a valid message answer INVALID_ARGUMENT, not INTERNAL; a size past 2^53 − 1 OUT_OF_RANGE", async () => {
    const raw = new Client(d.endpoint, credentials.createInsecure());
    const send = (bytes: Buffer) =>
      new Promise<ServiceError | undefined>((resolve) =>
        raw.makeUnaryRequest("/csi.v1.Controller/CreateVolume", (b: Buffer) => b, (b: Buffer) => b, bytes, (err) => resolve(err ?? undefined)),
      );
    // Field 1 (name) claims 100 bytes but the message ends after 3.
    const truncated = await send(Buffer.from([0x0a, 100, 0x61, 0x62, 0x63]));
    assert.equal(truncated?.code, Code.INVALID_ARGUMENT, truncated?.details);
    // capacity_range.required_bytes = 2^63-1: valid protobuf, but beyond what this driver can represent
    // exactly, and more than any volume can be: OUT_OF_RANGE, the spec's code for an unsupported size.
    const huge = Buffer.from([0x0a, 0x01, 0x78, 0x12, 0x0a, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    const big = await send(huge);
    assert.equal(big?.code, Code.OUT_OF_RANGE, big?.details);
    raw.close();
  });

  it("an unknown method answers UNIMPLEMENTED", async () => {
    const raw = new Client(d.endpoint, credentials.createInsecure());
    const err = await new Promise<ServiceError | undefined>((resolve) =>
      raw.makeUnaryRequest("/csi.v1.SnapshotMetadata/GetMetadataAllocated", (b: Buffer) => b, (b: Buffer) => b, Buffer.alloc(0), (e) => resolve(e ?? undefined)),
    );
    assert.equal(err?.code, Code.UNIMPLEMENTED);
    raw.close();
  });

  it("after all of it the driver is alive and the good volume is intact", async () => {
    assert.equal((await d.client.identity.probe({})).ready, true);
    const res = await d.client.controller.controllerGetVolume({ volumeId: good });
    assert.equal(res.volume!.volumeId, good);
    assert.equal(d.proc.exitCode, null);
  });
});
}
