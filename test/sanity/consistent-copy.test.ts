// A snapshot or clone of a volume in use holds what was written before it — on
// every layout of every backend (the rows of COPY_CASES).
//
// A pod writes through its mount (or device) and never syncs; the copy is asked
// for at once. What the pod wrote may still be only in the page cache of the
// volume's own file system or device: a copy of the bytes underneath would miss
// it. Then the same while a writer keeps writing during the call: every file (or
// record) completed before the call must be in the copy, whole, and the copy of a
// file system must be a clean one.
import assert from "node:assert/strict";
import { randomBytes, randomInt } from "node:crypto";
import { closeSync, openSync, promises as fsp, writeFileSync, writeSync } from "node:fs";
import * as path from "node:path";
import type { VolumeContentSource } from "../../src/gen/csi";
import { COPY_CASES, fsckImage, PodVolume, programsFor, thawUnder, Writer, type CopyCase } from "./copy-cases";
import { destroyDriver, startDriver, type DriverProcess } from "./harness";
import { loopFsOrSkip, type LoopFs } from "./loop-fs";
import { skipUnlessInstalled } from "./programs";
import { fileContent, fileName, RECORD, recordContent } from "./writer";

const GiB = 1024 ** 3;

/** How many of `expected` files `got` has, byte for byte. */
function sameFiles(got: Map<string, Buffer>, expected: Map<string, Buffer>): number {
  return [...expected].filter(([name, bytes]) => got.get(name)?.equals(bytes) === true).length;
}

for (const c of COPY_CASES) {
  describe(`Copies of a volume in use: ${c.name}`, function () {
    this.timeout(180_000);
    let d: DriverProcess;
    let fs: LoopFs | undefined;
    const volumes: PodVolume[] = [];
    before(async function () {
      skipUnlessInstalled(this, ...programsFor(c));
      if (c.root) fs = await loopFsOrSkip(this, c.root, 3 * GiB);
      d = await startDriver(fs ? { dir: fs.scratch } : {});
    });
    afterEach(async () => {
      thawUnder(d.dir);
      for (const v of volumes.splice(0)) await v.release().catch(() => undefined);
    });
    after(async () => {
      if (d) thawUnder(d.dir);
      await destroyDriver(d);
      await fs?.cleanup();
    });

    const make = async (source?: VolumeContentSource, beforeUse?: (v: PodVolume) => void) => {
      const v = await PodVolume.create(d, c, source, beforeUse);
      volumes.push(v);
      return v;
    };

    it("20 writes without sync, then at once a snapshot: its restore and a clone hold every byte", async () => {
      const source = await make();
      if (c.access === "mount") {
        const written = new Map<string, Buffer>();
        for (let i = 0; i < 20; i++) {
          const bytes = randomBytes(randomInt(1, 64 * 1024));
          writeFileSync(path.join(source.target, `f-${i}`), bytes); // no fsync, as most programs
          written.set(`f-${i}`, bytes);
        }
        const snapshotId = await source.snapshot();
        const restored = await make({ snapshot: { snapshotId } });
        const clone = await make({ volume: { volumeId: source.volumeId } });
        assert.equal(sameFiles(await restored.files(), written), 20, "files byte-identical in the restored volume (of 20)");
        assert.deepEqual([...(await restored.files()).keys()], [...written.keys()].sort());
        assert.equal(sameFiles(await clone.files(), written), 20, "files byte-identical in the clone (of 20)");
        assert.deepEqual([...(await clone.files()).keys()], [...written.keys()].sort());
      } else {
        // The pod keeps its device open, as a database would: its writes may be in the
        // device's page cache only (the last close of a block device would flush them).
        const fd = openSync(source.target, "r+");
        let snapshotId: string;
        let clone: PodVolume;
        try {
          for (let i = 0; i < 20; i++) writeSync(fd, randomBytes(RECORD), 0, RECORD, randomInt(0, c.sizeBytes / RECORD) * RECORD);
          snapshotId = await source.snapshot();
          clone = await make({ volume: { volumeId: source.volumeId } });
        } finally {
          closeSync(fd);
        }
        const restored = await make({ snapshot: { snapshotId } });
        const expected = await source.device();
        assert.ok((await restored.device()).equals(expected), "the restored device holds every byte");
        assert.ok((await clone.device()).equals(expected), "the clone holds every byte");
      }
    });

    it("a writer keeps writing during a snapshot and a clone: each copy holds every write completed before its call; a file system copy is clean", async () => {
      const source = await make();
      const writer = new Writer(c.access === "block" ? "device" : "files", source.target);
      let snapshotId = "";
      let clone: PodVolume | undefined;
      let beforeSnapshot = -1;
      let beforeClone = -1;
      try {
        await writer.advance(40);
        beforeSnapshot = writer.latest;
        snapshotId = await source.snapshot();
        await writer.advance(20); // not left frozen
        beforeClone = writer.latest;
        clone = await make({ volume: { volumeId: source.volumeId } }, (v) => checkImage(c, path.join(d.root, "data", v.volumeId), false));
        await writer.advance(20);
      } finally {
        await writer.stop();
      }
      checkImage(c, source.snapshotContent(snapshotId), false);
      const restored = await make({ snapshot: { snapshotId } });
      await holdsWritesUpTo(c, restored, beforeSnapshot);
      await holdsWritesUpTo(c, clone, beforeClone);
      for (const v of [restored, clone]) {
        await v.release();
        checkImage(c, path.join(d.root, "data", v.volumeId), true);
      }
    });
  });
}

/**
 * An image copy is a clean file system: checked read-only (e2fsck -n,
 * xfs_repair -n), and mounted by the restore. A frozen ext4 is clean as it
 * stands; a frozen XFS leaves its log to be replayed by the next mount
 * (xfs_repair -n reports that as "valuable metadata changes in a log"), so
 * an XFS copy is checked once it has been mounted and unmounted.
 */
function checkImage(c: CopyCase, file: string, mountedSince: boolean): void {
  if (c.layout !== "image") return;
  const fsType = c.fsType || "ext4";
  if (fsType === "xfs" && !mountedSince) return;
  fsckImage(file, fsType);
}

/** The copy holds writes 0..last of the writer, whole. */
async function holdsWritesUpTo(c: CopyCase, v: PodVolume, last: number): Promise<void> {
  assert.ok(last >= 0);
  if (c.access === "block") {
    const dev = await v.device();
    for (let i = 0; i <= last; i++) {
      assert.ok(dev.subarray(i * RECORD, (i + 1) * RECORD).equals(recordContent(i)), `record ${i} (of ${last + 1} completed before the call) is in the copy`);
    }
    return;
  }
  const missing: number[] = [];
  for (let i = 0; i <= last; i++) {
    const got = await fsp.readFile(path.join(v.target, fileName(i))).catch(() => undefined);
    if (!got?.equals(fileContent(i))) missing.push(i);
  }
  assert.deepEqual(missing, [], `files completed before the call but missing or torn in the copy (of ${last + 1})`);
}
