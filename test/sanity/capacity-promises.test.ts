// GetCapacity reports what can still be promised: free space less the room
// volumes with an enforced size may still fill. It falls as volumes are
// promised, rises as they go, survives a restart, and CreateVolume and
// ControllerExpandVolume refuse what does not fit.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { blockCapability, Code, destroyDriver, expectCode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
import { driverOnLoopFs, type LoopFs, type LoopFsKind } from "./loop-fs";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const CASES: { title: string; root: LoopFsKind; parameters: Record<string, string> }[] = [
  { title: "image volumes", root: "ext4", parameters: { capacity: "image" } },
  { title: "quota volumes (btrfs qgroups)", root: "btrfs-quota", parameters: { capacity: "quota" } },
];

for (const c of CASES) {
  describe(`GetCapacity and promises, ${c.title}`, function () {
    this.timeout(60_000);
    let fs: LoopFs | undefined;
    let d: DriverProcess | undefined;
    driverOnLoopFs(c.root, 4 * GiB, (f, drv) => ((fs = f), (d = drv)));

    const available = async (parameters = c.parameters) => (await d!.client.controller.getCapacity({ parameters })).availableCapacity!;
    const create = (size: number, parameters = c.parameters) =>
      d!.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], capacityRange: { requiredBytes: size }, parameters });
    /** Equal within `slack` bytes (the file systems write some metadata of their own). */
    const near = (actual: number, expected: number, slack = 16 * MiB) =>
      assert.ok(Math.abs(actual - expected) <= slack, `${actual} is not within ${slack} of ${expected}`);

    it("falls by each volume's size as volumes are promised, and rises as they are deleted", async () => {
      const start = await available();
      const s = await fsp.statfs(fs!.mountPoint);
      near(start, s.bavail * s.bsize);
      const a = (await create(GiB)).volume!.volumeId!;
      near(await available(), start - GiB);
      const b = (await create(512 * MiB)).volume!.volumeId!;
      near(await available(), start - GiB - 512 * MiB);
      assert.equal((await d!.client.controller.getCapacity({ parameters: c.parameters })).maximumVolumeSize, await available());
      await d!.client.controller.deleteVolume({ volumeId: a });
      near(await available(), start - 512 * MiB);
      await d!.client.controller.deleteVolume({ volumeId: b });
      near(await available(), start);
    });

    it("is not reduced by capacity: none volumes, whose size nothing enforces", async () => {
      const start = await available();
      const id = (await create(GiB, { capacity: "none" })).volume!.volumeId!;
      near(await available(), start);
      await d!.client.controller.deleteVolume({ volumeId: id });
    });

    it("counts growth: ControllerExpandVolume promises the difference", async () => {
      const start = await available();
      const id = (await create(256 * MiB)).volume!.volumeId!;
      await d!.client.controller.controllerExpandVolume({ volumeId: id, capacityRange: { requiredBytes: 768 * MiB } });
      near(await available(), start - 768 * MiB);
      await d!.client.controller.deleteVolume({ volumeId: id });
    });

    it("is rebuilt from the volumes on disk after a restart", async () => {
      const id = (await create(GiB)).volume!.volumeId!;
      const promised = await available();
      await d!.restart();
      near(await available(), promised);
      await d!.client.controller.deleteVolume({ volumeId: id });
    });

    it("CreateVolume and ControllerExpandVolume refuse what cannot be promised with RESOURCE_EXHAUSTED", async () => {
      const small = (await create(GiB)).volume!.volumeId!;
      const big = (await create((await available()) - 256 * MiB)).volume!.volumeId!;
      // About 256 MiB can still be promised: neither a new 512 MiB volume nor 512 MiB of growth fits.
      await expectCode(create(512 * MiB), Code.RESOURCE_EXHAUSTED, /can promise only/);
      await expectCode(
        d!.client.controller.controllerExpandVolume({ volumeId: small, capacityRange: { requiredBytes: GiB + 512 * MiB } }),
        Code.RESOURCE_EXHAUSTED,
        /can promise only/,
      );
      await d!.client.controller.deleteVolume({ volumeId: big });
      await d!.client.controller.deleteVolume({ volumeId: small });
    });
  });
}

describe("GetCapacity with parameters this node cannot serve", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));

  it("is 0 for capacity: quota on a root without quotas", async () => {
    const res = await d.client.controller.getCapacity({ parameters: { capacity: "quota" } });
    assert.equal(res.availableCapacity ?? 0, 0);
  });

  it("is 0 for an fs_type no layout offers", async () => {
    const cap = { ...mountCapability(), mount: { fsType: "vfat", mountFlags: [], volumeMountGroup: "" } };
    const res = await d.client.controller.getCapacity({ volumeCapabilities: [cap], parameters: { capacity: "image" } });
    assert.equal(res.availableCapacity ?? 0, 0);
  });

  it("answers INVALID_ARGUMENT for an unknown capacity mode", async () => {
    await expectCode(d.client.controller.getCapacity({ parameters: { capacity: "lots" } }), Code.INVALID_ARGUMENT, /not a mode/);
  });
});

describe("promises made at once right after a start", function () {
  this.timeout(120_000);
  let d: DriverProcess | undefined;
  driverOnLoopFs("ext4", GiB, (_f, drv) => (d = drv));

  // At start-up the ledger is rebuilt from the records in the background, and
  // the first creates wait for it. They all resume together when it is done:
  // each must still see what the others took.
  it("CreateVolumes waiting for the start-up rebuild do not all take the same free space", async () => {
    const block = { volumeCapabilities: [blockCapability()], parameters: {} };
    // Many volumes, so that the rebuild takes long enough for the creates to wait for it:
    // copies of one record under other IDs (capacity: none, so they promise nothing).
    const none = { volumeCapabilities: [mountCapability()], capacityRange: { requiredBytes: MiB }, parameters: { capacity: "none" } };
    const one = (await d!.client.controller.createVolume({ name: uniqueName(), ...none })).volume!.volumeId!;
    const text = await fsp.readFile(path.join(d!.root, "volumes", `${one}.json`), "utf8");
    for (let i = 0; i < 20_000; i++) {
      const id = `hp-${i.toString(16).padStart(32, "0")}`;
      await fsp.writeFile(path.join(d!.root, "volumes", `${id}.json`), text.split(one).join(id));
    }
    const before = (await d!.client.controller.getCapacity(block)).availableCapacity!;
    const size = 384 * MiB;
    await d!.restart();
    const res = await Promise.allSettled(
      Array.from({ length: 6 }, () => d!.client.controller.createVolume({ name: uniqueName(), capacityRange: { requiredBytes: size }, ...block })),
    );
    const made = res.filter((r) => r.status === "fulfilled").length;
    assert.ok(made * size <= before, `${made} volumes of ${size} bytes were promised, but only ${before} bytes could be`);
    for (const r of res) if (r.status === "rejected") assert.equal((r.reason as { code: number }).code, Code.RESOURCE_EXHAUSTED);
  });
});
