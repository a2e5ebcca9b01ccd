// A block volume's loop device is never detached while a bind of its node may exist.
//
// A bind of a loop device's node does not hold the device: were the device detached under it (a
// driver killed between the bind and clearing AUTOCLEAR in NodeStageVolume, or between LOOP_CLR_FD
// and the unmount in NodeUnstageVolume), the next attach on the node — another volume's, or anyone's
// losetup — could take the same number, and the volume's bind would then name another file's device.
// Here the driver is killed just before and just after each of those ioctls (crash-hook.ts), a
// stranger's file is attached to exactly the loop number the volume had, when it is free, and the
// restarted driver is retried as a kubelet would: the retry answers OK, the staging path ends clean,
// the stranger's device and file are untouched, and nothing of the volume is left attached.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { readMountInfo } from "../../src/mount/mountinfo";
import { ioctlCrashEnv } from "./crash-hook";
import { blockCapability, destroyDriver, loopBacking, startDriver, uniqueName, type DriverProcess } from "./harness";

const MiB = 1024 * 1024;
const LOOP_SET_STATUS64 = 0x4c04;
const LOOP_CLR_FD = 0x4c01;

const CASES = [
  { rpc: "NodeStageVolume", ioctl: LOOP_SET_STATUS64, name: "LOOP_SET_STATUS64 (clearing AUTOCLEAR)" },
  { rpc: "NodeUnstageVolume", ioctl: LOOP_CLR_FD, name: "LOOP_CLR_FD (detach on last close)" },
] as const;

describe("Block volumes: a crash never leaves a bind of a loop device the volume no longer has", () => {
  let d: DriverProcess | undefined;
  afterEach(async () => {
    await destroyDriver(d);
    d = undefined;
  });

  for (const c of CASES)
    for (const moment of ["before", "after"] as const) {
      it(`${c.rpc} killed just ${moment} ${c.name}: after a stranger takes the freed device, the retry answers OK and leaves the stranger alone`, async function () {
        if (process.env.CSI_LAB_SANDBOX !== "1") this.skip(); // it attaches loop devices of its own: only in the throwaway root
        d = await startDriver();
        const note = d.scratch("crashed-at");
        const volumeId = (await d.client.controller.createVolume({ name: uniqueName("blk"), volumeCapabilities: [blockCapability()], capacityRange: { requiredBytes: 8 * MiB } }))
          .volume!.volumeId!;
        const staging = d.path("staging");
        const stage = () => d!.client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: blockCapability() });
        const unstage = () => d!.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });
        if (c.rpc === "NodeUnstageVolume") await stage();

        // The driver dies at the ioctl.
        await d.stop();
        d.opts.env = ioctlCrashEnv(c.ioctl, moment, note);
        await d.start();
        await assert.rejects(c.rpc === "NodeStageVolume" ? stage() : unstage());
        await d.exit;
        const n = Number(/^\/dev\/loop(\d+)$/.exec(readFileSync(note, "utf8"))?.[1]);
        assert.ok(Number.isInteger(n), "the driver died at a loop device's ioctl");

        // A stranger's file, on the very device the volume had if it is free now.
        const stranger = d.scratch("stranger.img");
        await fsp.writeFile(stranger, Buffer.alloc(MiB, "s"));
        const theirs = loopBacking(n) === undefined ? `/dev/loop${n}` : execFileSync("losetup", ["-f", "--show", stranger], { encoding: "utf8" }).trim();
        if (theirs === `/dev/loop${n}`) execFileSync("losetup", [theirs, stranger]);
        const theirNumber = Number(theirs.slice("/dev/loop".length));

        // The kubelet retries with a restarted driver.
        d.opts.env = process.env;
        await d.start();
        if (c.rpc === "NodeStageVolume") {
          await stage();
          const bind = readMountInfo().find((m) => m.mountPoint === path.join(staging, "block"));
          const staged = bind && Number(/^\/loop(\d+)$/.exec(bind.root)?.[1]);
          assert.ok(staged !== undefined && loopBacking(staged)?.endsWith(`/${volumeId}`), `the staged device is the volume's (${bind?.root} → ${staged && loopBacking(staged)})`);
        }
        await unstage();

        assert.deepEqual(
          readMountInfo().filter((m) => m.mountPoint === staging || m.mountPoint.startsWith(staging + "/")),
          [],
          "nothing is mounted at the staging path",
        );
        assert.equal(existsSync(path.join(staging, "block")), false, "the device file is gone");
        assert.equal(loopBacking(theirNumber), stranger, "the stranger's device is still attached to its file");
        assert.ok(readFileSync(stranger).equals(Buffer.alloc(MiB, "s")), "the stranger's file is unchanged");
        const ours = (await fsp.readdir("/sys/block")).filter((l) => /^loop\d+$/.test(l) && loopBacking(Number(l.slice(4)))?.startsWith(d!.root + "/"));
        assert.deepEqual(ours, [], "no loop device is left attached to the volume");
        await d.client.controller.deleteVolume({ volumeId });
        execFileSync("losetup", ["-d", theirs]);
      });
    }

  it("NodeStageVolume killed just after LOOP_SET_STATUS64, the stage never retried: DeleteVolume lets the device go with the volume", async function () {
    if (process.env.CSI_LAB_SANDBOX !== "1") this.skip();
    d = await startDriver();
    const note = d.scratch("crashed-at");
    const volumeId = (await d.client.controller.createVolume({ name: uniqueName("blk"), volumeCapabilities: [blockCapability()], capacityRange: { requiredBytes: 8 * MiB } }))
      .volume!.volumeId!;
    await d.stop();
    d.opts.env = ioctlCrashEnv(LOOP_SET_STATUS64, "after", note);
    await d.start();
    await assert.rejects(d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: d.path("staging"), volumeCapability: blockCapability() }));
    await d.exit;
    const n = Number(/^\/dev\/loop(\d+)$/.exec(readFileSync(note, "utf8"))?.[1]);
    assert.ok(loopBacking(n)?.endsWith(`/${volumeId}`), "the device stayed attached, bound nowhere");
    d.opts.env = process.env;
    await d.start();
    await d.client.controller.deleteVolume({ volumeId });
    assert.equal(loopBacking(n), undefined, "the device was let go");
  });
});
