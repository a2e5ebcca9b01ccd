// A volume's size is a limit: a 1 GiB volume refuses the 1,025th MiB, and
// once expanded to 2 GiB it accepts it — in every capacity mode, on a real
// file system of the kind each mode needs (made on a loop device).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { mountCapability, uniqueName, type DriverProcess } from "./harness";
import { driverOnLoopFs, type LoopFsKind } from "./loop-fs";
import { IMAGE_FS_PROGRAMS } from "./programs";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/**
 * Append 1 MiB blocks to `file` until `upTo` MiB or the first error, as a
 * pod would: as user 65534 without capabilities. (A process with
 * CAP_SYS_RESOURCE may write past an ext4 quota; pods do not have it.)
 * Returns how many whole MiB the file holds and the error's code.
 */
export function fillMiB(file: string, upTo: number): Promise<{ mib: number; code?: string }> {
  const script = `
    const fs = require("node:fs");
    const [file, upTo] = [process.argv[1], Number(process.argv[2])];
    const block = Buffer.alloc(${MiB}, 0xa5);
    const fd = fs.openSync(file, "a");
    let size = fs.fstatSync(fd).size, code;
    try {
      while (size < upTo * ${MiB}) {
        const want = Math.min(${MiB} - (size % ${MiB}), upTo * ${MiB} - size);
        size += fs.writeSync(fd, block, 0, want, size);
      }
      fs.fsyncSync(fd);
    } catch (e) {
      // libuv has no name for EDQUOT (122): "Unknown system error -122".
      code = e.errno === -122 ? "EDQUOT" : e.code;
    }
    process.stdout.write(JSON.stringify({ mib: Math.floor(size / ${MiB}), code }));`;
  return new Promise((resolve, reject) => {
    execFile(
      "setpriv",
      ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", process.execPath, "-e", script, file, String(upTo)],
      { timeout: 170_000 },
      (err, stdout, stderr) => (err ? reject(new Error(`${err.message}: ${stderr}`)) : resolve(JSON.parse(stdout) as { mib: number; code?: string })),
    );
  });
}

interface ModeCase {
  title: string;
  root: LoopFsKind;
  parameters: Record<string, string>;
  fsType?: string;
  /** Whether the file system can grow while mounted here (else the volume is restaged). */
  online: boolean;
  /** The least the 1 GiB volume must hold (a file system inside an image takes its share). */
  atLeastMiB: number;
}

const CASES: ModeCase[] = [
  { title: "quota mode on btrfs (qgroups)", root: "btrfs-quota", parameters: { capacity: "quota" }, online: true, atLeastMiB: 1000 },
  { title: "quota mode on XFS (project quotas)", root: "xfs-prjquota", parameters: { capacity: "quota" }, online: true, atLeastMiB: 1000 },
  { title: "quota mode on ext4 (project quotas)", root: "ext4-prjquota", parameters: { capacity: "quota" }, online: true, atLeastMiB: 1000 },
  // Growing a mounted ext4 needs CAP_SYS_RESOURCE (see node-expand-volume.test.ts); offline growth does not.
  { title: "image mode with ext4", root: "ext4", parameters: { capacity: "image" }, fsType: "ext4", online: false, atLeastMiB: 900 },
  { title: "image mode with XFS", root: "ext4", parameters: { capacity: "image" }, fsType: "xfs", online: true, atLeastMiB: 900 },
];

for (const c of CASES) {
  describe(`Capacity limit, ${c.title}`, function () {
    this.timeout(180_000);
    let d: DriverProcess | undefined;
    driverOnLoopFs(c.root, 4 * GiB, (_fs, drv) => (d = drv), c.fsType ? IMAGE_FS_PROGRAMS[c.fsType] : []);

    it("a 1 GiB volume refuses the 1,025th MiB and, expanded to 2 GiB, accepts it", async () => {
      const cap = { ...mountCapability(), mount: { fsType: c.fsType ?? "", mountFlags: [], volumeMountGroup: "" } };
      const { volumeId } = (
        await d!.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [cap], capacityRange: { requiredBytes: GiB }, parameters: c.parameters })
      ).volume!;
      const stagingTargetPath = d!.path(uniqueName("stage"));
      const targetPath = d!.path(uniqueName("target"));
      const publish = async () => {
        await d!.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap });
        await d!.client.node.nodePublishVolume({ volumeId, stagingTargetPath, targetPath, volumeCapability: cap });
      };
      const unpublish = async () => {
        await d!.client.node.nodeUnpublishVolume({ volumeId, targetPath });
        await d!.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
      };
      await publish();
      const file = path.join(targetPath, "fill");

      const before = await fillMiB(file, 1025);
      console.log(`      (held ${before.mib} MiB, then ${before.code})`);
      assert.ok(before.code === "ENOSPC" || before.code === "EDQUOT", `the 1,025th MiB must be refused, got ${JSON.stringify(before)}`);
      assert.ok(before.mib <= 1024, `held ${before.mib} MiB`);
      assert.ok(before.mib >= c.atLeastMiB, `a 1 GiB volume should hold at least ${c.atLeastMiB} MiB, held ${before.mib}`);

      const expanded = await d!.client.controller.controllerExpandVolume({ volumeId, capacityRange: { requiredBytes: 2 * GiB } });
      assert.equal(expanded.capacityBytes, 2 * GiB);
      if (c.online) {
        if (expanded.nodeExpansionRequired) await d!.client.node.nodeExpandVolume({ volumeId, volumePath: targetPath, stagingTargetPath, capacityRange: { requiredBytes: 2 * GiB } });
      } else {
        await unpublish();
        await publish(); // staging grows the file system to fill the grown image
      }

      const after = await fillMiB(file, 1026);
      assert.equal(after.code, undefined, `after expansion the 1,025th MiB must fit, got ${JSON.stringify(after)}`);
      assert.equal(after.mib, 1026);
      await fsp.rm(file);
      await unpublish();
      await d!.client.controller.deleteVolume({ volumeId });
    });
  });
}
