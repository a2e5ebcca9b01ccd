// A block volume's undo removes a leftover bind of a *detached loop device* — and only that.
//
// A bind of a loop device's node does not hold the device: if the device is detached (a crash
// between steps, or losetup -d), the bind refers to nothing, and a block volume's unstage or
// unpublish at that place removes it (isStaleDeviceBind, src/mount/volume-mounts.ts). The bind
// is known by its root in /dev ("/loopN"). Something that is not loop device N at all, but
// stands at /dev/loopN — a directory or file made there, a node the driver cannot ask — is not
// a dead loop device: a bind of it is someone else's mount, and stays.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { readMountInfo } from "../../src/mount/mountinfo";
import { unmount } from "../../src/mount/syscalls";
import { blockCapability, Code, destroyDriver, expectCode, startDriver, uniqueName, type DriverProcess } from "./harness";

describe("Block volumes: a bind of something named like a loop device is not a dead loop device", () => {
  let d: DriverProcess;
  before(async () => (d = await startDriver()));
  after(async () => destroyDriver(d));

  it("NodeUnpublishVolume leaves alone a bind of a directory that stands at /dev/loopN: FAILED_PRECONDITION", async function () {
    if (process.env.CSI_LAB_SANDBOX !== "1") this.skip(); // it makes an entry in /dev: only in the throwaway root
    const volumeId = (await d.client.controller.createVolume({ name: uniqueName("blk"), volumeCapabilities: [blockCapability()], capacityRange: { requiredBytes: 8 * 1024 * 1024 } }))
      .volume!.volumeId!;
    let n = 240;
    while (existsSync(`/dev/loop${n}`) || existsSync(`/sys/block/loop${n}`)) n++;
    const dir = `/dev/loop${n}`;
    await fsp.mkdir(dir);
    await fsp.writeFile(path.join(dir, "theirs"), "keep");
    const place = d.path(uniqueName("pod"));
    await fsp.mkdir(place);
    execFileSync("mount", ["--bind", dir, place]);
    try {
      await expectCode(d.client.node.nodeUnpublishVolume({ volumeId, targetPath: place }), Code.FAILED_PRECONDITION);
      assert.ok(readMountInfo().some((m) => m.mountPoint === place), "the bind is still mounted");
      assert.equal(await fsp.readFile(path.join(place, "theirs"), "utf8"), "keep");
    } finally {
      if (readMountInfo().some((m) => m.mountPoint === place)) unmount(place, { detach: true });
      await fsp.rm(dir, { recursive: true });
    }
    await d.client.controller.deleteVolume({ volumeId });
  });
});
