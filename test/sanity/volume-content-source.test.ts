// CreateVolume from a snapshot (restore) and from a volume (clone): content, size rules, idempotency, errors.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import type { VolumeContentSource } from "../../src/gen/csi";
import { Code, destroyDriver, expectCode, mountCapability, startDriver, uniqueName, type DriverProcess, DIR_VOLUMES } from "./harness";
import { createSnapshot, createVolume, GiB, MiB, volumeDir } from "./snapshot-helpers";

interface Kind {
  what: string;
  /** A source holding hello.txt, of `bytes` capacity. */
  make(d: DriverProcess, bytes: number): Promise<VolumeContentSource>;
  missing: VolumeContentSource;
}

async function sourceVolume(d: DriverProcess, bytes: number): Promise<string> {
  const volumeId = await createVolume(d, { capacityRange: { requiredBytes: bytes } });
  await fsp.writeFile(path.join(volumeDir(d, volumeId), "hello.txt"), "hello from the source\n");
  return volumeId;
}

/** A content source as plain data (decoded messages carry the unset oneof member as undefined). */
function sourceOf(s: VolumeContentSource | undefined): string {
  return JSON.stringify({ snapshot: s?.snapshot?.snapshotId, volume: s?.volume?.volumeId });
}

const KINDS: Kind[] = [
  {
    what: "a snapshot",
    make: async (d, bytes) => ({ snapshot: { snapshotId: await createSnapshot(d, await sourceVolume(d, bytes)) } }),
    missing: { snapshot: { snapshotId: "snap-00000000000000000000000000000000" } },
  },
  {
    what: "a volume",
    make: async (d, bytes) => ({ volume: { volumeId: await sourceVolume(d, bytes) } }),
    missing: { volume: { volumeId: "hp-00000000000000000000000000000000" } },
  },
];

describe("CreateVolume with a content source", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ extraArgs: DIR_VOLUMES })));
  after(async () => destroyDriver(d));

  const create = (volumeContentSource: VolumeContentSource | undefined, extra: object = {}, name = uniqueName("vol")) =>
    d.client.controller.createVolume({ name, volumeCapabilities: [mountCapability()], volumeContentSource, ...extra });

  for (const kind of KINDS) {
    describe(`from ${kind.what}`, () => {
      it("starts with the source's content and reports the source", async () => {
        const src = await kind.make(d, 64 * MiB);
        const vol = (await create(src)).volume!;
        assert.deepEqual(sourceOf(vol.contentSource), sourceOf(src));
        assert.equal(await fsp.readFile(path.join(volumeDir(d, vol.volumeId!), "hello.txt"), "utf8"), "hello from the source\n");
        const got = await d.client.controller.controllerGetVolume({ volumeId: vol.volumeId });
        assert.deepEqual(sourceOf(got.volume!.contentSource), sourceOf(src));
      });

      it("is a copy: writes to the new volume do not reach the source", async () => {
        const src = await kind.make(d, 64 * MiB);
        const vol = (await create(src)).volume!;
        await fsp.writeFile(path.join(volumeDir(d, vol.volumeId!), "hello.txt"), "changed");
        const again = (await create(src)).volume!;
        assert.equal(await fsp.readFile(path.join(volumeDir(d, again.volumeId!), "hello.txt"), "utf8"), "hello from the source\n");
      });

      it("without a capacity_range gets the source's size when that is above the default", async () => {
        const vol = (await create(await kind.make(d, 3 * GiB))).volume!;
        assert.equal(vol.capacityBytes, 3 * GiB);
      });

      it("may be larger than the source", async () => {
        const vol = (await create(await kind.make(d, 64 * MiB), { capacityRange: { requiredBytes: 128 * MiB } })).volume!;
        assert.equal(vol.capacityBytes, 128 * MiB);
      });

      it("smaller than the source answers OUT_OF_RANGE", async () => {
        const src = await kind.make(d, 128 * MiB);
        await expectCode(create(src, { capacityRange: { requiredBytes: 64 * MiB } }), Code.OUT_OF_RANGE, /smaller than the content source/);
        await expectCode(create(src, { capacityRange: { limitBytes: 64 * MiB } }), Code.OUT_OF_RANGE, /smaller than the content source/);
      });

      it("with the same name and source is idempotent", async () => {
        const src = await kind.make(d, 64 * MiB);
        const name = uniqueName("vol");
        const first = (await create(src, {}, name)).volume!;
        assert.deepEqual((await create(src, {}, name)).volume, first);
      });

      it("with the same name and another source, or none, answers ALREADY_EXISTS", async () => {
        const name = uniqueName("vol");
        await create(await kind.make(d, 64 * MiB), {}, name);
        await expectCode(create(await kind.make(d, 64 * MiB), {}, name), Code.ALREADY_EXISTS, /already exists with/);
        await expectCode(create(undefined, {}, name), Code.ALREADY_EXISTS, /not no content source/);
      });

      it("with the name of a volume made without a source answers ALREADY_EXISTS", async () => {
        const name = uniqueName("vol");
        await create(undefined, {}, name);
        await expectCode(create(await kind.make(d, 64 * MiB), {}, name), Code.ALREADY_EXISTS, /no content source/);
      });

      it("from a source that does not exist answers NOT_FOUND", async () => {
        await expectCode(create(kind.missing), Code.NOT_FOUND, /does not exist/);
      });

      it("is still answered after its source was deleted (a retry must succeed)", async () => {
        const src = await kind.make(d, 64 * MiB);
        const name = uniqueName("vol");
        const first = (await create(src, {}, name)).volume!;
        if (src.snapshot) await d.client.controller.deleteSnapshot({ snapshotId: src.snapshot.snapshotId });
        else await d.client.controller.deleteVolume({ volumeId: src.volume!.volumeId });
        assert.deepEqual((await create(src, {}, name)).volume, first);
        await expectCode(create(src), Code.NOT_FOUND);
      });
    });
  }

  it("a hostile source ID answers INVALID_ARGUMENT", async () => {
    await expectCode(create({ snapshot: { snapshotId: "../../etc" } }), Code.INVALID_ARGUMENT, /snapshot_id/);
    await expectCode(create({ volume: { volumeId: "" } }), Code.INVALID_ARGUMENT, /volume_id is required/);
  });

  it("a volume can be cloned from a clone of a restored snapshot, content intact", async () => {
    const src = await KINDS[0]!.make(d, 64 * MiB);
    const restored = (await create(src)).volume!.volumeId!;
    const clone = (await create({ volume: { volumeId: restored } })).volume!.volumeId!;
    assert.equal(await fsp.readFile(path.join(volumeDir(d, clone), "hello.txt"), "utf8"), "hello from the source\n");
  });
});
