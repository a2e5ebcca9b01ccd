// Image volumes: a sparse file with its own ext4 or XFS file system, loop-
// mounted at the staging path; one loop device per volume however often it
// is staged; nothing left attached after unstage — or after a kill -9.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { readMountInfo } from "../../src/mount/mountinfo";
import { Code, destroyDriver, expectCode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
import { loopsOf } from "./loop-fs";
import { IMAGE_FS_PROGRAMS, pathWithout, skipUnlessInstalled } from "./programs";

const MiB = 1024 * 1024;

const fsCap = (fsType: string) => ({ ...mountCapability(), mount: { fsType, mountFlags: [], volumeMountGroup: "" } });

describe("Image volumes", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver({ extraArgs: ["--default-capacity-mode", "image"] })));
  after(async () => destroyDriver(d));

  const create = async (fsType = "", size = 64 * MiB) =>
    (await d.client.controller.createVolume({ name: uniqueName("img"), volumeCapabilities: [fsCap(fsType)], capacityRange: { requiredBytes: size } })).volume!
      .volumeId!;

  for (const fsType of ["ext4", "xfs"]) {
    it(`fs_type ${fsType}: a sparse image, loop-mounted with its own ${fsType}, root writable by all`, async function () {
      skipUnlessInstalled(this, ...IMAGE_FS_PROGRAMS[fsType]);
      const id = await create(fsType, 320 * MiB);
      const image = path.join(d.root, "data", id);
      const st = await fsp.stat(image);
      assert.equal(st.size, 320 * MiB);
      assert.ok(st.blocks * 512 < 80 * MiB, `a fresh image takes little space (${st.blocks * 512} bytes)`);
      const meta = JSON.parse(await fsp.readFile(path.join(d.root, "volumes", `${id}.json`), "utf8"));
      assert.deepEqual([meta.layout, meta.fsType], ["image", fsType]);

      const staging = d.path(uniqueName("stage"));
      await d.client.node.nodeStageVolume({ volumeId: id, stagingTargetPath: staging, volumeCapability: fsCap(fsType) });
      const m = readMountInfo().find((e) => e.mountPoint === staging)!;
      assert.equal(m.fsType, fsType);
      assert.match(m.source, /^\/dev\/loop\d+$/);
      assert.deepEqual(loopsOf(image), [m.source]);
      assert.equal((await fsp.stat(staging)).mode & 0o777, 0o777);
      await d.client.node.nodeUnstageVolume({ volumeId: id, stagingTargetPath: staging });
      assert.deepEqual(loopsOf(image), [], "the loop device detaches with the last unmount");
    });
  }

  it("uses ext4 when no fs_type is asked for, and rounds sizes up to whole MiB", async () => {
    const { volume } = await d.client.controller.createVolume({
      name: uniqueName(),
      volumeCapabilities: [mountCapability()],
      capacityRange: { requiredBytes: 10 * MiB + 1 },
    });
    assert.equal(volume!.capacityBytes, 11 * MiB);
    const meta = JSON.parse(await fsp.readFile(path.join(d.root, "volumes", `${volume!.volumeId}.json`), "utf8"));
    assert.equal(meta.fsType, "ext4");
  });

  it("with only limit_bytes, not a whole MiB, gets the largest whole MiB within it", async () => {
    const create = (range: { requiredBytes?: number; limitBytes?: number }) =>
      d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], capacityRange: range });
    assert.equal((await create({ limitBytes: 20 * MiB + 5 })).volume!.capacityBytes, 20 * MiB);
    assert.equal((await create({ requiredBytes: 10 * MiB + 1, limitBytes: 20 * MiB + 5 })).volume!.capacityBytes, 11 * MiB);
    await expectCode(create({ requiredBytes: 10 * MiB + 1, limitBytes: 10 * MiB + 5 }), Code.OUT_OF_RANGE, /whole MiB/);
  });

  it("XFS needs 300 MiB: smaller requests are rounded up, or OUT_OF_RANGE when the limit forbids it", async function () {
    skipUnlessInstalled(this, ...IMAGE_FS_PROGRAMS.xfs);
    const { volume } = await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [fsCap("xfs")], capacityRange: { requiredBytes: MiB } });
    assert.equal(volume!.capacityBytes, 300 * MiB);
    await expectCode(
      d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [fsCap("xfs")], capacityRange: { limitBytes: 100 * MiB } }),
      Code.OUT_OF_RANGE,
      /at least 314572800 bytes/,
    );
  });

  it("refuses an fs_type it cannot make, and two different ones at once", async () => {
    await expectCode(create("vfat"), Code.INVALID_ARGUMENT, /vfat/);
    await expectCode(
      d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [fsCap("ext4"), fsCap("xfs")] }),
      Code.INVALID_ARGUMENT,
      /different fs_types/,
    );
  });

  it("is staged only with its own fs_type (or none); ValidateVolumeCapabilities agrees", async function () {
    skipUnlessInstalled(this, ...IMAGE_FS_PROGRAMS.xfs);
    const id = await create("xfs", 320 * MiB);
    await expectCode(
      d.client.node.nodeStageVolume({ volumeId: id, stagingTargetPath: d.path(uniqueName("stage")), volumeCapability: fsCap("ext4") }),
      Code.FAILED_PRECONDITION,
      /fs_type "ext4" is not supported/,
    );
    const bad = await d.client.controller.validateVolumeCapabilities({ volumeId: id, volumeCapabilities: [fsCap("ext4")] });
    assert.equal(bad.confirmed, undefined);
    const good = await d.client.controller.validateVolumeCapabilities({ volumeId: id, volumeCapabilities: [fsCap("xfs"), fsCap("")] });
    assert.ok(good.confirmed);
  });

  it("staged at two paths, is still one loop device and one file system", async () => {
    const id = await create();
    const image = path.join(d.root, "data", id);
    const [a, b] = [d.path(uniqueName("stage")), d.path(uniqueName("stage"))];
    await d.client.node.nodeStageVolume({ volumeId: id, stagingTargetPath: a, volumeCapability: fsCap("") });
    await d.client.node.nodeStageVolume({ volumeId: id, stagingTargetPath: b, volumeCapability: fsCap("") });
    assert.equal(loopsOf(image).length, 1);
    await fsp.writeFile(path.join(a, "seen"), "from a");
    assert.equal(await fsp.readFile(path.join(b, "seen"), "utf8"), "from a");
    await expectCode(d.client.controller.deleteVolume({ volumeId: id }), Code.FAILED_PRECONDITION, /still mounted/);
    await d.client.node.nodeUnstageVolume({ volumeId: id, stagingTargetPath: a });
    assert.equal(loopsOf(image).length, 1, "still staged at b");
    await d.client.node.nodeUnstageVolume({ volumeId: id, stagingTargetPath: b });
    assert.deepEqual(loopsOf(image), []);
    await d.client.controller.deleteVolume({ volumeId: id });
  });

  it("a kill -9 while volumes are being made and staged leaves no loop device behind and nothing half-made", async function () {
    this.timeout(60_000);
    const names = Array.from({ length: 12 }, () => uniqueName("crash"));
    const calls = names.map(async (name) => {
      const { volume } = await d.client.controller.createVolume({ name, volumeCapabilities: [fsCap("")], capacityRange: { requiredBytes: 32 * MiB } });
      await d.client.node.nodeStageVolume({ volumeId: volume!.volumeId, stagingTargetPath: d.path(`stage-${name}`), volumeCapability: fsCap("") });
    });
    await new Promise((r) => setTimeout(r, 60));
    d.proc.kill("SIGKILL");
    await Promise.allSettled(calls);
    await d.exit;
    await d.start();
    assert.deepEqual(await fsp.readdir(path.join(d.root, ".tmp")), []);
    // Every loop device attached to an image of this root is one a staged file system holds.
    const staged = new Set(readMountInfo().filter((m) => m.mountPoint.startsWith(d.dir)).map((m) => m.source));
    for (const id of await fsp.readdir(path.join(d.root, "data"))) {
      for (const loop of loopsOf(path.join(d.root, "data", id))) assert.ok(staged.has(loop), `${loop} is attached but not mounted`);
    }
    // Retrying converges, and unstaging leaves no device at all.
    for (const name of names) {
      const { volume } = await d.client.controller.createVolume({ name, volumeCapabilities: [fsCap("")], capacityRange: { requiredBytes: 32 * MiB } });
      const stagingTargetPath = d.path(`stage-${name}`);
      await d.client.node.nodeStageVolume({ volumeId: volume!.volumeId, stagingTargetPath, volumeCapability: fsCap("") });
      await d.client.node.nodeUnstageVolume({ volumeId: volume!.volumeId, stagingTargetPath });
      assert.deepEqual(loopsOf(path.join(d.root, "data", volume!.volumeId!)), []);
    }
  });
});

describe("Image volumes on a node without the file system's tools", () => {
  let d: DriverProcess | undefined;
  let bareBin: string | undefined;
  before(async () => {
    // As on a stock Debian without xfsprogs — and, here, without e2fsprogs' mkfs.ext4 either.
    bareBin = pathWithout(["mkfs.xfs", "mkfs.ext4"]);
    d = await startDriver({ extraArgs: ["--default-capacity-mode", "image"], env: { ...process.env, PATH: bareBin } });
  });
  after(async () => {
    await destroyDriver(d);
    if (bareBin) await fsp.rm(bareBin, { recursive: true, force: true });
  });

  const cases = [
    { fsType: "xfs", tool: "mkfs.xfs", pkg: "xfsprogs" },
    { fsType: "ext4", tool: "mkfs.ext4", pkg: "e2fsprogs" },
  ];
  for (const { fsType, tool, pkg } of cases) {
    it(`CreateVolume with fs_type ${fsType} answers FAILED_PRECONDITION "${tool} is not installed (Debian: ${pkg})" and leaves nothing behind`, async () => {
      const name = uniqueName("no-tool");
      const create = () => d!.client.controller.createVolume({ name, volumeCapabilities: [fsCap(fsType)], capacityRange: { requiredBytes: 320 * MiB } });
      const err = await expectCode(create(), Code.FAILED_PRECONDITION);
      assert.equal(err.details, `${tool} is not installed (Debian: ${pkg})`);
      assert.deepEqual(await fsp.readdir(path.join(d!.root, ".tmp")), []);
      assert.deepEqual(await fsp.readdir(path.join(d!.root, "volumes")), []);
      assert.deepEqual((await d!.client.controller.listVolumes({})).entries, []);
      // The same again: nothing half-made stands in the way of a retry.
      await expectCode(create(), Code.FAILED_PRECONDITION, /is not installed/);
    });
  }
});
