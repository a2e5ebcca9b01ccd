// A memory volume's size is a whole number of pages: the kernel rounds a tmpfs's size= up to one,
// so the driver picks the size itself, inside the range, and the size it reports is the tmpfs's.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { VolumeUsage_Unit as Unit } from "../../src/gen/csi";
import { MEMORY } from "./backends";
import { Code, destroyDriver, expectCode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

/** The running kernel's page (4 KiB on x86-64). */
const PAGE = Number(execFileSync("getconf", ["PAGESIZE"], { encoding: "utf8" }).trim());
const MiB = 1024 * 1024;

describe("Memory volume sizes", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));

  const create = (requiredBytes: number, limitBytes: number) =>
    d.client.controller.createVolume({ name: uniqueName("mem"), volumeCapabilities: [mountCapability()], capacityRange: { requiredBytes, limitBytes }, parameters: MEMORY.parameters(d) });
  /** The size the kernel gives the volume's tmpfs. */
  const tmpfsBytes = async (volumeId: string) => {
    const s = await fsp.statfs(path.join(d.root, "memory", "data", volumeId));
    return s.blocks * s.bsize;
  };
  /** The size the reply, the record (ControllerGetVolume) and the tmpfs all give; they must agree. */
  const sizeOf = async (volumeId: string, replied: number) => {
    const { volume } = await d.client.controller.controllerGetVolume({ volumeId });
    assert.equal(volume!.capacityBytes, replied, "the record says what the reply said");
    assert.equal(await tmpfsBytes(volumeId), replied, "the tmpfs is as large as the reply says");
    return replied;
  };

  // [required_bytes, limit_bytes, the size chosen]
  const CHOSEN: [number, number, number][] = [
    [PAGE + 904, 0, 2 * PAGE], // rounded up
    [PAGE + 904, 3 * PAGE + 1, 2 * PAGE], // rounded up, within the limit
    [0, 2 * PAGE + 1808, 2 * PAGE], // a limit below the default: the largest whole page within it
    [0, 3 * PAGE, 3 * PAGE],
    [MiB, MiB, MiB], // a whole page already: as asked
  ];
  for (const [required, limit, size] of CHOSEN) {
    it(`CreateVolume with [${required}, ${limit || "no limit"}] makes a tmpfs of ${size} bytes and says so`, async () => {
      const { volume } = await create(required, limit);
      assert.equal(await sizeOf(volume!.volumeId!, volume!.capacityBytes!), size);
      await d.client.controller.deleteVolume({ volumeId: volume!.volumeId });
    });
  }

  it("CreateVolume with a range that holds no whole page answers OUT_OF_RANGE, saying why, and makes nothing", async () => {
    const before = await fsp.readdir(path.join(d.root, "memory", "volumes"));
    await expectCode(create(PAGE + 904, PAGE + 1904), Code.OUT_OF_RANGE, new RegExp(`whole pages of ${PAGE} bytes`));
    await expectCode(create(0, 100), Code.OUT_OF_RANGE, new RegExp(`whole pages of ${PAGE} bytes`));
    assert.deepEqual(await fsp.readdir(path.join(d.root, "memory", "volumes")), before);
    assert.deepEqual(await fsp.readdir(path.join(d.root, "memory", "data")), before.map((f) => f.slice(0, -".json".length)));
  });

  it("ControllerExpandVolume grows to whole pages, within the limit, and refuses a range with none", async () => {
    const { volume } = await create(4 * MiB, 0);
    const volumeId = volume!.volumeId!;
    await expectCode(d.client.controller.controllerExpandVolume({ volumeId, capacityRange: { requiredBytes: 4 * MiB + 1, limitBytes: 4 * MiB + 100 } }), Code.OUT_OF_RANGE, /whole pages/);
    assert.equal(await sizeOf(volumeId, 4 * MiB), 4 * MiB, "a refused growth changed nothing");
    const grown = await d.client.controller.controllerExpandVolume({ volumeId, capacityRange: { requiredBytes: 4 * MiB + 1, limitBytes: 0 } });
    assert.equal(await sizeOf(volumeId, grown.capacityBytes!), 4 * MiB + PAGE);
    await d.client.controller.deleteVolume({ volumeId });
  });

  it("NodeExpandVolume, growing the volume itself (asked by a controller apart from the nodes), grows to whole pages too", async () => {
    const { volume } = await create(4 * MiB, 0);
    const volumeId = volume!.volumeId!;
    const staging = d.path(uniqueName("stage"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: mountCapability() });
    const range = { requiredBytes: 5 * MiB + 1, limitBytes: 0 };
    const grown = await d.client.node.nodeExpandVolume({ volumeId, volumePath: staging, capacityRange: range });
    assert.equal(await sizeOf(volumeId, grown.capacityBytes!), 5 * MiB + PAGE);
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
    await d.client.controller.deleteVolume({ volumeId });
  });

  describe("a volume an older build recorded with a size that is not a whole page", () => {
    const asked = 2 * PAGE + 1808;
    /** What that build left: the bytes asked for in the record, and a tmpfs mounted with them (which the kernel made 3 pages). */
    async function oldVolume() {
      const { volume } = await create(asked, 0);
      const volumeId = volume!.volumeId!;
      const file = path.join(d.root, "memory", "volumes", `${volumeId}.json`);
      await d.stop();
      const record = JSON.parse(await fsp.readFile(file, "utf8")) as { capacityBytes: number };
      await fsp.writeFile(file, JSON.stringify({ ...record, capacityBytes: asked }, null, 2) + "\n");
      execFileSync("mount", ["-o", `remount,size=${asked}`, path.join(d.root, "memory", "data", volumeId)]);
      return { volumeId, file, written: await fsp.readFile(file, "utf8") };
    }
    /** Every figure the driver gives for it, and the tmpfs's own: all the 3 pages the kernel gave. */
    async function agree(volumeId: string) {
      assert.equal(await tmpfsBytes(volumeId), 3 * PAGE, "the kernel rounded the tmpfs up to 3 pages");
      await sizeOf(volumeId, 3 * PAGE);
      const listed = (await d.client.controller.listVolumes({})).entries!.find((e) => e.volume!.volumeId === volumeId);
      assert.equal(listed!.volume!.capacityBytes, 3 * PAGE, "ListVolumes");
      const staging = d.path(uniqueName("stage"));
      await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: mountCapability() });
      const stats = await d.client.node.nodeGetVolumeStats({ volumeId, volumePath: staging });
      assert.equal(stats.usage!.find((u) => u.unit === Unit.BYTES)!.total, 3 * PAGE, "NodeGetVolumeStats");
      await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
    }

    it("is read as the whole pages its tmpfs has, everywhere, and its record is not rewritten for it", async () => {
      const { volumeId, file, written } = await oldVolume();
      await d.start();
      await agree(volumeId);
      assert.equal(await fsp.readFile(file, "utf8"), written);
      await d.client.controller.deleteVolume({ volumeId });
    });

    it("after the node's restart gets a tmpfs of those whole pages again, and says so", async () => {
      const { volumeId } = await oldVolume();
      execFileSync("umount", [path.join(d.root, "memory", "data", volumeId)]); // what a reboot does to it
      await d.start();
      await agree(volumeId);
      await d.client.controller.deleteVolume({ volumeId });
    });

    it("ControllerExpandVolume to the size it already has grows nothing; past it, whole pages as for any volume", async () => {
      const { volumeId, file, written } = await oldVolume();
      await d.start();
      const same = await d.client.controller.controllerExpandVolume({ volumeId, capacityRange: { requiredBytes: 3 * PAGE, limitBytes: 0 } });
      assert.equal(same.capacityBytes, 3 * PAGE);
      assert.equal(await fsp.readFile(file, "utf8"), written, "nothing grew, nothing was written");
      const grown = await d.client.controller.controllerExpandVolume({ volumeId, capacityRange: { requiredBytes: 3 * PAGE + 1, limitBytes: 0 } });
      assert.equal(await sizeOf(volumeId, grown.capacityBytes!), 4 * PAGE);
      await d.client.controller.deleteVolume({ volumeId });
    });
  });

  it("a controller apart from the nodes answers the resizer with the size the node will give", async () => {
    const controller = await startDriver({ mode: "controller" });
    try {
      const { volume } = await create(4 * MiB, 0);
      const answer = await controller.client.controller.controllerExpandVolume({ volumeId: volume!.volumeId, capacityRange: { requiredBytes: 5 * MiB + 1, limitBytes: 0 } });
      assert.deepEqual([answer.capacityBytes, answer.nodeExpansionRequired], [5 * MiB + PAGE, true]);
      await d.client.controller.deleteVolume({ volumeId: volume!.volumeId });
    } finally {
      await destroyDriver(controller);
    }
  });
});
