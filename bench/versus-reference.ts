/**
 * Side by side with the reference driver: the figures issue 22 sets goals for.
 *
 * A node plugin's cost is paid on every node, its latency by every pod
 * that waits for a volume. This runner measures both for our driver and,
 * when HOSTPATH_PLUGIN names an installed `hostpathplugin` (kubernetes-csi
 * csi-driver-host-path), for the reference Go driver too — alternately,
 * in one run, with the same client, because a shared 2-core machine drifts
 * within minutes. A cycle is Create → Stage → Publish → Unpublish →
 * Unstage → Delete of a 1 MiB volume. For each driver and round:
 *
 *   - start → serving: process start until the first Probe answers, with
 *     the environment the driver's image gives it (bench/driver-command.ts,
 *     driverEnv); where this shell sets a variable the image does not
 *     (NODE_EXTRA_CA_CERTS), once more with it, as a figure apart;
 *   - idle RSS, half a second after that, and RSS again after the loads;
 *   - `--warmup` cycles first (50, the issue's method: a node plugin is a
 *     long-running process; see docs/performance.md, *Warm-up*, for what
 *     more does), then
 *     `--cycles` measured ones at concurrency 1 and at `--concurrency`:
 *     one cycle's latency (the sum of the per-RPC medians), the driver's
 *     CPU per cycle (utime + stime of /proc/PID/stat), cycles per second;
 *   - with `--population N` (ours only: the reference keeps every volume in
 *     one JSON file rewritten per call), N idle volumes are made first and
 *     the throughput measured again, to show cost does not grow with them.
 *
 *   npm run build && node dist/bench/versus-reference.js [--rounds 3] [--cycles 200]
 *        [--warmup 50] [--concurrency 4] [--population 10000] [--param capacity=none]
 *        [--node-connection-per-call]
 *
 * --node-connection-per-call makes each node call on a connection of its
 * own, closed after it, as the kubelet makes them (the controller calls
 * keep one connection, as the sidecars do); the issue's method keeps one.
 *
 * --param goes to our CreateVolume only (the reference takes none). It
 * prints every run as a JSON line, then the medians, the ratios and, for
 * each goal of issue 22, whether it is met (only with the issue's 50
 * warm-up cycles; with another number it says where the figure falls). Everything runs in a private
 * mount namespace of its own, on scratch space under $TMPDIR that it
 * removes however it ends.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { promises as fsp, readFileSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { connect, type CsiClient } from "../src/client/csi-client";
import { VolumeCapability_AccessMode_Mode as Mode, type VolumeCapability } from "../src/gen/csi";
import { readMountInfo } from "../src/mount/mountinfo";
import { unmount } from "../src/mount/syscalls";
import { driverArgs, driverEnv, rerunInPrivateMountNamespace, setHereNotInImage, untilServing } from "./driver-command";
import { nodeCaller, type NodeCaller } from "./node-calls";
import { cpuMs, parseParams, rssMiB } from "./process-figures";

const RPCS = ["CreateVolume", "NodeStageVolume", "NodePublishVolume", "NodeUnpublishVolume", "NodeUnstageVolume", "DeleteVolume"] as const;
const MOUNT: VolumeCapability = { mount: { fsType: "", mountFlags: [], volumeMountGroup: "" }, accessMode: { mode: Mode.SINGLE_NODE_WRITER } };
const MIB = 1024 * 1024;
/** The warm-up cycles of issue 22's method. */
const ISSUE_WARMUP = 50;

type Who = "csi-lab" | "hostpath";

interface Options {
  rounds: number;
  cycles: number;
  warmup: number;
  concurrency: number;
  population: number;
  parameters: Record<string, string>;
  hostpath: string | undefined;
  /** Each node call on a connection of its own, as the kubelet makes them. */
  nodeConnectionPerCall: boolean;
}

/** One measured load: what the issue's table shows. */
interface Load {
  cyclesPerSecond: number;
  /** Sum of the six RPCs' median latencies. */
  cycleMs: number;
  driverCpuMsPerCycle: number;
  p50: Record<string, number>;
  failures: number;
}

interface Round {
  who: Who;
  round: number;
  readyMs: number;
  /** Start → serving with this shell's whole environment, where it sets what the image does not. */
  readyShellEnvMs?: number;
  idleRssMiB: number;
  /** RSS after the measured loads: what the process keeps once it has worked. */
  loadedRssMiB: number;
  one: Load;
  many: Load;
  populated?: Load & { population: number; populateSeconds: number };
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      rounds: { type: "string", default: "3" },
      cycles: { type: "string", default: "200" },
      warmup: { type: "string", default: String(ISSUE_WARMUP) },
      concurrency: { type: "string", default: "4" },
      population: { type: "string", default: "0" },
      param: { type: "string", multiple: true, default: [] },
      "node-connection-per-call": { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    // The opening comment, read from the TypeScript: dist/ is compiled without comments.
    const doc = /\/\*\*([\s\S]*?)\*\//.exec(readFileSync(path.resolve(__dirname, "../../bench/versus-reference.ts"), "utf8"))?.[1] ?? "";
    process.stdout.write(doc.replace(/^ \* ?/gm, "").trim() + "\n");
    process.exit(0);
  }
  const int = (name: string, v: string | undefined, min: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} wants a whole number ≥ ${min}, got ${v}`);
    return n;
  };
  const parameters = parseParams(values.param);
  const hostpath = process.env.HOSTPATH_PLUGIN || undefined;
  if (hostpath) {
    const r = spawnSync(hostpath, ["--version"], { encoding: "utf8" });
    if (r.error) throw new Error(`HOSTPATH_PLUGIN=${hostpath} does not run: ${r.error.message}`);
  }
  return {
    rounds: int("rounds", values.rounds, 1),
    cycles: int("cycles", values.cycles, 10),
    warmup: int("warmup", values.warmup, 0),
    concurrency: int("concurrency", values.concurrency, 1),
    population: int("population", values.population, 0),
    nodeConnectionPerCall: values["node-connection-per-call"] ?? false,
    parameters,
    hostpath,
  };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

interface Started {
  proc: ChildProcess;
  endpoint: string;
  readyMs: number;
  kubeletDir: string;
}

async function startDriver(who: Who, dir: string, o: Options, env: NodeJS.ProcessEnv = driverEnv()): Promise<Started> {
  const kubeletDir = path.join(dir, "kubelet");
  await fsp.mkdir(path.join(kubeletDir, "pods"), { recursive: true });
  const endpoint = `unix://${path.join(dir, "csi.sock")}`;
  const [cmd, args] =
    who === "csi-lab"
      ? [process.execPath, driverArgs(["driver", "--endpoint", endpoint, "--node-id", "bench-node", "--root", path.join(dir, "root"), "--kubelet-dir", kubeletDir, "--log-level", "warn"])]
      : [o.hostpath!, ["--endpoint", endpoint, "--nodeid", "bench-node", "--drivername", "hostpath.csi.k8s.io", "--statedir", path.join(dir, "state")]];
  const t = process.hrtime.bigint();
  const proc = spawn(cmd, args, { stdio: ["ignore", "ignore", "ignore"], env });
  await untilServing(proc, endpoint, who);
  return { proc, endpoint, readyMs: Number(process.hrtime.bigint() - t) / 1e6, kubeletDir };
}

async function stopDriver(s: Started): Promise<void> {
  if (s.proc.exitCode !== null) return;
  const gone = new Promise((r) => s.proc.once("exit", r));
  s.proc.kill("SIGTERM");
  await gone;
}

/** `n` cycles over `concurrency` workers; the driver's CPU is read around them. */
async function load(client: CsiClient, s: Started, tag: string, n: number, concurrency: number, parameters: Record<string, string>, node: NodeCaller): Promise<Load> {
  const samples: Record<string, number[]> = Object.fromEntries(RPCS.map((r) => [r, []]));
  let next = 0;
  let failures = 0;
  const timed = async <T>(rpc: string, fn: () => Promise<T>): Promise<T> => {
    const t = process.hrtime.bigint();
    const r = await fn();
    samples[rpc]!.push(Number(process.hrtime.bigint() - t) / 1e6);
    return r;
  };
  const cpu0 = cpuMs(s.proc.pid!);
  const t0 = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async (_, w) => {
      // As the kubelet does: the staging directory and the target's parent exist before the calls.
      const staging = path.join(s.kubeletDir, "plugins", "staging", `${tag}-w${w}`);
      const podDir = path.join(s.kubeletDir, "pods", `${tag}-w${w}`);
      await fsp.mkdir(staging, { recursive: true });
      await fsp.mkdir(podDir, { recursive: true });
      const target = path.join(podDir, "mount");
      while (next < n) {
        const i = next++;
        try {
          const vol = await timed("CreateVolume", () =>
            client.controller.createVolume({ name: `${tag}-${i}`, volumeCapabilities: [MOUNT], capacityRange: { requiredBytes: MIB }, parameters }),
          );
          const volumeId = vol.volume!.volumeId;
          await timed("NodeStageVolume", () => node((c) => c.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: MOUNT })));
          await timed("NodePublishVolume", () => node((c) => c.nodePublishVolume({ volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: MOUNT })));
          await timed("NodeUnpublishVolume", () => node((c) => c.nodeUnpublishVolume({ volumeId, targetPath: target })));
          await timed("NodeUnstageVolume", () => node((c) => c.nodeUnstageVolume({ volumeId, stagingTargetPath: staging })));
          await timed("DeleteVolume", () => client.controller.deleteVolume({ volumeId }));
        } catch (err) {
          if (++failures <= 3) process.stderr.write(`${tag}: a cycle failed: ${(err as Error).message}\n`);
          if (failures > n / 10) throw new Error(`${tag}: more than a tenth of the cycles failed`);
        }
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpuUsed = cpuMs(s.proc.pid!) - cpu0;
  const p50 = Object.fromEntries(RPCS.map((r) => [r, Math.round(median(samples[r]!) * 1000) / 1000]));
  const round2 = (x: number) => Math.round(x * 100) / 100;
  return {
    cyclesPerSecond: round2(n / seconds),
    cycleMs: round2(Object.values(p50).reduce((a, b) => a + b, 0)),
    driverCpuMsPerCycle: round2(cpuUsed / n),
    p50,
    failures,
  };
}

async function populate(client: CsiClient, n: number, parameters: Record<string, string>): Promise<number> {
  const t = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < n) {
        const i = next++;
        await client.controller.createVolume({ name: `idle-${i}`, volumeCapabilities: [MOUNT], capacityRange: { requiredBytes: MIB }, parameters });
      }
    }),
  );
  return (Date.now() - t) / 1000;
}

async function measure(who: Who, round: number, scratch: string, o: Options): Promise<Round> {
  const dir = path.join(scratch, `${who}-${round}`);
  let readyShellEnvMs: number | undefined;
  if (who === "csi-lab" && setHereNotInImage().length > 0) {
    const shell = await startDriver(who, `${dir}-shell-env`, o, process.env);
    readyShellEnvMs = Math.round(shell.readyMs);
    await stopDriver(shell);
  }
  const s = await startDriver(who, dir, o);
  const client = connect(s.endpoint);
  try {
    await new Promise((r) => setTimeout(r, 500));
    const idleRssMiB = Math.round(rssMiB(s.proc.pid!) * 10) / 10;
    const params = who === "csi-lab" ? o.parameters : {};
    const node = nodeCaller(client, s.endpoint, o.nodeConnectionPerCall);
    if (o.warmup > 0) await load(client, s, "warm", o.warmup, 1, params, node);
    const one = await load(client, s, "one", o.cycles, 1, params, node);
    const many = await load(client, s, "many", o.cycles, o.concurrency, params, node);
    const loadedRssMiB = Math.round(rssMiB(s.proc.pid!) * 10) / 10;
    const out: Round = { who, round, readyMs: Math.round(s.readyMs), ...(readyShellEnvMs !== undefined ? { readyShellEnvMs } : {}), idleRssMiB, loadedRssMiB, one, many };
    if (o.population > 0 && who === "csi-lab") {
      const populateSeconds = await populate(client, o.population, params);
      const populated = await load(client, s, "populated", o.cycles, o.concurrency, params, node);
      out.populated = { ...populated, population: o.population, populateSeconds };
    }
    return out;
  } finally {
    client.close();
    await stopDriver(s);
  }
}

function summary(rounds: Round[], o: Options): string {
  const of = (who: Who) => rounds.filter((r) => r.who === who);
  const fig = (rs: Round[]) => ({
    lat1: median(rs.map((r) => r.one.cycleMs)),
    cpu1: median(rs.map((r) => r.one.driverCpuMsPerCycle)),
    cpsN: median(rs.map((r) => r.many.cyclesPerSecond)),
    rss: median(rs.map((r) => r.idleRssMiB)),
    loadedRss: median(rs.map((r) => r.loadedRssMiB)),
    ready: median(rs.map((r) => r.readyMs)),
    readyShell: rs.some((r) => r.readyShellEnvMs !== undefined) ? median(rs.filter((r) => r.readyShellEnvMs !== undefined).map((r) => r.readyShellEnvMs!)) : undefined,
    pop: rs.some((r) => r.populated) ? median(rs.filter((r) => r.populated).map((r) => r.populated!.cyclesPerSecond)) : undefined,
  });
  const lab = fig(of("csi-lab"));
  const shellNote =
    lab.readyShell !== undefined ? ` (${lab.readyShell} ms with this shell's ${setHereNotInImage().join(", ")}, which the driver's image does not set)` : "";
  const lines = [
    `medians of ${o.rounds} round(s), ${o.cycles} cycles each after ${o.warmup} warm-up cycles, parameters ${JSON.stringify(o.parameters)}` +
      (o.nodeConnectionPerCall ? ", a new connection for each node call (as the kubelet makes them)" : ""),
    `csi-lab:  cycle ${lab.lat1} ms at concurrency 1, driver CPU ${lab.cpu1} ms/cycle, ${lab.cpsN} cycles/s at concurrency ${o.concurrency}, ` +
      `idle RSS ${lab.rss} MiB (${lab.loadedRss} after the loads), start → serving ${lab.ready} ms${shellNote}` +
      (lab.pop !== undefined ? `, ${lab.pop} cycles/s with ${o.population} idle volumes (${(lab.pop / lab.cpsN).toFixed(2)} of empty)` : ""),
  ];
  const hp = of("hostpath").length ? fig(of("hostpath")) : undefined;
  if (hp) {
    const none = o.parameters.capacity === "none";
    const lat = hp.lat1 / lab.lat1;
    const cpu = hp.cpu1 / lab.cpu1;
    const cps = lab.cpsN / hp.cpsN;
    const met = (ok: boolean) =>
      o.nodeConnectionPerCall
        ? `${ok ? "within" : "outside"} it, with a connection per node call, not the issue's one connection`
        : o.warmup === ISSUE_WARMUP
          ? ok
            ? "met"
            : "NOT met"
          : `${ok ? "within" : "outside"} it, after ${o.warmup} warm-up cycles, not the issue's ${ISSUE_WARMUP}`;
    lines.push(
      `hostpath: cycle ${hp.lat1} ms, driver CPU ${hp.cpu1} ms/cycle, ${hp.cpsN} cycles/s, idle RSS ${hp.rss} MiB (${hp.loadedRss} after the loads), start → serving ${hp.ready} ms`,
      `latency: csi-lab's cycle is 1/${lat.toFixed(2)} of hostpath's (goal ${none ? "1/8" : "1/4"}: ${met(lat >= (none ? 8 : 4))})`,
      `CPU: csi-lab uses ${(1 / cpu).toFixed(2)}× hostpath's per cycle (goal ≤ ${none ? "0.5" : "1"}×: ${met(1 / cpu <= (none ? 0.5 : 1))})`,
      `throughput: ${cps.toFixed(2)}× hostpath's at concurrency ${o.concurrency} (goal ≥ ${none ? 5 : 3}×: ${met(cps >= (none ? 5 : 3))})`,
    );
  }
  if (lab.pop !== undefined) lines.push(`throughput with ${o.population} idle volumes: ${(lab.pop / lab.cpsN).toFixed(2)} of empty (goal ≥ 0.85: ${lab.pop / lab.cpsN >= 0.85 ? "met" : "NOT met"})`);
  lines.push(
    `footprint: idle RSS ${lab.rss} MiB (goal ≤ 50 MB = 47.7 MiB: ${lab.rss * MIB <= 50e6 ? "met" : "NOT met"}), ` +
      `start → serving ${lab.ready} ms as the image runs it (goal ≤ 250 ms: ${lab.ready <= 250 ? "met" : "NOT met"})` +
      (lab.readyShell !== undefined ? `; ${lab.readyShell} ms with this shell's environment (${lab.readyShell <= 250 ? "met" : "NOT met"})` : ""),
  );
  return lines.join("\n");
}

async function main(): Promise<void> {
  const o = options();
  if (rerunInPrivateMountNamespace()) return; // the drivers make real mounts
  const scratch = await fsp.mkdtemp(path.join(os.tmpdir(), "csi-lab-versus-"));
  const rounds: Round[] = [];
  try {
    for (let r = 1; r <= o.rounds; r++) {
      for (const who of o.hostpath ? (["csi-lab", "hostpath"] as const) : (["csi-lab"] as const)) {
        const res = await measure(who, r, scratch, o);
        rounds.push(res);
        process.stdout.write(JSON.stringify(res) + "\n");
      }
    }
    process.stdout.write(summary(rounds, o) + "\n");
  } finally {
    // Mounts a failed run left (this namespace's only) go first: rm must not walk into a volume.
    for (const m of [...readMountInfo()].reverse()) if (m.mountPoint.startsWith(scratch + "/")) unmount(m.mountPoint, { detach: true });
    await fsp.rm(scratch, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`versus-reference: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
