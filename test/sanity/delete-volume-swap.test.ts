// DeleteVolume removes what a volume held and nothing else, even while a
// process that kept a directory of the volume open (or, on a share, a pod on
// another node that still mounts it) swaps a directory in it for a link to
// somewhere else. A removal that walks by path would follow the link and
// empty its target; the driver's walks by open directory. Runs only in the
// throwaway root (the link points at a directory of the test's own).
import assert from "node:assert/strict";
import { existsSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { BACKENDS } from "./backends";
import { startLinkSwapper } from "./link-swapper";
import { destroyDriver, DIR_VOLUMES, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";

const N = 3_000; // files in the directory swapped: emptying it takes a while after the first goes

for (const b of BACKENDS.filter((x) => x.name !== "memory")) {
  describe(`DeleteVolume while a directory in the volume is swapped for a link (${b.name})`, function () {
    this.timeout(120_000);
    let d: DriverProcess;
    before(async () => (d = await startDriver({ extraArgs: DIR_VOLUMES })));
    after(async () => destroyDriver(d));

    it("deletes nothing outside the volume", async () => {
      const outside = path.join(d.root, "..", `outside-${uniqueName()}`);
      await fsp.mkdir(outside);
      const volumeId = (await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], parameters: b.parameters(d) }))
        .volume!.volumeId!;
      const dir = b.contentDir(d, volumeId);
      await fsp.mkdir(path.join(dir, "d"));
      for (let i = 0; i < N; i++) {
        await fsp.writeFile(path.join(outside, `f${i}`), "");
        await fsp.writeFile(path.join(dir, "d", `f${i}`), "");
      }
      // The other process moves d aside as soon as its first file goes, and links d to `outside`.
      const swapper = await startLinkSwapper(dir, "d", outside);
      try {
        // The removal may fail (its tree changed under it) or succeed; either way it must stay inside.
        await d.client.controller.deleteVolume({ volumeId }).catch(() => undefined);
        await swapper.swapped;
        const left = (await fsp.readdir(outside)).length;
        assert.equal(left, N, `DeleteVolume deleted ${N - left} files outside the volume, through the link swapped in`);
        // What the failed removal left is the driver's to finish: a retry, or the start-up sweep.
        await d.client.controller.deleteVolume({ volumeId });
        if (b.name === "hostpath") {
          await d.restart();
          assert.deepEqual(await fsp.readdir(path.join(d.root, ".trash")), []);
        }
        assert.equal(existsSync(dir), false);
        assert.equal((await fsp.readdir(outside)).length, N);
      } finally {
        swapper.stop();
        await fsp.rm(outside, { recursive: true, force: true });
      }
    });
  });
}
