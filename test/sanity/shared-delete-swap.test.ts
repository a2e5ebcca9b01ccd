// DeleteVolume of a shared volume moves away only the directory its marker proves, even when
// that directory is swapped for another between the proof and the move.
//
// The controller proves a volume's directory (its marker names its identity) and then has the
// share agent move it to the trash (onDelete: delete) or rename it (archive). Anyone who may
// write the directory above it — a pod on any node that mounts that directory — can swap in
// another directory of the same name in between. What is moved is checked again once moved,
// where nothing else renames it: not the volume's, it is put back, and DeleteVolume answers
// NOT_FOUND with nothing deleted. The swap is made by a preload hook (swap-hook.ts) just
// before the agent's rename: the moment a test cannot hit by timing.
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { NFS_LOCAL } from "./backends";
import { Code, destroyDriver, expectCode, Mode, mountCapability, shellQuote, uniqueName, type DriverProcess } from "./harness";
import { startSwapDriver } from "./swap-driver";

for (const onDelete of ["delete", "archive"] as const) {
  describe(`DeleteVolume of a shared volume (onDelete: ${onDelete}) whose directory is swapped for another just before it is moved`, () => {
    let d: DriverProcess;
    let swapFile: string;
    before(async () => ({ d, swapFile } = await startSwapDriver()));
    after(async () => destroyDriver(d));

    it("moves nothing that is not the volume's, puts the other directory back, and answers NOT_FOUND", async () => {
      const volumeId = (
        await d.client.controller.createVolume({
          name: uniqueName("pvc"),
          volumeCapabilities: [mountCapability(Mode.MULTI_NODE_MULTI_WRITER)],
          parameters: NFS_LOCAL.parameters(d, { onDelete }),
        })
      ).volume!.volumeId!;
      const dir = NFS_LOCAL.contentDir(d, volumeId);
      await fsp.writeFile(path.join(dir, "mine"), "the volume's");
      // Someone else's directory on the same share (a static volume's, say), with their data.
      const theirs = path.join(d.share, uniqueName("theirs"));
      await fsp.mkdir(theirs);
      await fsp.writeFile(path.join(theirs, "data"), "keep");

      await fsp.writeFile(swapFile, `rename\nmv ${shellQuote(dir)} ${shellQuote(dir + ".moved")}\nmv ${shellQuote(theirs)} ${shellQuote(dir)}\n`);
      await expectCode(d.client.controller.deleteVolume({ volumeId }), Code.NOT_FOUND, /replaced by another directory/);
      assert.equal(existsSync(swapFile), false, "the swap was made");
      assert.equal(await fsp.readFile(path.join(dir, "data"), "utf8"), "keep", "their directory is back where it was, whole");
      assert.equal(await fsp.readFile(path.join(dir + ".moved", "mine"), "utf8"), "the volume's");
      assert.deepEqual((await fsp.readdir(d.share)).filter((n) => n.startsWith("archived-")), [], "nothing was archived");

      // Put back as it was, the volume is deleted as asked.
      await fsp.rename(dir, theirs);
      await fsp.rename(dir + ".moved", dir);
      await d.client.controller.deleteVolume({ volumeId });
      assert.equal(existsSync(dir), false);
      assert.equal(await fsp.readFile(path.join(theirs, "data"), "utf8"), "keep");
    });
  });
}
