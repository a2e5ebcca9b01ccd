// A block volume's calls look at its own loop devices, not at every loop device on the node.
//
// A crash between an unstage's unmount and its detach leaves the volume's device attached and bound
// nowhere (src/mount/idle-loops.ts); the retried unstage lets it go. Finding it must not cost a look at
// each device attached on the node (every volume's, every program's): the driver looks only at the
// devices it noted for the volume (src/backends/hostpath/loop-notes.ts). Here the bind is undone behind
// the driver's back, as the crash leaves it, with unrelated devices attached to scratch files; the unstage
// lets the volume's device go, and the driver's preloaded log (loop-look-log.ts) shows it never opened
// nor read any of the others.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { closeSync, existsSync, readFileSync, writeFileSync, promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { attachLoop } from "../../src/mount/loop";
import { readMountInfo } from "../../src/mount/mountinfo";
import { blockCapability, destroyDriver, loopBacking, startDriver, uniqueName, type DriverProcess } from "./harness";
import { loopLookEnv } from "./loop-look-log";

const MiB = 1024 * 1024;
const UNRELATED = 8;

describe("Block volumes: a call looks only at the loop devices noted for its volume", () => {
  let d: DriverProcess | undefined;
  const held: number[] = [];
  afterEach(async () => {
    for (const fd of held.splice(0)) closeSync(fd); // attached with AUTOCLEAR: each goes as it closes
    await destroyDriver(d);
    d = undefined;
  });

  it(`NodeUnstageVolume retried after its unmount, with ${UNRELATED} unrelated loop devices attached: the volume's device is let go, no other is looked at`, async function () {
    if (process.env.CSI_LAB_SANDBOX !== "1") this.skip(); // it attaches loop devices of its own: only in the throwaway root
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-test-"));
    const log = path.join(dir, "loop-looks");
    d = await startDriver({ dir, env: loopLookEnv(log) });
    const volumeId = (await d.client.controller.createVolume({ name: uniqueName("blk"), volumeCapabilities: [blockCapability()], capacityRange: { requiredBytes: 8 * MiB } }))
      .volume!.volumeId!;
    const staging = d.path("staging");
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: blockCapability() });
    const device = path.join(staging, "block");
    const bind = readMountInfo().find((m) => m.mountPoint === device);
    const n = Number(/^\/loop(\d+)$/.exec(bind?.root ?? "")?.[1]);
    assert.ok(Number.isInteger(n) && loopBacking(n)?.endsWith(`/${volumeId}`), `the volume is staged on a loop device (${bind?.root})`);

    // What a crash between the unstage's unmount and its detach leaves: the device attached, bound nowhere.
    execFileSync("umount", [device]);
    const unrelated: number[] = [];
    for (let i = 0; i < UNRELATED; i++) {
      const file = d.scratch(`unrelated-${i}.img`);
      await fsp.writeFile(file, Buffer.alloc(MiB));
      const { loop, fd } = await attachLoop(file, { readOnly: false });
      held.push(fd);
      unrelated.push(loop.number);
    }

    writeFileSync(log, "");
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath: staging });

    assert.equal(existsSync(device), false, "the device file is gone");
    assert.equal(loopBacking(n), undefined, "the volume's device was let go");
    const looked = readFileSync(log, "utf8").split("\n").filter(Boolean);
    const others = looked.filter((p) => unrelated.some((u) => p === `/dev/loop${u}` || p.startsWith(`/sys/block/loop${u}/`) || p === `/sys/block/loop${u}`));
    assert.deepEqual(others, [], "the unstage never opened nor read an unrelated loop device");
    for (const u of unrelated) assert.ok(loopBacking(u)?.includes("unrelated-"), `the unrelated /dev/loop${u} is still attached to its file`);
    await d.client.controller.deleteVolume({ volumeId });
  });
});
