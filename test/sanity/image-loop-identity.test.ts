// An image or block volume's loop devices are the ones attached to the image its record names, not to whatever file is at data/<id>.
//
// CreateVolume records the image's identity (image-identity.test.ts). On the node, a loop device is the volume's when it is
// attached to that file (its inode on data/'s device, LOOP_GET_STATUS64), wherever the file is now; and a stage attaches the
// loop device to a descriptor proven to be that file. The old code asked what file was at the name: with someone else's image
// put there (and attached and mounted by them), the volume's own mounts were someone else's — an unpublish or unstage refused
// them, and a pod could not go — and their mount was the volume's, unmounted when the volume's unpublish named its place; a
// stage with the swap made as it opened the image (a preload hook, swap-hook.ts) attached and mounted their file.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { bindMount, unmount } from "../../src/mount/syscalls";
import { blockCapability, Code, destroyDriver, expectCode, isMounted, mountCapability, shellQuote, uniqueName, type DriverProcess } from "./harness";
import { loopsOf } from "./loop-fs";
import { imageVolumeAndStranger, startSwapDriver, swapBack, swapIn } from "./swap-driver";

describe("An image or block volume whose image file is swapped for someone else's, on the node", () => {
  let d: DriverProcess;
  let swapFile: string;
  before(async () => ({ d, swapFile } = await startSwapDriver(["--default-capacity-mode", "image"])));
  after(async () => destroyDriver(d));


  it("image: NodeUnpublishVolume and NodeUnstageVolume undo the volume's own mounts while another image is at its name, and never unmount theirs", async () => {
    const cap = mountCapability();
    const { volumeId, image, theirs } = await imageVolumeAndStranger(d, cap, { ext4: true });
    const stagingTargetPath = d.path(uniqueName("staging"));
    const targetPath = d.path(uniqueName("target"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap });
    await d.client.node.nodePublishVolume({ volumeId, stagingTargetPath, targetPath, volumeCapability: cap });
    await swapIn(image, theirs);
    // Someone mounts the image now at the volume's name, where a target of the volume would be.
    const theirTarget = d.path(uniqueName("target"));
    await fsp.mkdir(theirTarget);
    execFileSync("mount", ["-o", "loop", image, theirTarget]);
    await fsp.writeFile(path.join(theirTarget, "data"), "keep");

    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath });
    assert.equal(await isMounted(targetPath), false, "the volume's own mount is undone");
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
    assert.equal(await isMounted(stagingTargetPath), false, "and its staging");
    assert.deepEqual(loopsOf(image + ".moved"), [], "the volume's loop device went with its last mount");

    await expectCode(d.client.node.nodeUnpublishVolume({ volumeId, targetPath: theirTarget }), Code.FAILED_PRECONDITION, /not volume .* it was left alone/);
    assert.equal(await isMounted(theirTarget), true, "their mount stays");
    assert.equal(await fsp.readFile(path.join(theirTarget, "data"), "utf8"), "keep");
    assert.equal(loopsOf(image).length, 1, "and their loop device");

    unmount(theirTarget);
    await swapBack(image, theirs);
    await d.client.controller.deleteVolume({ volumeId });
  });

  it("block: NodeUnpublishVolume and NodeUnstageVolume undo the volume's own binds and device while another image is at its name, and never theirs", async () => {
    const cap = blockCapability();
    const { volumeId, image, theirs } = await imageVolumeAndStranger(d, cap, { ext4: true });
    const stagingTargetPath = d.path(uniqueName("staging"));
    const targetPath = d.path(uniqueName("dev"));
    await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap });
    await d.client.node.nodePublishVolume({ volumeId, stagingTargetPath, targetPath, volumeCapability: cap });
    await swapIn(image, theirs);
    // Someone attaches the image now at the volume's name and binds its device where a target of the volume would be.
    const theirLoop = execFileSync("losetup", ["-f", "--show", image], { encoding: "utf8" }).trim();
    const theirTarget = d.path(uniqueName("dev"));
    await fsp.writeFile(theirTarget, "");
    bindMount(theirLoop, theirTarget);

    await d.client.node.nodeUnpublishVolume({ volumeId, targetPath });
    assert.equal(await isMounted(targetPath), false, "the volume's own bind is undone");
    await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
    assert.equal(await isMounted(path.join(stagingTargetPath, "block")), false, "and its staged device");
    assert.deepEqual(loopsOf(image + ".moved"), [], "the volume's loop device went with its last bind");

    await expectCode(d.client.node.nodeUnpublishVolume({ volumeId, targetPath: theirTarget }), Code.FAILED_PRECONDITION, /not volume .* it was left alone/);
    assert.equal(await isMounted(theirTarget), true, "their bind stays");
    assert.deepEqual(loopsOf(image), [theirLoop], "and their loop device");

    unmount(theirTarget);
    execFileSync("losetup", ["-d", theirLoop]);
    await swapBack(image, theirs);
    await d.client.controller.deleteVolume({ volumeId });
  });

  for (const [kind, cap] of [
    ["image", mountCapability()],
    ["block", blockCapability()],
  ] as const) {
    it(`${kind}: NodeStageVolume with the swap made as it opens the image answers FAILED_PRECONDITION and attaches nothing`, async () => {
      const { volumeId, image, theirs } = await imageVolumeAndStranger(d, cap, { ext4: true });
      const stagingTargetPath = d.path(uniqueName("staging"));
      await fsp.writeFile(swapFile, `open ${image}\nmv ${shellQuote(image)} ${shellQuote(image + ".moved")}\nmv ${shellQuote(theirs)} ${shellQuote(image)}\n`);
      const stage = d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap });
      await expectCode(stage, Code.FAILED_PRECONDITION, /is not the image file this driver made for it/);
      assert.equal(existsSync(swapFile), false, "the swap was made");
      assert.deepEqual(loopsOf(image), [], "their file is attached to no loop device");
      assert.deepEqual(loopsOf(image + ".moved"), [], "nor the volume's");
      const staged = kind === "block" ? path.join(stagingTargetPath, "block") : stagingTargetPath;
      assert.equal(await isMounted(staged), false, "nothing is staged");

      await swapBack(image, theirs);
      await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap });
      assert.equal(loopsOf(image).length, 1, "its own image back at its name, the volume stages");
      await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
      await d.client.controller.deleteVolume({ volumeId });
    });
  }
  it("NodeStageVolume with a FIFO swapped in as it opens the image answers FAILED_PRECONDITION and never opens it (a reader waiting on it goes on waiting)", async () => {
    const cap = blockCapability();
    const { volumeId, image } = await imageVolumeAndStranger(d, cap);
    const fifo = d.scratch(uniqueName("fifo"));
    execFileSync("mkfifo", [fifo]);
    // A reader's open of a FIFO waits until someone opens it for writing: it ends only if the driver opens it.
    const reader = spawn("timeout", ["3", "cat", fifo], { stdio: "ignore" });
    const ended = new Promise<number | null>((resolve) => reader.once("exit", (code) => resolve(code)));
    await fsp.writeFile(swapFile, `open ${image}\nmv ${shellQuote(image)} ${shellQuote(image + ".moved")}\nmv ${shellQuote(fifo)} ${shellQuote(image)}\n`);
    const stagingTargetPath = d.path(uniqueName("staging"));
    await expectCode(d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap }), Code.FAILED_PRECONDITION, /not a regular file/);
    assert.equal(existsSync(swapFile), false, "the swap was made");
    assert.equal(await ended, 124, "the reader was still waiting when its 3 s ran out: nobody opened the FIFO");
    await fsp.unlink(image);
    await fsp.rename(image + ".moved", image);
    await d.client.controller.deleteVolume({ volumeId });
  });
});
