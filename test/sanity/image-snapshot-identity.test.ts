// A snapshot of an image or block volume copies the image its record names, never a file put at data/<id> in its place.
//
// CreateSnapshot checks the volume's condition, then has cp copy its image. The old code handed cp the name data/<id>: a
// file swapped in after the check (a preload hook makes the swap just as cp is started, swap-hook.ts "cp") was someone
// else's, and their bytes became the snapshot. Now the image is opened once and proven against the record's identity
// (volume-dir.ts: withVolumeImage), and cp copies through that descriptor (/proc/<pid>/fd/<n>), as a restore copies a
// snapshot's content: a swap after the open changes nothing copied, and one made as the image is opened is
// FAILED_PRECONDITION, with nothing copied.
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { blockCapability, Code, destroyDriver, expectCode, mountCapability, shellQuote, uniqueName, type DriverProcess } from "./harness";
import { imageVolumeAndStranger, startSwapDriver } from "./swap-driver";

describe("A snapshot of an image or block volume whose image file is swapped for someone else's", () => {
  let d: DriverProcess;
  let swapFile: string;
  before(async () => ({ d, swapFile } = await startSwapDriver(["--default-capacity-mode", "image"])));
  after(async () => destroyDriver(d));

  const swapScript = (when: string, image: string, theirs: string) =>
    `${when}\nmv ${shellQuote(image)} ${shellQuote(image + ".moved")}\nmv ${shellQuote(theirs)} ${shellQuote(image)}\n`;
  const swapBack = async (image: string, theirs: string) => {
    await fsp.rename(image, theirs);
    await fsp.rename(image + ".moved", image);
  };
  const snapshotsOf = async (sourceVolumeId: string) => (await d.client.controller.listSnapshots({ sourceVolumeId })).entries ?? [];

  for (const [kind, cap] of [
    ["image", mountCapability()],
    ["block", blockCapability()],
  ] as const) {
    it(`${kind}: swapped as the copy starts, the snapshot holds the volume's image, not their file`, async () => {
      const { volumeId, image, theirs } = await imageVolumeAndStranger(d, cap, { content: "theirs" });
      await fsp.writeFile(swapFile, swapScript("cp", image, theirs));
      const snapshot = (await d.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: volumeId })).snapshot!;
      assert.equal(existsSync(swapFile), false, "the swap was made");
      const copied = await fsp.readFile(path.join(d.root, "snapshots", "data", snapshot.snapshotId!));
      assert.notEqual(copied.subarray(0, 6).toString(), "theirs", "their bytes are not in the snapshot");
      assert.ok(copied.equals(await fsp.readFile(image + ".moved")), "the snapshot is the volume's own image");

      await swapBack(image, theirs);
      await d.client.controller.deleteSnapshot({ snapshotId: snapshot.snapshotId! });
      await d.client.controller.deleteVolume({ volumeId });
    });

    it(`${kind}: swapped as the image is opened, CreateSnapshot answers FAILED_PRECONDITION and copies nothing`, async () => {
      const { volumeId, image, theirs } = await imageVolumeAndStranger(d, cap, { content: "theirs" });
      await fsp.writeFile(swapFile, swapScript(`open ${image}`, image, theirs));
      const create = d.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: volumeId });
      await expectCode(create, Code.FAILED_PRECONDITION, /is not the image file this driver made for it/);
      assert.equal(existsSync(swapFile), false, "the swap was made");
      assert.deepEqual(await snapshotsOf(volumeId), [], "no snapshot was made");
      assert.deepEqual(await fsp.readdir(path.join(d.root, "snapshots", "data")), [], "nothing was copied");

      await swapBack(image, theirs);
      const snapshot = (await d.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: volumeId })).snapshot!;
      assert.equal(snapshot.readyToUse, true, "its own image back at its name, the volume is snapshotted");
      await d.client.controller.deleteSnapshot({ snapshotId: snapshot.snapshotId! });
      await d.client.controller.deleteVolume({ volumeId });
    });
  }
});
