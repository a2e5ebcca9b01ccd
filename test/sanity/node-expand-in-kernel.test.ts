// NodeExpandVolume grows a mounted file system in the kernel (ioctls on the proven mount's root): no resize2fs or
// xfs_growfs process is started. Each runs, if it runs, through a wrapper first on the driver's PATH that notes it.
import assert from "node:assert/strict";
import { chmodSync, promises as fsp, readdirSync, rmSync, writeFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { canGrowExt4Online } from "../../src/mount/filesystem";
import { destroyDriver, mountCapability, startDriver, uniqueName, type DriverProcess } from "./harness";
import { IMAGE_FS_PROGRAMS, skipUnlessInstalled } from "./programs";

const MiB = 1024 * 1024;
const GROWERS = ["resize2fs", "xfs_growfs"];

describe("NodeExpandVolume of a mounted image", () => {
  let d: DriverProcess;
  let bin: string;
  before(async () => {
    bin = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-growers-"));
    for (const tool of GROWERS) {
      const real = `PATH=${JSON.stringify(process.env.PATH ?? "")} command -v ${tool}`;
      writeFileSync(path.join(bin, tool), `#!/bin/sh\necho "$*" >"${bin}/ran.${tool}.$$"\nexec "$(${real})" "$@"\n`);
      chmodSync(path.join(bin, tool), 0o755);
    }
    d = await startDriver({ env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ""}` } });
  });
  after(async () => {
    await destroyDriver(d);
    await fsp.rm(bin, { recursive: true, force: true });
  });

  /** What the wrappers noted since the last call: "resize2fs /dev/loop3", … */
  function toolsRun(): string[] {
    const ran = readdirSync(bin).filter((n) => n.startsWith("ran."));
    for (const n of ran) rmSync(path.join(bin, n));
    return ran.map((n) => n.split(".")[1]!);
  }

  for (const fsType of ["ext4", "xfs"]) {
    it(`grows a published ${fsType} image without starting resize2fs or xfs_growfs`, async function () {
      skipUnlessInstalled(this, ...IMAGE_FS_PROGRAMS[fsType]!);
      if (fsType === "ext4" && !canGrowExt4Online()) this.skip(); // it then grows offline, at the next stage (node-expand-volume.test.ts)
      const cap = { ...mountCapability(), mount: { fsType, mountFlags: [], volumeMountGroup: "" } };
      const size = 320 * MiB;
      const { volumeId } = (
        await d.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [cap], capacityRange: { requiredBytes: size }, parameters: { capacity: "image" } })
      ).volume!;
      const stagingTargetPath = d.path(uniqueName("stage"));
      const targetPath = d.path(uniqueName("target"));
      await d.client.node.nodeStageVolume({ volumeId: volumeId!, stagingTargetPath, volumeCapability: cap });
      await d.client.node.nodePublishVolume({ volumeId: volumeId!, stagingTargetPath, targetPath, volumeCapability: cap });
      const before = await fsp.statfs(targetPath);
      toolsRun();
      await d.client.controller.controllerExpandVolume({ volumeId, capacityRange: { requiredBytes: 2 * size } });
      await d.client.node.nodeExpandVolume({ volumeId, volumePath: targetPath, stagingTargetPath });
      assert.deepEqual(toolsRun(), [], "no tool ran");
      const after = await fsp.statfs(targetPath);
      assert.ok((after.blocks - before.blocks) * after.bsize >= 280 * MiB, `file system grew from ${before.blocks} to ${after.blocks} blocks`);
      await d.client.node.nodeUnpublishVolume({ volumeId, targetPath });
      await d.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
      await d.client.controller.deleteVolume({ volumeId });
    });
  }
});
