// A shared delete that moved a stranger into the trash (swapped in at the volume's subDir just before the move)
// puts it back, and never in place of what took the name meanwhile — on a share whose file system has no
// renameat2(RENAME_NOREPLACE) too, as a Linux NFS client has none (it answers EINVAL). Here a seccomp filter
// answers EINVAL to renameat2 in the driver and its share agents (old-seccomp.ts); the moments are picked by
// swap-hook.ts: the swap just before the move to the trash, the stranger just before the put-back's rename.
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { NFS_LOCAL } from "./backends";
import { Code, destroyDriver, expectCode, Mode, mountCapability, shellQuote, startDriver, uniqueName, type DriverProcess } from "./harness";
import { filterWorksHere, oldSeccompEnv } from "./old-seccomp";
import { swapEnv } from "./swap-hook";

describe("A shared delete's put-back on a share without RENAME_NOREPLACE", function () {
  let d: DriverProcess;
  let swapFile: string;
  before(async function () {
    if (!filterWorksHere) this.skip();
    const dir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-test-"));
    swapFile = path.join(dir, "swap");
    d = await startDriver({ dir, env: swapEnv(swapFile, oldSeccompEnv(["renameat2"])) });
  });
  after(async () => destroyDriver(d));

  it("puts the stranger back beside a directory made at its name meanwhile, replacing nothing, and answers NOT_FOUND", async () => {
    const volumeId = (
      await d.client.controller.createVolume({ name: uniqueName("pvc"), volumeCapabilities: [mountCapability(Mode.MULTI_NODE_MULTI_WRITER)], parameters: NFS_LOCAL.parameters(d) })
    ).volume!.volumeId!;
    const dir = NFS_LOCAL.contentDir(d, volumeId);
    const theirs = path.join(d.share, uniqueName("theirs"));
    await fsp.mkdir(theirs);
    await fsp.writeFile(path.join(theirs, "data"), "keep");
    const made = path.join(d.dir, "made");
    // At the put-back's rename, someone makes an (empty) directory at the name, and notes which one it is.
    const third = `rename\nif mkdir ${shellQuote(dir)}; then stat -c %i ${shellQuote(dir)} > ${shellQuote(made)}; fi\n`;
    const swap = `mv ${shellQuote(dir)} ${shellQuote(dir + ".moved")}\nmv ${shellQuote(theirs)} ${shellQuote(dir)}`;
    await fsp.writeFile(swapFile, `rename\n${swap}\nprintf '%s' ${shellQuote(third)} > ${shellQuote(swapFile)}\n`);
    await expectCode(d.client.controller.deleteVolume({ volumeId }), Code.NOT_FOUND, /replaced by another directory/);
    assert.equal(existsSync(swapFile), false, "the put-back went by rename(2), renameat2 being refused");

    const beside = (await fsp.readdir(d.share)).filter((n) => n.startsWith(`${path.basename(dir)}.not-deleted-`));
    const places = [dir, ...beside.map((n) => path.join(d.share, n))];
    const data = await Promise.all(places.map((p) => fsp.readFile(path.join(p, "data"), "utf8").catch(() => undefined)));
    assert.deepEqual(data.filter((x) => x !== undefined), ["keep"], "their directory is back, whole, once");
    assert.deepEqual(await fsp.readdir(path.join(d.share, ".csi-lab", "trash")), [], "nothing of theirs is left in the trash");
    if (existsSync(made)) {
      // The directory made at the name in that moment is still there, not replaced.
      const ino = Number((await fsp.readFile(made, "utf8")).trim());
      assert.deepEqual(await fsp.readdir(dir), [], "the directory at the name is the empty one made there");
      assert.equal((await fsp.stat(dir)).ino, ino, "the directory made at the name is still there");
    }
  });
});
