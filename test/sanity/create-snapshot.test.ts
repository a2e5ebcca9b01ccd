// CreateSnapshot: a ready, faithful copy; idempotent by name; the spec's error codes.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { ControllerServiceCapability_RPC_Type as Cap } from "../../src/gen/csi";
import { Code, destroyDriver, expectCode, startDriver, uniqueName, type DriverProcess, DIR_VOLUMES } from "./harness";
import { createVolume, GiB, MiB, snapshotDir, volumeDir } from "./snapshot-helpers";

describe("CreateSnapshot", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ extraArgs: DIR_VOLUMES })));
  after(async () => destroyDriver(d));

  it("is advertised, with LIST_SNAPSHOTS and CLONE_VOLUME", async () => {
    const caps = (await d.client.controller.controllerGetCapabilities({})).capabilities!.map((c) => c.rpc!.type);
    for (const cap of [Cap.CREATE_DELETE_SNAPSHOT, Cap.LIST_SNAPSHOTS, Cap.CLONE_VOLUME]) assert.ok(caps.includes(cap), Cap[cap]);
  });

  it("answers a ready snapshot with the source, its size and the creation time", async () => {
    const volumeId = await createVolume(d, { capacityRange: { requiredBytes: 64 * MiB } });
    const before = Date.now();
    const res = await d.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: volumeId });
    const s = res.snapshot!;
    assert.match(s.snapshotId!, /^snap-[0-9a-f]{32}$/);
    assert.equal(s.sourceVolumeId, volumeId);
    assert.equal(s.sizeBytes, 64 * MiB);
    assert.equal(s.readyToUse, true);
    assert.equal(s.groupSnapshotId ?? "", "");
    const ms = s.creationTime!.seconds! * 1000 + Math.floor(s.creationTime!.nanos! / 1e6);
    assert.ok(ms >= before - 1000 && ms <= Date.now() + 1000, `creation_time ${ms} is not now`);
  });

  it("copies the volume's content at the time of the call", async () => {
    const volumeId = await createVolume(d);
    await fsp.writeFile(path.join(volumeDir(d, volumeId), "a.txt"), "before");
    const snapshotId = (await d.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: volumeId })).snapshot!.snapshotId!;
    await fsp.writeFile(path.join(volumeDir(d, volumeId), "a.txt"), "after");
    assert.equal(await fsp.readFile(path.join(snapshotDir(d, snapshotId), "a.txt"), "utf8"), "before");
  });

  it("with the same name and source returns the same snapshot, not a second copy", async () => {
    const volumeId = await createVolume(d);
    const req = { name: uniqueName("snap"), sourceVolumeId: volumeId };
    const first = (await d.client.controller.createSnapshot(req)).snapshot!;
    await fsp.writeFile(path.join(volumeDir(d, volumeId), "later.txt"), "x");
    const again = (await d.client.controller.createSnapshot(req)).snapshot!;
    assert.deepEqual(again, first);
    await assert.rejects(fsp.access(path.join(snapshotDir(d, first.snapshotId!), "later.txt")));
  });

  it("with the same name and a different source answers ALREADY_EXISTS", async () => {
    const name = uniqueName("snap");
    await d.client.controller.createSnapshot({ name, sourceVolumeId: await createVolume(d) });
    const other = await createVolume(d);
    await expectCode(d.client.controller.createSnapshot({ name, sourceVolumeId: other }), Code.ALREADY_EXISTS, /already exists/);
  });

  it("is still answered after its source volume was deleted (a retry must succeed)", async () => {
    const volumeId = await createVolume(d);
    const req = { name: uniqueName("snap"), sourceVolumeId: volumeId };
    const first = (await d.client.controller.createSnapshot(req)).snapshot!;
    await d.client.controller.deleteVolume({ volumeId });
    assert.deepEqual((await d.client.controller.createSnapshot(req)).snapshot, first);
  });

  it("of a volume that does not exist answers NOT_FOUND", async () => {
    await expectCode(
      d.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: "hp-00000000000000000000000000000000" }),
      Code.NOT_FOUND,
      /does not exist/,
    );
    await expectCode(d.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: "not-a-volume" }), Code.NOT_FOUND);
  });

  const bad: [string, object, RegExp][] = [
    ["no name", { sourceVolumeId: "hp-00000000000000000000000000000000" }, /name is required/],
    ["no source volume", { name: "snap-x" }, /source_volume_id is required/],
    ["a name with a slash", { name: "a/b", sourceVolumeId: "hp-00000000000000000000000000000000" }, /name/],
    ["a name over 128 bytes", { name: "n".repeat(129), sourceVolumeId: "hp-00000000000000000000000000000000" }, /128/],
    ["a source id of ..", { name: "snap-y", sourceVolumeId: ".." }, /source_volume_id/],
    ["an unknown parameter", { name: "snap-z", sourceVolumeId: "hp-00000000000000000000000000000000", parameters: { retain: "yes" } }, /unknown snapshot parameters "retain"/],
  ];
  for (const [what, req, message] of bad) {
    it(`with ${what} answers INVALID_ARGUMENT`, async () => {
      await expectCode(d.client.controller.createSnapshot(req), Code.INVALID_ARGUMENT, message);
    });
  }

  it("accepts the external-snapshotter's csi.storage.k8s.io/ metadata", async () => {
    const parameters = { "csi.storage.k8s.io/volumesnapshot/name": "snap-1", "csi.storage.k8s.io/volumesnapshot/namespace": "default" };
    const res = await d.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: await createVolume(d), parameters });
    assert.equal(res.snapshot!.readyToUse, true);
  });

  it("keeps the size of a large source as the least size to restore to", async () => {
    const volumeId = await createVolume(d, { capacityRange: { requiredBytes: 3 * GiB } });
    const res = await d.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: volumeId });
    assert.equal(res.snapshot!.sizeBytes, 3 * GiB);
  });
});
