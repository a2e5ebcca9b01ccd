// A loop device a crash left holding a volume's image is let go when the driver starts, without any call.
//
// A driver killed between a block volume's attach and its bind leaves the device attached and bound nowhere
// (src/mount/idle-loops.ts). Here such a device is made as the crash makes it (crash-hook.ts), or directly —
// losetup of the volume's image with no bind, which is what a crash leaves — beside a stranger's unused device,
// on a file of the same file system as the root and on another: after a restart the volume's device is gone,
// even with its image removed behind the driver, and the stranger's is still attached to its file.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { ioctlCrashEnv } from "./crash-hook";
import { publishContextFor } from "../../src/csi/publish-context";
import { readMountInfo } from "../../src/mount/mountinfo";
import { blockCapability, destroyDriver, loopBacking, Mode, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

const MiB = 1024 * 1024;
const LOOP_SET_STATUS64 = 0x4c04;

function losetup(file: string, readOnly = false): string {
  return execFileSync("losetup", ["-f", "--show", ...(readOnly ? ["-r"] : []), file], { encoding: "utf8" }).trim();
}

describe("Start-up: a loop device a crash left holding a volume's image is let go; no one else's is", () => {
  let d: DriverProcess | undefined;
  const strangers: string[] = [];
  const outside: string[] = [];
  afterEach(async () => {
    for (const s of strangers.splice(0)) if (loopBacking(s) !== undefined) execFileSync("losetup", ["-d", s]);
    for (const f of outside.splice(0)) await fsp.rm(f, { force: true });
    await destroyDriver(d);
    d = undefined;
  });

  async function blockVolume(): Promise<string> {
    const caps = [blockCapability()];
    return (await d!.client.controller.createVolume({ name: uniqueName("blk"), volumeCapabilities: caps, capacityRange: { requiredBytes: 8 * MiB } })).volume!
      .volumeId!;
  }

  /** Unused loop devices of files that are no volume's: one in the driver's scratch directory (the root's file system), one beside it. */
  async function strangersDevices(): Promise<{ dev: string; file: string }[]> {
    const out: { dev: string; file: string }[] = [];
    const beside = path.join(path.dirname(d!.dir), `${path.basename(d!.dir)}-stranger.img`);
    outside.push(beside);
    for (const file of [d!.scratch("stranger.img"), beside]) {
      await fsp.writeFile(file, Buffer.alloc(MiB, "s"));
      const dev = losetup(file);
      strangers.push(dev);
      out.push({ dev, file });
    }
    return out;
  }

  for (const how of ["writable", "read-only", "writable, its image removed behind the driver"] as const) {
    it(`a block volume's ${how} device attached by losetup with no bind is gone after a restart; strangers' stay`, async function () {
      if (process.env.CSI_LAB_SANDBOX !== "1") this.skip(); // it attaches loop devices of its own: only in the throwaway root
      d = await startDriver();
      const volumeId = await blockVolume();
      const image = path.join(d.root, "data", volumeId);
      await d.stop();
      const leaked = losetup(image, how === "read-only");
      const theirs = await strangersDevices();
      if (how.includes("removed")) await fsp.rm(image);

      await d.start();
      assert.equal(loopBacking(leaked), undefined, `the volume's device ${leaked} was let go`);
      for (const s of theirs) assert.equal(loopBacking(s.dev), s.file, `the stranger's device ${s.dev} is still attached to its file`);
      assert.ok(
        d.jsonLogs().some((l) => String(l.msg).includes("was let go") && l.volumeId === volumeId && l.device === leaked),
        "the start-up logs the device it let go",
      );
    });
  }

  it("an image volume's unused device is let go too; a file put at a volume's name is not its image, and its device stays", async function () {
    if (process.env.CSI_LAB_SANDBOX !== "1") this.skip();
    d = await startDriver();
    const imageVolume = (
      await d.client.controller.createVolume({
        name: uniqueName("img"),
        volumeCapabilities: [mountCapability()],
        capacityRange: { requiredBytes: 32 * MiB },
        parameters: { capacity: "image" },
      })
    ).volume!.volumeId!;
    const swapped = await blockVolume();
    await d.stop();
    const leaked = losetup(path.join(d.root, "data", imageVolume));
    // Another file at the block volume's name, attached: not the image its record names.
    const name = path.join(d.root, "data", swapped);
    await fsp.rename(name, d.scratch("moved.img"));
    await fsp.writeFile(name, Buffer.alloc(MiB, "x"));
    const impostor = losetup(name);
    strangers.push(impostor);

    await d.start();
    assert.equal(loopBacking(leaked), undefined, "the image volume's device was let go");
    assert.equal(loopBacking(impostor), name, "the device of the file put at the volume's name is still attached");
  });

  it("NodeStageVolume killed just after LOOP_SET_STATUS64, never retried: the restarted driver lets the device go", async function () {
    if (process.env.CSI_LAB_SANDBOX !== "1") this.skip();
    d = await startDriver();
    const note = d.scratch("crashed-at");
    const volumeId = await blockVolume();
    await d.stop();
    d.opts.env = ioctlCrashEnv(LOOP_SET_STATUS64, "after", note);
    await d.start();
    await assert.rejects(d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: d.path("staging"), volumeCapability: blockCapability() }));
    await d.exit;
    const leaked = readFileSync(note, "utf8");
    assert.ok(loopBacking(leaked)?.endsWith(`/${volumeId}`), "the device stayed attached, bound nowhere");
    const theirs = await strangersDevices();
    d.opts.env = process.env;
    await d.start();
    assert.equal(loopBacking(leaked), undefined, "the device was let go at start-up");
    for (const s of theirs) assert.equal(loopBacking(s.dev), s.file, `the stranger's device ${s.dev} is still attached to its file`);
  });

  it("a read-only NodeStageVolume binds the volume's read-only device that nothing binds, rather than attach another", async function () {
    if (process.env.CSI_LAB_SANDBOX !== "1") this.skip();
    d = await startDriver();
    const volumeId = await blockVolume();
    const publishContext = publishContextFor(d.nodeId, true); // attached read-only
    const stage = (staging: string) =>
      d!.client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: blockCapability(Mode.SINGLE_NODE_READER_ONLY), publishContext });
    const bindAt = (staging: string) => readMountInfo().find((m) => m.mountPoint === path.join(staging, "block"));
    // What a read-only stage cut off between its attach and its bind leaves: the driver's device (noted for the
    // volume: src/backends/hostpath/loop-notes.ts), attached read-only, bound nowhere.
    const first = d.path("first");
    await stage(first);
    const leaked = `/dev${bindAt(first)!.root}`;
    execFileSync("umount", [path.join(first, "block")]);
    const staging = d.path("staging");
    await stage(staging);
    assert.equal(bindAt(staging)?.root, `/${path.basename(leaked)}`, "the staged device is the one left attached");
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
    assert.equal(loopBacking(leaked), undefined, "the unstage let it go");
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: first });
  });
});
