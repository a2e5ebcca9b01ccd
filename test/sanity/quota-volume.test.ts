// Quota volumes: a directory whose size the root's quotas enforce — what
// the kernel holds for it is created with the volume, follows expansion,
// and goes with the volume; an interrupted create leaves no quota behind.
// Run on every root kind that offers quotas here (others are skipped).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { promises as fsp, readFileSync } from "node:fs";
import * as path from "node:path";
import { mountCapability, uniqueName, type DriverProcess } from "./harness";
import { driverOnLoopFs, type LoopFs, type LoopFsKind } from "./loop-fs";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

interface Quota {
  kind: string;
  projectId?: number;
  subvolumeId?: number;
}

/** The limit the kernel enforces for a volume's quota, asked of the file system's own tools. */
function kernelLimit(fs: LoopFs, q: Quota): number {
  if (q.kind === "btrfs-qgroup") {
    const uuid = execFileSync("findmnt", ["-n", "-o", "UUID", fs.mountPoint], { encoding: "utf8" }).trim();
    return Number(readFileSync(`/sys/fs/btrfs/${uuid}/qgroups/0_${q.subvolumeId}/max_referenced`, "utf8").trim());
  }
  // xfs_quota works on ext4 too: -p projects, -v even when nothing is used,
  // -N without a header, -n by number; columns: device, used, soft, hard (KiB).
  // (-f lets it work on a "foreign", non-XFS, file system.)
  const foreign = fs.kind.startsWith("ext4") ? ["-f"] : [];
  const out = execFileSync("xfs_quota", [...foreign, "-x", "-c", `quota -v -p -N -n ${q.projectId}`, fs.mountPoint], { encoding: "utf8" });
  const hard = out.trim() === "" ? 0 : Number(out.trim().split(/\s+/)[3]);
  return hard * 1024;
}

const ROOTS: LoopFsKind[] = ["btrfs-quota", "xfs-prjquota", "ext4-prjquota"];

for (const root of ROOTS) {
  describe(`Quota volumes on ${root}`, function () {
    this.timeout(60_000);
    let fs: LoopFs | undefined;
    let d: DriverProcess | undefined;
    // Project quotas are read back with xfs_quota, on ext4 as on XFS.
    driverOnLoopFs(root, 3 * GiB, (f, drv) => ((fs = f), (d = drv)), root.endsWith("prjquota") ? ["xfs_quota"] : []);

    const meta = async (id: string) => JSON.parse(await fsp.readFile(path.join(d!.root, "volumes", `${id}.json`), "utf8"));

    it("are the default where the root has quotas; the kernel enforces exactly the volume's size", async () => {
      const { volume } = await d!.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], capacityRange: { requiredBytes: 300 * MiB } });
      const m = await meta(volume!.volumeId!);
      assert.equal(m.layout, "dir");
      assert.ok(m.quota, "the record keeps its quota");
      assert.equal(kernelLimit(fs!, m.quota), 300 * MiB);
      assert.equal((await fsp.stat(path.join(d!.root, "data", volume!.volumeId!))).mode & 0o777, 0o777);
    });

    it("expansion raises the kernel's limit, with no node expansion needed", async () => {
      const { volume } = await d!.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], capacityRange: { requiredBytes: 100 * MiB } });
      const res = await d!.client.controller.controllerExpandVolume({ volumeId: volume!.volumeId, capacityRange: { requiredBytes: 200 * MiB } });
      assert.equal(res.nodeExpansionRequired, false);
      assert.equal(kernelLimit(fs!, (await meta(volume!.volumeId!)).quota), 200 * MiB);
    });

    it("each volume has a quota of its own, and a deleted volume's goes with it", async () => {
      const ids = [];
      for (let i = 0; i < 3; i++) {
        ids.push((await d!.client.controller.createVolume({ name: uniqueName(), volumeCapabilities: [mountCapability()], capacityRange: { requiredBytes: (i + 1) * 10 * MiB } })).volume!.volumeId!);
      }
      const quotas = await Promise.all(ids.map(async (id) => (await meta(id)).quota));
      assert.equal(new Set(quotas.map((q) => JSON.stringify(q))).size, 3);
      quotas.forEach((q, i) => assert.equal(kernelLimit(fs!, q), (i + 1) * 10 * MiB));
      await d!.client.controller.deleteVolume({ volumeId: ids[0] });
      if (quotas[0].kind === "project") assert.equal(kernelLimit(fs!, quotas[0]), 0, "the project's limit is dropped");
      assert.deepEqual((await fsp.readdir(path.join(d!.root, "data"))).includes(ids[0]!), false);
    });

    it("an interrupted create leaves no directory and no quota behind", async () => {
      const names = Array.from({ length: 20 }, () => uniqueName("crash"));
      const calls = names.map((name) => d!.client.controller.createVolume({ name, volumeCapabilities: [mountCapability()], capacityRange: { requiredBytes: 10 * MiB } }).catch(() => undefined));
      await new Promise((r) => setTimeout(r, 15));
      d!.proc.kill("SIGKILL");
      await Promise.all(calls);
      await d!.exit;
      await d!.start();
      assert.deepEqual(await fsp.readdir(path.join(d!.root, ".tmp")), []);
      const metas = (await fsp.readdir(path.join(d!.root, "volumes"))).filter((f) => f.endsWith(".json")).map((f) => f.slice(0, -5));
      assert.deepEqual((await fsp.readdir(path.join(d!.root, "data"))).sort(), metas.sort());
      if (root === "btrfs-quota") {
        // Every subvolume left is a volume's.
        const subvolumes = execFileSync("btrfs", ["subvolume", "list", "-o", d!.root + "/data"], { encoding: "utf8" }).trim().split("\n").filter((l) => l);
        assert.equal(subvolumes.length, metas.length);
      }
    });
  });
}
