// Blocks a volume shares with a snapshot or a clone are not its own: on a
// root that shares extents (XFS with reflink, btrfs), a snapshot takes no
// new space, yet the volume may still rewrite every block it shares, and
// each rewrite then takes a new one. So what the node can still promise
// must fall by a snapshot's data whether the snapshot was copied (ext4:
// the copy takes free space) or made by sharing (the volume's own usage no
// longer counts those blocks). Counting shared blocks as the volume's own
// would promise the same space twice, and a volume under its limit would
// then find the disk full (EIO inside a thin image).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { mountCapability, uniqueName, type DriverProcess } from "./harness";
import { driverOnLoopFs, type LoopFs, type LoopFsKind } from "./loop-fs";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const WRITTEN = 256 * MiB;

const CASES: { title: string; root: LoopFsKind; parameters: Record<string, string> }[] = [
  { title: "image volumes on ext4 (snapshots are copies)", root: "ext4", parameters: { capacity: "image" } },
  { title: "image volumes on XFS (snapshots share extents)", root: "xfs", parameters: { capacity: "image" } },
  { title: "image volumes on btrfs (snapshots share extents)", root: "btrfs", parameters: { capacity: "image" } },
  { title: "quota volumes on btrfs (snapshots share extents)", root: "btrfs-quota", parameters: { capacity: "quota" } },
];

for (const c of CASES) {
  describe(`GetCapacity with snapshots and clones, ${c.title}`, function () {
    this.timeout(120_000);
    let fs: LoopFs | undefined;
    let d: DriverProcess | undefined;
    driverOnLoopFs(c.root, 4 * GiB, (f, drv) => ((fs = f), (d = drv)));

    const available = async () => (await d!.client.controller.getCapacity({ parameters: c.parameters })).availableCapacity!;
    /** What the ledger says once it has measured every volume again (a restart measures them all). */
    const measured = async () => {
      execFileSync("sync", ["-f", fs!.mountPoint]); // btrfs counts a qgroup's bytes at its commit
      await d!.restart();
      return available();
    };
    const near = (actual: number, expected: number, what: string, slack = 24 * MiB) =>
      assert.ok(Math.abs(actual - expected) <= slack, `${what}: ${actual} is not within ${slack} of ${expected} (off by ${((actual - expected) / MiB).toFixed(1)} MiB)`);

    /** Write WRITTEN bytes that are not zeros into the volume's data, as a workload would. */
    async function fill(volumeId: string): Promise<void> {
      const data = path.join(d!.root, "data", volumeId);
      const image = (await fsp.stat(data)).isFile();
      const fh = await fsp.open(image ? data : path.join(data, "fill"), image ? "r+" : "w");
      try {
        const chunk = Buffer.alloc(4 * MiB, 0xab);
        for (let off = 0; off < WRITTEN; off += chunk.length) await fh.write(chunk, 0, chunk.length, (image ? 512 * MiB : 0) + off);
        await fh.sync();
      } finally {
        await fh.close();
      }
    }

    it("falls by a snapshot's data, and by a clone's whole size, however the copies are made", async () => {
      const start = await measured();
      const create = (name: string, contentSource?: { snapshot: { snapshotId: string } }) =>
        d!.client.controller.createVolume({ name, volumeCapabilities: [mountCapability()], capacityRange: { requiredBytes: GiB }, parameters: c.parameters, volumeContentSource: contentSource });
      const a = (await create(uniqueName())).volume!.volumeId!;
      near(await measured(), start - GiB, "after a 1 GiB volume");

      await fill(a);
      // Written data moves from "owed to the volume" to "used on the disk".
      near(await measured(), start - GiB, "after 256 MiB written into it");

      const snap = (await d!.client.controller.createSnapshot({ name: uniqueName("snap"), sourceVolumeId: a })).snapshot!;
      near(await measured(), start - GiB - WRITTEN, "after a snapshot of it");

      const b = (await create(uniqueName(), { snapshot: { snapshotId: snap.snapshotId! } })).volume!.volumeId!;
      near(await measured(), start - 2 * GiB - WRITTEN, "after a clone of the snapshot");

      await d!.client.controller.deleteVolume({ volumeId: b });
      await d!.client.controller.deleteSnapshot({ snapshotId: snap.snapshotId! });
      await d!.client.controller.deleteVolume({ volumeId: a });
      near(await measured(), start, "after all is deleted");
    });
  });
}
