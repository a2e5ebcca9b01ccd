/**
 * Snapshot and restore of a volume in use holding 10,000 small files (1 GiB),
 * through the driver's RPCs, against a plain recursive copy — and what the
 * copy costs a pod that is writing meanwhile.
 *
 * The driver runs from this checkout with its root on the file system under
 * test. A volume is created (with the StorageClass parameters given by
 * --param; none by default, so the driver's default layout: an image volume
 * on a root without quotas), staged and published like a pod's, and the data
 * set (bench/dataset.ts) is written into it through its mount. Then each step
 * is timed as a CSI client sees it, and the space it took is read from the
 * root file system's "used" count (df) before and after:
 *
 *   CreateSnapshot                    volume → snapshot
 *   CreateVolume from the snapshot    snapshot → new volume (restore)
 *   CreateVolume from the volume      volume → new volume (clone)
 *   cp -a --reflink=never + sync      the baseline: a plain recursive copy of the files
 *   cp -a + sync                      coreutils ≥ 9's default (reflinks when it can)
 *
 * During the snapshot and the clone a writer process keeps writing 4 KiB
 * files into the volume, one every 5 ms; its longest wait for one write
 * during the call is "the pause a writer sees". Beside it is the driver's
 * own account of how long it held the volume's file system frozen (its log
 * line "held volumes still for a copy"). A directory volume is never frozen.
 *
 * Each restore and clone is staged and checked against the source with
 * diff -r. Times are the median of --repeat runs; the page cache is warm
 * (the data was just written), and every step includes flushing its copy.
 *
 *   node dist/bench/snapshot.js --dir /mnt/xfs/bench [--repeat 3] [--param capacity=none] [--files 10000] [--bytes 1073741824]
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { connect, type CsiClient } from "../src/client/csi-client";
import { VolumeCapability_AccessMode_Mode as Mode, type VolumeCapability, type VolumeContentSource } from "../src/gen/csi";
import { driverArgs, driverEnv, rerunInPrivateMountNamespace, untilServing } from "./driver-command";
import { parseParams } from "./process-figures";
import { duBytes, fillDataset, FILES, fsType, fsUsedBytes, gib, mib, TOTAL_BYTES } from "./dataset";

const CAP: VolumeCapability = { mount: { fsType: "", mountFlags: [], volumeMountGroup: "" }, accessMode: { mode: Mode.SINGLE_NODE_WRITER } };
const GiB = 1024 ** 3;
const WRITER_DIR = "bench-writer";

interface Step {
  seconds: number;
  bytes: number;
  /** How long the driver held the file system frozen, if it did. */
  frozenMs?: number;
  /** The writer's longest wait for one write during the step, if a writer ran. */
  stallMs?: number;
}

interface Driver {
  proc: ChildProcess;
  client: CsiClient;
  /** The driver's "held volumes still" log lines, in order. */
  holds: { frozenMs: number }[];
}

async function startDriver(root: string, kubelet: string, socketDir: string): Promise<Driver> {
  const endpoint = `unix://${path.join(socketDir, "csi.sock")}`;
  // Log level info, for the driver's account of each freeze; other lines of warn and above are shown.
  const args = ["driver", "--endpoint", endpoint, "--node-id", "bench", "--root", root, "--kubelet-dir", kubelet, "--log-level", "info"];
  const proc = spawn(process.execPath, driverArgs(args), {
    stdio: ["ignore", "ignore", "pipe"],
    env: driverEnv(),
  });
  const holds: { frozenMs: number }[] = [];
  let buf = "";
  proc.stderr!.on("data", (chunk: Buffer) => {
    buf += chunk.toString();
    const lines = buf.split("\n");
    buf = lines.pop()!;
    for (const line of lines) {
      try {
        const rec = JSON.parse(line) as { msg?: string; level?: string; frozenMs?: number };
        if (rec.msg === "held volumes still for a copy") holds.push({ frozenMs: rec.frozenMs ?? 0 });
        else if (rec.level === "warn" || rec.level === "error") console.error(line);
      } catch {
        console.error(line);
      }
    }
  });
  await untilServing(proc, endpoint, "the driver");
  return { proc, client: connect(endpoint), holds };
}

/** A volume staged and published as a pod's, at `target`. */
interface Used {
  volumeId: string;
  target: string;
  staging: string;
}

let counter = 0;
async function createAndUse(c: CsiClient, work: string, name: string, parameters: Record<string, string>, source?: VolumeContentSource): Promise<Used> {
  const req = { name, volumeCapabilities: [CAP], capacityRange: { requiredBytes: 2 * GiB }, parameters, ...(source ? { volumeContentSource: source } : {}) };
  const volumeId = (await c.controller.createVolume(req)).volume!.volumeId!;
  return use(c, work, volumeId);
}

/** Where staging and target paths go: the driver acts only inside its --kubelet-dir. */
const kubeletDir = (work: string) => path.join(work, "kubelet");

async function use(c: CsiClient, work: string, volumeId: string): Promise<Used> {
  const n = ++counter;
  const v = { volumeId, staging: path.join(kubeletDir(work), `stage-${n}`), target: path.join(kubeletDir(work), `target-${n}`) };
  await c.node.nodeStageVolume({ volumeId, stagingTargetPath: v.staging, volumeCapability: CAP });
  await c.node.nodePublishVolume({ volumeId, stagingTargetPath: v.staging, targetPath: v.target, volumeCapability: CAP });
  return v;
}

async function release(c: CsiClient, v: Used): Promise<void> {
  await c.node.nodeUnpublishVolume({ volumeId: v.volumeId, targetPath: v.target });
  await c.node.nodeUnstageVolume({ volumeId: v.volumeId, stagingTargetPath: v.staging });
}

/** A process writing a 4 KiB file into `dir` every 5 ms, printing when each write returned. */
function startWriter(dir: string): { ready(): Promise<void>; stop(): Promise<number[]> } {
  const script = `
    const fs = require("fs"), path = require("path");
    const dir = process.argv[1], buf = Buffer.alloc(4096, 1), nap = new Int32Array(new SharedArrayBuffer(4));
    fs.mkdirSync(dir, { recursive: true });
    for (let i = 0; ; i++) {
      fs.writeFileSync(path.join(dir, "w-" + i), buf);
      process.stdout.write(Date.now() + "\\n");
      Atomics.wait(nap, 0, 0, 5);
    }`;
  const proc = spawn(process.execPath, ["-e", script, dir], { stdio: ["ignore", "pipe", "inherit"] });
  const times: number[] = [];
  let buf = "";
  proc.stdout!.on("data", (chunk: Buffer) => {
    buf += chunk.toString();
    const lines = buf.split("\n");
    buf = lines.pop()!;
    for (const l of lines) times.push(Number(l));
  });
  return {
    async ready() {
      while (times.length < 20) await new Promise((r) => setTimeout(r, 10));
    },
    async stop() {
      const gone = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGKILL");
      await gone;
      return times;
    },
  };
}

/** The longest gap between two of the writer's completed writes that overlaps [from, to]. */
function longestWait(times: number[], from: number, to: number): number {
  let worst = 0;
  for (let i = 1; i < times.length; i++) if (times[i]! >= from && times[i - 1]! <= to) worst = Math.max(worst, times[i]! - times[i - 1]!);
  return worst;
}

/** Time `step` and the space it took on the file system holding `dir`; with `writeInto`, a writer runs during it. */
async function measure(d: Driver, dir: string, step: () => Promise<void>, writeInto?: string): Promise<Step> {
  const before = await fsUsedBytes(dir);
  const holds = d.holds.length;
  const writer = writeInto ? startWriter(writeInto) : undefined;
  await writer?.ready(); // writing steadily before the call
  const from = Date.now();
  const t0 = process.hrtime.bigint();
  try {
    await step();
  } catch (err) {
    await writer?.stop();
    throw err;
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const to = Date.now();
  await new Promise((r) => setTimeout(r, writer ? 100 : 0)); // the driver's log line, and the writer's next write
  const stallMs = writer ? longestWait(await writer.stop(), from, to) : undefined;
  const frozen = d.holds.slice(holds);
  return {
    seconds,
    bytes: (await fsUsedBytes(dir)) - before,
    ...(frozen.length > 0 ? { frozenMs: frozen.reduce((s, h) => s + h.frozenMs, 0) } : {}),
    ...(stallMs !== undefined ? { stallMs } : {}),
  };
}

function cp(args: string[]): void {
  const r = spawnSync("cp", args, { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`cp ${args.join(" ")}: ${r.stderr}`);
  spawnSync("sync", ["-f", args.at(-1)!]);
}

function same(a: string, b: string): void {
  const r = spawnSync("diff", ["-r", "--no-dereference", `--exclude=${WRITER_DIR}`, a, b], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`restored content differs from the source:\n${r.stdout.slice(0, 2000)}`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

function range(xs: number[], digits: number): string {
  return `${median(xs).toFixed(digits)} (${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)})`;
}

async function main(): Promise<void> {
  if (rerunInPrivateMountNamespace()) return; // its driver stages and publishes with real mounts
  const { values } = parseArgs({
    options: {
      dir: { type: "string" },
      repeat: { type: "string", default: "3" },
      files: { type: "string", default: String(FILES) },
      bytes: { type: "string", default: String(TOTAL_BYTES) },
      param: { type: "string", multiple: true, default: [] },
    },
  });
  if (!values.dir) throw new Error("--dir DIR is required (a scratch directory on the file system to measure)");
  const parameters = parseParams(values.param);
  const work = path.resolve(values.dir);
  const repeat = Number(values.repeat);
  const files = Number(values.files);
  await fsp.rm(work, { recursive: true, force: true });
  await fsp.mkdir(kubeletDir(work), { recursive: true });
  const socketDir = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-bench-"));
  const root = path.join(work, "root");
  const d = await startDriver(root, kubeletDir(work), socketDir);
  const results = new Map<string, Step[]>();
  const record = (name: string, s: Step) => results.set(name, [...(results.get(name) ?? []), s]);
  const used: Used[] = [];
  const c = d.client.controller;
  let layout = "";
  try {
    const source = await createAndUse(d.client, work, "bench-source", parameters);
    used.push(source);
    layout = (JSON.parse(await fsp.readFile(path.join(root, "volumes", `${source.volumeId}.json`), "utf8")) as { layout?: string }).layout ?? "dir";
    await fillDataset(source.target, files, Math.floor(Number(values.bytes) / files));
    spawnSync("sync", ["-f", work]);
    spawnSync("sync", ["-f", source.target]);
    const fs = fsType(work);
    const dataBytes = duBytes(source.target);
    const writerDir = path.join(source.target, WRITER_DIR);

    for (let i = 0; i < repeat; i++) {
      let snapshotId = "";
      const snap = async () => {
        snapshotId = (await c.createSnapshot({ name: `bench-snap-${i}`, sourceVolumeId: source.volumeId })).snapshot!.snapshotId!;
      };
      record("CreateSnapshot (a writer writing)", await measure(d, work, snap, writerDir));
      let restored: Used | undefined;
      record("CreateVolume from the snapshot (restore)", await measure(d, work, async () => {
        const req = { name: `bench-restore-${i}`, volumeCapabilities: [CAP], volumeContentSource: { snapshot: { snapshotId } } };
        restored = { volumeId: (await c.createVolume(req)).volume!.volumeId!, target: "", staging: "" };
      }));
      restored = await use(d.client, work, restored!.volumeId);
      same(source.target, restored.target);
      let clone = "";
      record("CreateVolume from the volume (clone, a writer writing)", await measure(d, work, async () => {
        const req = { name: `bench-clone-${i}`, volumeCapabilities: [CAP], volumeContentSource: { volume: { volumeId: source.volumeId } } };
        clone = (await c.createVolume(req)).volume!.volumeId!;
      }, writerDir));
      const cloned = await use(d.client, work, clone);
      same(source.target, cloned.target);
      const plain = path.join(work, `cp-plain-${i}`);
      record("cp -a --reflink=never of the files (plain copy, baseline)", await measure(d, work, async () => cp(["-a", "--reflink=never", "-T", source.target, plain])));
      const auto = path.join(work, `cp-auto-${i}`);
      record("cp -a of the files (coreutils 9 default, reflink=auto)", await measure(d, work, async () => cp(["-a", "-T", source.target, auto])));

      for (const v of [restored, cloned]) {
        await release(d.client, v);
        await c.deleteVolume({ volumeId: v.volumeId });
      }
      await c.deleteSnapshot({ snapshotId });
      await fsp.rm(plain, { recursive: true });
      await fsp.rm(auto, { recursive: true });
      await fsp.rm(writerDir, { recursive: true, force: true });
      // Let the file system finish freeing what was deleted so that work is
      // not billed to the next run's first step.
      spawnSync("sync", ["-f", work]);
      await new Promise((r) => setTimeout(r, 2000));
    }

    console.log(`\n# root on ${fs}, ${layout} volume: ${files} files, ${gib(dataBytes)} GiB in the source volume; median (min–max) of ${repeat} runs\n`);
    console.log("| root | step | time s | new space MiB | fs frozen ms | writer's longest wait ms |");
    console.log("|---|---|---:|---:|---:|---:|");
    for (const [name, steps] of results) {
      const space = median(steps.map((s) => s.bytes));
      const frozen = steps.every((s) => s.frozenMs !== undefined) ? range(steps.map((s) => s.frozenMs!), 0) : steps[0]!.stallMs !== undefined ? "not frozen" : "";
      const stall = steps[0]!.stallMs !== undefined ? range(steps.map((s) => s.stallMs!), 0) : "";
      console.log(`| ${fs} | ${name} | ${range(steps.map((s) => s.seconds), 2)} | ${mib(Math.max(0, space))} | ${frozen} | ${stall} |`);
    }
  } finally {
    for (const v of used) await release(d.client, v).catch(() => undefined);
    d.client.close();
    d.proc.kill("SIGTERM");
    await new Promise((r) => d.proc.once("exit", r));
    await fsp.rm(work, { recursive: true, force: true }).catch((e: unknown) => console.error(`could not remove ${work}: ${String(e)}`));
    await fsp.rm(socketDir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
