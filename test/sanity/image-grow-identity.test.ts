// Growing an image or block volume grows the image its record names, never a file put at data/<id> in its place.
//
// ControllerExpandVolume (and NodeExpandVolume, which grows the volume on its own node) checks the volume's condition, then
// extends its image file (ftruncate). The old code opened data/<id> by name for that, with no look at which file it opened: a
// file swapped in between the check and the open (a preload hook makes the swap just as the driver opens the name,
// swap-hook.ts "open") was someone else's, and it was extended. Now the file is opened once and proven against the record's
// identity (volume-dir.ts: withVolumeImage) before it is grown through that descriptor: FAILED_PRECONDITION, nothing changed.
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { blockCapability, Code, destroyDriver, expectCode, mountCapability, shellQuote, uniqueName, type DriverProcess } from "./harness";
import { imageVolumeAndStranger, startSwapDriver } from "./swap-driver";

const MiB = 1024 * 1024;

describe("Growing an image or block volume whose image file is swapped for someone else's as it is opened", () => {
  let d: DriverProcess;
  let swapFile: string;
  before(async () => ({ d, swapFile } = await startSwapDriver(["--default-capacity-mode", "image"])));
  after(async () => destroyDriver(d));

  const meta = async (id: string) => JSON.parse(await fsp.readFile(path.join(d.root, "volumes", `${id}.json`), "utf8"));

  const arm = (image: string, theirs: string) =>
    fsp.writeFile(swapFile, `open ${image}\nmv ${shellQuote(image)} ${shellQuote(image + ".moved")}\nmv ${shellQuote(theirs)} ${shellQuote(image)}\n`);
  const swapBack = async (image: string, theirs: string) => {
    await fsp.rename(image, theirs);
    await fsp.rename(image + ".moved", image);
  };
  /** Their file is as it was, and so is the volume's image and record. */
  async function untouched(volumeId: string, image: string): Promise<void> {
    assert.equal(existsSync(swapFile), false, "the swap was made");
    assert.equal((await fsp.stat(image)).size, 16 * MiB, "their file keeps its size");
    assert.equal((await fsp.readFile(image)).subarray(0, 6).toString(), "theirs");
    assert.equal((await fsp.stat(image + ".moved")).size, 16 * MiB, "the volume's image is not grown either");
    assert.equal((await meta(volumeId)).capacityBytes, 16 * MiB, "nor its record");
  }

  for (const [kind, cap] of [
    ["image", mountCapability()],
    ["block", blockCapability()],
  ] as const) {
    it(`${kind}: ControllerExpandVolume answers FAILED_PRECONDITION and extends nothing`, async () => {
      const { volumeId, image, theirs } = await imageVolumeAndStranger(d, cap, { content: "theirs" });
      await arm(image, theirs);
      const expand = d.client.controller.controllerExpandVolume({ volumeId, capacityRange: { requiredBytes: 32 * MiB } });
      await expectCode(expand, Code.FAILED_PRECONDITION, /is not the image file this driver made for it/);
      await untouched(volumeId, image);

      await swapBack(image, theirs);
      const grown = await d.client.controller.controllerExpandVolume({ volumeId, capacityRange: { requiredBytes: 32 * MiB } });
      assert.equal(grown.capacityBytes, 32 * MiB, "its own image back at its name, the volume grows");
      assert.equal((await fsp.stat(image)).size, 32 * MiB);
      await d.client.controller.deleteVolume({ volumeId });
    });

    it(`${kind}: NodeExpandVolume of the staged volume answers FAILED_PRECONDITION and extends nothing`, async () => {
      const { volumeId, image, theirs } = await imageVolumeAndStranger(d, cap, { content: "theirs" });
      const stagingTargetPath = d.path(uniqueName("staging"));
      await d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap });
      const volumePath = kind === "block" ? path.join(stagingTargetPath, "block") : stagingTargetPath;
      await arm(image, theirs);
      const expand = d.client.node.nodeExpandVolume({ volumeId, volumePath, stagingTargetPath, capacityRange: { requiredBytes: 32 * MiB }, volumeCapability: cap });
      await expectCode(expand, Code.FAILED_PRECONDITION, /is not the image file this driver made for it/);
      await untouched(volumeId, image);

      await swapBack(image, theirs);
      await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
      await d.client.controller.deleteVolume({ volumeId });
    });
  }
});
