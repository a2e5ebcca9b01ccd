/**
 * Snapshot and restore of a 1 GiB volume with 10,000 small files, through
 * the driver's RPCs, against a plain recursive copy.
 *
 * The driver runs from this checkout with its root on the file system under
 * test. A 1 GiB volume is filled with the data set (bench/dataset.ts), then
 * each step is timed as a CSI client sees it, and the space it took is read
 * from the file system's "used" count (df) before and after:
 *
 *   CreateSnapshot                    volume → snapshot
 *   CreateVolume from the snapshot    snapshot → new volume (restore)
 *   CreateVolume from the volume      volume → new volume (clone)
 *   cp -a --reflink=never + sync      the baseline: a plain recursive copy
 *   cp -a + sync                      coreutils ≥ 9's default (reflinks when it can)
 *
 * Each restore is checked against the source with diff -r. Times are the
 * median of --repeat runs; the page cache is warm (the data was just
 * written), and every step includes flushing its copy to disk.
 *
 *   node dist/bench/snapshot.js --dir /mnt/xfs/bench [--repeat 3] [--files 10000] [--bytes 1073741824]
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { connect, type CsiClient } from "../src/client/csi-client";
import { VolumeCapability_AccessMode_Mode as Mode, type VolumeCapability } from "../src/gen/csi";
import { duBytes, fillDataset, FILES, fsType, fsUsedBytes, gib, mib, TOTAL_BYTES } from "./dataset";

const CAP: VolumeCapability = { mount: { fsType: "", mountFlags: [], volumeMountGroup: "" }, accessMode: { mode: Mode.SINGLE_NODE_WRITER } };
const GiB = 1024 ** 3;

interface Step {
  seconds: number;
  bytes: number;
}

async function startDriver(root: string, socketDir: string): Promise<{ proc: ChildProcess; client: CsiClient }> {
  const bin = path.resolve(__dirname, "../../bin/csi-lab.js");
  const endpoint = `unix://${path.join(socketDir, "csi.sock")}`;
  const proc = spawn(process.execPath, [bin, "driver", "--endpoint", endpoint, "--node-id", "bench", "--root", root, "--log-level", "warn"], {
    stdio: ["ignore", "ignore", "inherit"],
  });
  for (;;) {
    const client = connect(endpoint);
    try {
      await client.identity.probe({}, { timeoutMs: 200 });
      return { proc, client };
    } catch {
      client.close();
      if (proc.exitCode !== null) throw new Error("driver exited during start-up");
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** Time `step` and the space it took on the file system holding `dir`. */
async function measure(dir: string, step: () => Promise<void>): Promise<Step> {
  const before = await fsUsedBytes(dir);
  const t0 = process.hrtime.bigint();
  await step();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { seconds, bytes: (await fsUsedBytes(dir)) - before };
}

function cp(args: string[]): void {
  const r = spawnSync("cp", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`cp ${args.join(" ")}: ${r.stderr}`);
  spawnSync("sync", ["-f", args.at(-1)!]);
}

function same(a: string, b: string): void {
  const r = spawnSync("diff", ["-r", "--no-dereference", a, b], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`restored content differs from the source:\n${r.stdout.slice(0, 2000)}`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      dir: { type: "string" },
      repeat: { type: "string", default: "3" },
      files: { type: "string", default: String(FILES) },
      bytes: { type: "string", default: String(TOTAL_BYTES) },
    },
  });
  if (!values.dir) throw new Error("--dir DIR is required (a scratch directory on the file system to measure)");
  const work = path.resolve(values.dir);
  const repeat = Number(values.repeat);
  const files = Number(values.files);
  await fsp.rm(work, { recursive: true, force: true });
  await fsp.mkdir(work, { recursive: true });
  const socketDir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-bench-"));
  const root = path.join(work, "root");
  const { proc, client } = await startDriver(root, socketDir);
  const results = new Map<string, Step[]>();
  const record = (name: string, s: Step) => results.set(name, [...(results.get(name) ?? []), s]);
  try {
    const c = client.controller;
    const source = (await c.createVolume({ name: "bench-source", volumeCapabilities: [CAP], capacityRange: { requiredBytes: GiB } })).volume!.volumeId!;
    const sourceDir = path.join(root, "data", source);
    await fillDataset(sourceDir, files, Math.floor(Number(values.bytes) / files));
    spawnSync("sync", ["-f", work]);
    const fs = fsType(work);
    const dataBytes = duBytes(sourceDir);

    for (let i = 0; i < repeat; i++) {
      let snapshotId = "";
      record("CreateSnapshot", await measure(work, async () => {
        snapshotId = (await c.createSnapshot({ name: `bench-snap-${i}`, sourceVolumeId: source })).snapshot!.snapshotId!;
      }));
      let restored = "";
      record("CreateVolume from snapshot (restore)", await measure(work, async () => {
        const req = { name: `bench-restore-${i}`, volumeCapabilities: [CAP], volumeContentSource: { snapshot: { snapshotId } } };
        restored = (await c.createVolume(req)).volume!.volumeId!;
      }));
      same(sourceDir, path.join(root, "data", restored));
      let clone = "";
      record("CreateVolume from volume (clone)", await measure(work, async () => {
        const req = { name: `bench-clone-${i}`, volumeCapabilities: [CAP], volumeContentSource: { volume: { volumeId: source } } };
        clone = (await c.createVolume(req)).volume!.volumeId!;
      }));
      same(sourceDir, path.join(root, "data", clone));
      const plain = path.join(work, `cp-plain-${i}`);
      record("cp -a --reflink=never (plain copy, baseline)", await measure(work, async () => cp(["-a", "--reflink=never", "-T", sourceDir, plain])));
      const auto = path.join(work, `cp-auto-${i}`);
      record("cp -a (coreutils 9 default, reflink=auto)", await measure(work, async () => cp(["-a", "-T", sourceDir, auto])));

      await c.deleteVolume({ volumeId: restored });
      await c.deleteVolume({ volumeId: clone });
      await c.deleteSnapshot({ snapshotId });
      await fsp.rm(plain, { recursive: true });
      await fsp.rm(auto, { recursive: true });
      // Let the file system finish freeing 4 GiB (journal, extent frees) so
      // that work is not billed to the next run's first step.
      spawnSync("sync", ["-f", work]);
      await new Promise((r) => setTimeout(r, 2000));
    }

    console.log(`\n# ${fs}: ${files} files, ${gib(dataBytes)} GiB in the source volume; median of ${repeat} runs\n`);
    console.log("| fs | step | time s (median) | min–max s | new space MiB |");
    console.log("|---|---|---:|---:|---:|");
    for (const [name, steps] of results) {
      const t = steps.map((s) => s.seconds);
      const space = median(steps.map((s) => s.bytes));
      console.log(`| ${fs} | ${name} | ${median(t).toFixed(2)} | ${Math.min(...t).toFixed(2)}–${Math.max(...t).toFixed(2)} | ${mib(Math.max(0, space))} |`);
    }
  } finally {
    client.close();
    proc.kill("SIGTERM");
    await new Promise((r) => proc.once("exit", r));
    await fsp.rm(work, { recursive: true, force: true });
    await fsp.rm(socketDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
