// An image (or block) volume is the image file CreateVolume made, not whatever file is at data/<id>.
//
// CreateVolume records the image's identity (its inode with birth time or generation, taken on
// the descriptor it was made through), as it does for a directory volume's directory
// (hostpath-dir-identity.test.ts). Another file put at the name is not the volume's: the volume
// reports it, DeleteVolume answers NOT_FOUND and deletes nothing — also when the swap comes just
// before the delete's move into .trash (a preload hook, swap-hook.ts: what was moved is checked
// there and put back). The old code unlinked whatever file was at the name.
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { Code, destroyDriver, expectCode, mountCapability, shellQuote, uniqueName, type DriverProcess } from "./harness";
import { imageVolumeAndStranger, startSwapDriver, swapBack, swapIn } from "./swap-driver";

describe("An image volume whose image file is swapped for another file", () => {
  let d: DriverProcess;
  let swapFile: string;
  before(async () => ({ d, swapFile } = await startSwapDriver(["--default-capacity-mode", "image"])));
  after(async () => destroyDriver(d));

  const head = async (p: string) => (await fsp.readFile(p)).subarray(0, 4).toString();

  it("the record names the image; DeleteVolume answers NOT_FOUND and deletes nothing; the volume reports it; swapped back, it is deleted", async () => {
    const { volumeId, image, theirs } = await imageVolumeAndStranger(d, mountCapability(), { content: "keep" });
    const record = JSON.parse(await fsp.readFile(path.join(d.root, "volumes", `${volumeId}.json`), "utf8"));
    assert.equal(record.dataIdentity.ino, String((await fsp.stat(image, { bigint: true })).ino));
    await swapIn(image, theirs);
    await expectCode(d.client.controller.deleteVolume({ volumeId }), Code.NOT_FOUND, /not the image file this driver made for it/);
    assert.equal(await head(image), "keep", "their file is where it was, whole");
    assert.ok(existsSync(path.join(d.root, "volumes", `${volumeId}.json`)), "the volume still exists");
    const { status } = await d.client.controller.controllerGetVolume({ volumeId });
    assert.match(status!.volumeCondition!.message!, /replaced by another file/);
    const stagingTargetPath = d.path(uniqueName("staging"));
    const stage = d.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: mountCapability() });
    await expectCode(stage, Code.FAILED_PRECONDITION, /replaced by another file/);

    await swapBack(image, theirs);
    await d.client.controller.deleteVolume({ volumeId });
    assert.equal(existsSync(image), false);
    assert.equal(await head(theirs), "keep");
  });

  it("DeleteVolume with the swap made just before its move: what was moved is put back, NOT_FOUND, nothing deleted", async () => {
    const { volumeId, image, theirs } = await imageVolumeAndStranger(d, mountCapability(), { content: "keep" });
    await fsp.writeFile(swapFile, `move\nmv ${shellQuote(image)} ${shellQuote(image + ".moved")}\nmv ${shellQuote(theirs)} ${shellQuote(image)}\n`);
    await expectCode(d.client.controller.deleteVolume({ volumeId }), Code.NOT_FOUND, /replaced by another file while it was being deleted/);
    assert.equal(existsSync(swapFile), false, "the swap was made");
    assert.equal(await head(image), "keep", "their file is back where it was, whole");
    assert.ok(existsSync(image + ".moved"), "the volume's own image is untouched");
    assert.deepEqual(await fsp.readdir(path.join(d.root, ".trash")), [], "nothing of theirs is left in the trash");
    assert.ok(existsSync(path.join(d.root, "volumes", `${volumeId}.json`)), "the volume still exists");

    await swapBack(image, theirs);
    await d.client.controller.deleteVolume({ volumeId });
    assert.equal(existsSync(image), false);
    assert.equal(await head(theirs), "keep");
  });
});
