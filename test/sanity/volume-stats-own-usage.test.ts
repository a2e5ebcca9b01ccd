// NodeGetVolumeStats reports a volume's own size and usage — from its quota
// or its image's file system — not the whole disk's; only a capacity: none
// volume, which has no size of its own, reports its file system's figures.
import assert from "node:assert/strict";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { VolumeUsage_Unit as Unit } from "../../src/gen/csi";
import { mountCapability, uniqueName, type DriverProcess } from "./harness";
import { driverOnLoopFs, type LoopFs, type LoopFsKind } from "./loop-fs";
import { IMAGE_FS_PROGRAMS } from "./programs";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

interface Case {
  title: string;
  root: LoopFsKind;
  parameters: Record<string, string>;
  fsType?: string;
  /** Expected BYTES total for a 1 GiB volume: its size, or a range for a file system inside an image. */
  total: [number, number];
  ownUsage: boolean;
}

const CASES: Case[] = [
  { title: "quota on btrfs", root: "btrfs-quota", parameters: { capacity: "quota" }, total: [GiB, GiB], ownUsage: true },
  { title: "quota on XFS", root: "xfs-prjquota", parameters: { capacity: "quota" }, total: [GiB, GiB], ownUsage: true },
  { title: "quota on ext4", root: "ext4-prjquota", parameters: { capacity: "quota" }, total: [GiB, GiB], ownUsage: true },
  { title: "image with ext4", root: "ext4", parameters: { capacity: "image" }, fsType: "ext4", total: [900 * MiB, GiB], ownUsage: true },
  { title: "image with XFS", root: "ext4", parameters: { capacity: "image" }, fsType: "xfs", total: [880 * MiB, GiB], ownUsage: true },
  { title: "capacity none", root: "ext4", parameters: { capacity: "none" }, total: [3 * GiB, 4 * GiB], ownUsage: false },
];

for (const c of CASES) {
  describe(`NodeGetVolumeStats, ${c.title}`, function () {
    this.timeout(60_000);
    let fs: LoopFs | undefined;
    let d: DriverProcess | undefined;
    driverOnLoopFs(c.root, 4 * GiB, (f, drv) => ((fs = f), (d = drv)), c.fsType ? IMAGE_FS_PROGRAMS[c.fsType] : []);

    it(c.ownUsage ? "reports the volume's own size and usage" : "reports the whole file system's figures", async () => {
      const cap = { ...mountCapability(), mount: { fsType: c.fsType ?? "", mountFlags: [], volumeMountGroup: "" } };
      const { volumeId } = (
        await d!.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [cap], capacityRange: { requiredBytes: GiB }, parameters: c.parameters })
      ).volume!;
      const stagingTargetPath = d!.path(uniqueName("stage"));
      const targetPath = d!.path(uniqueName("target"));
      await d!.client.node.nodeStageVolume({ volumeId, stagingTargetPath, volumeCapability: cap });
      await d!.client.node.nodePublishVolume({ volumeId, stagingTargetPath, targetPath, volumeCapability: cap });
      const bytes = async () => (await d!.client.node.nodeGetVolumeStats({ volumeId, volumePath: targetPath })).usage!.find((u) => u.unit === Unit.BYTES)!;

      const before = await bytes();
      assert.ok(before.total! >= c.total[0] && before.total! <= c.total[1], `total ${before.total} outside ${c.total}`);
      // Someone else fills the disk outside the volume: a volume with its own size does not see it.
      const outside = path.join(fs!.mountPoint, "outside");
      await fsp.writeFile(outside, Buffer.alloc(200 * MiB, 1));
      await fsp.writeFile(path.join(targetPath, "inside"), Buffer.alloc(100 * MiB, 2));
      const fh = await fsp.open(path.join(targetPath, "inside"), "r+");
      await fh.sync();
      await fh.close();
      const after = await bytes();
      const grew = after.used! - before.used!;
      if (c.ownUsage) {
        assert.ok(Math.abs(grew - 100 * MiB) < 8 * MiB, `used grew by ${grew} bytes, not by the 100 MiB written into the volume`);
        assert.equal(after.total, before.total);
        assert.ok(Math.abs(after.available! - (before.available! - 100 * MiB)) < 8 * MiB, `available ${before.available} → ${after.available}`);
      } else {
        assert.ok(grew > 290 * MiB, `a plain directory shares the disk: used grew by ${grew}`);
      }
      assert.ok(after.used! + after.available! <= after.total!);
      await fsp.rm(outside);
      await d!.client.node.nodeUnpublishVolume({ volumeId, targetPath });
      await d!.client.node.nodeUnstageVolume({ volumeId, stagingTargetPath });
      await d!.client.controller.deleteVolume({ volumeId });
    });
  });
}
