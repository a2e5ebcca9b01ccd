/**
 * Load client: full volume lifecycles against any CSI endpoint.
 *
 * One "cycle" is what a pod's volume goes through:
 *   CreateVolume → NodeStageVolume → NodePublishVolume →
 *   NodeUnpublishVolume → NodeUnstageVolume → DeleteVolume.
 * N workers run cycles back to back for a fixed time; we report cycles per
 * second and the p50/p99 latency of each RPC. An optional population of
 * idle volumes (created first, never touched) shows whether per-operation
 * cost grows with the number of volumes — it should not. --other-mounts N
 * puts N small tmpfs mounts in the driver's mount namespace first, as a
 * busy node has (each pod brings several): the cost of reading the mount
 * table grows with them. --staged N creates and stages N volumes of the
 * same kind first and leaves them staged through the run (image volumes:
 * N loop devices mounted, which finding an image's mounts looks through),
 * then unstages and deletes them. --node-connection-per-call opens a new
 * connection for each node call, as the kubelet does (it dials the
 * driver's socket for every call and closes the connection after it); the
 * controller calls keep one connection, as the sidecars do.
 *
 *   node dist/bench/csi-cycle.js [--endpoint unix:///…] [--concurrency 4]
 *        [--seconds 10] [--idle 10000] [--other-mounts 1000] [--staged 200] [--json]
 *        [--node-connection-per-call]
 *        [--param capacity=image …] [--size 1073741824] [--fs-type xfs] [--block]
 *        [--access-mode SINGLE_NODE_MULTI_WRITER]
 *
 * --param passes StorageClass parameters (e.g. the capacity mode), --size
 * the size each volume asks for (1 MiB by default), --fs-type the mount
 * capability's fs_type, --block asks for raw block volumes instead of
 * mounted ones, --access-mode the mode volumes are created, staged and
 * published with (SINGLE_NODE_WRITER by default; Kubernetes asks for
 * SINGLE_NODE_MULTI_WRITER for a ReadWriteOnce volume when the driver
 * offers it, as this one does).
 *
 * Without --endpoint it starts `csi-lab driver` itself on a scratch
 * directory and also reports the driver's start-up time, idle RSS and CPU
 * per cycle; it then runs in a private mount namespace of its own
 * (unshare -m), so the driver's mounts never reach the machine's, and
 * removes the scratch directory however it ends. Staging and target paths
 * are laid out inside a kubelet directory (--kubelet-dir, default
 * <scratch>/kubelet), as the kubelet lays them out and as the driver
 * requires.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, promises as fsp } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { connect, type CsiClient } from "../src/client/csi-client";
import { readMountInfo } from "../src/mount/mountinfo";
import { mountFs, unmount } from "../src/mount/syscalls";
import { VolumeCapability_AccessMode_Mode as Mode, type VolumeCapability } from "../src/gen/csi";
import { driverArgs, driverEnv, rerunInPrivateMountNamespace, untilServing } from "./driver-command";
import { nodeCaller } from "./node-calls";
import { cpuMs, parseParams, rssMiB } from "./process-figures";

const RPCS = ["CreateVolume", "NodeStageVolume", "NodePublishVolume", "NodeUnpublishVolume", "NodeUnstageVolume", "DeleteVolume"] as const;
type RpcName = (typeof RPCS)[number];

const MOUNT: VolumeCapability = { mount: { fsType: "", mountFlags: [], volumeMountGroup: "" }, accessMode: { mode: Mode.SINGLE_NODE_WRITER } };
const BLOCK: VolumeCapability = { block: {}, accessMode: { mode: Mode.SINGLE_NODE_WRITER } };

interface Options {
  endpoint?: string;
  concurrency: number;
  seconds: number;
  idle: number;
  otherMounts: number;
  staged: number;
  json: boolean;
  workDir: string;
  /** Where staging and target paths go: the driver's --kubelet-dir. */
  kubeletDir: string;
  parameters: Record<string, string>;
  size: number;
  cap: VolumeCapability;
  /** Each node call on a connection of its own, as the kubelet makes them. */
  nodeConnectionPerCall: boolean;
}

function options(): Options {
  const { values } = parseArgs({
    options: {
      endpoint: { type: "string" },
      concurrency: { type: "string", default: "4" },
      seconds: { type: "string", default: "10" },
      idle: { type: "string", default: "0" },
      "other-mounts": { type: "string", default: "0" },
      staged: { type: "string", default: "0" },
      json: { type: "boolean", default: false },
      "work-dir": { type: "string" },
      "kubelet-dir": { type: "string" },
      param: { type: "string", multiple: true, default: [] },
      size: { type: "string", default: String(1024 * 1024) },
      block: { type: "boolean", default: false },
      "fs-type": { type: "string", default: "" },
      "access-mode": { type: "string", default: "SINGLE_NODE_WRITER" },
      "node-connection-per-call": { type: "boolean", default: false },
    },
  });
  const modeName = values["access-mode"]!.toUpperCase().replace(/-/g, "_");
  const mode = (Mode as unknown as Record<string, Mode | undefined>)[modeName];
  if (typeof mode !== "number" || mode <= 0) throw new Error(`--access-mode: one of the spec's access modes (SINGLE_NODE_WRITER, SINGLE_NODE_MULTI_WRITER, …), not ${values["access-mode"]}`);
  const parameters = parseParams(values.param);
  const otherMounts = Number(values["other-mounts"]);
  if (!Number.isInteger(otherMounts) || otherMounts < 0) throw new Error(`--other-mounts: a count, not ${values["other-mounts"]}`);
  if (otherMounts > 0 && values.endpoint) throw new Error("--other-mounts needs the driver this benchmark starts (no --endpoint): the mounts go into its namespace");
  const staged = Number(values.staged);
  if (!Number.isInteger(staged) || staged < 0) throw new Error(`--staged: a count, not ${values.staged}`);
  const workDir = values["work-dir"] ?? path.join(os.tmpdir(), `csi-lab-bench-${process.pid}`);
  return {
    endpoint: values.endpoint,
    concurrency: Number(values.concurrency),
    seconds: Number(values.seconds),
    idle: Number(values.idle),
    otherMounts,
    staged,
    json: values.json ?? false,
    workDir,
    kubeletDir: values["kubelet-dir"] ?? path.join(workDir, "kubelet"),
    parameters,
    size: Number(values.size),
    cap: { ...(values.block ? BLOCK : { ...MOUNT, mount: { ...MOUNT.mount, fsType: values["fs-type"] ?? "" } }), accessMode: { mode } },
    nodeConnectionPerCall: values["node-connection-per-call"] ?? false,
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function timed<T>(samples: number[], fn: () => Promise<T>): Promise<T> {
  const t = process.hrtime.bigint();
  const r = await fn();
  samples.push(Number(process.hrtime.bigint() - t) / 1e6);
  return r;
}

/** Start a driver from this checkout; returns it with its start-up time. */
async function spawnDriver(workDir: string, kubeletDir: string): Promise<{ proc: ChildProcess; endpoint: string; readyMs: number }> {
  const endpoint = `unix://${path.join(workDir, "csi.sock")}`;
  const t = process.hrtime.bigint();
  const args = ["driver", "--endpoint", endpoint, "--node-id", "bench", "--root", path.join(workDir, "root"), "--kubelet-dir", kubeletDir, "--log-level", "warn"];
  const proc = spawn(process.execPath, driverArgs(args), {
    stdio: ["ignore", "ignore", "pipe"],
    env: driverEnv(),
  });
  await untilServing(proc, endpoint, "the driver");
  const readyMs = Number(process.hrtime.bigint() - t) / 1e6;
  return { proc, endpoint, readyMs };
}

async function createIdle(client: CsiClient, n: number, concurrency: number, parameters: Record<string, string>): Promise<number> {
  const t = Date.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.max(concurrency, 8) }, async () => {
      while (next < n) {
        const i = next++;
        await client.controller.createVolume({ name: `idle-${i}`, volumeCapabilities: [MOUNT], capacityRange: { requiredBytes: 1024 * 1024 }, parameters });
      }
    }),
  );
  return (Date.now() - t) / 1000;
}

/** N volumes created and staged, each at its own staging path; returns them to undo, and the seconds taken. */
async function stageMany(client: CsiClient, o: Options): Promise<{ staged: { volumeId: string; staging: string }[]; seconds: number }> {
  const t = Date.now();
  const staged: { volumeId: string; staging: string }[] = [];
  for (let i = 0; i < o.staged; i++) {
    const staging = path.join(o.kubeletDir, "plugins", "staged", String(i));
    await fsp.mkdir(staging, { recursive: true });
    const vol = await client.controller.createVolume({ name: `staged-${process.pid}-${i}`, volumeCapabilities: [o.cap], capacityRange: { requiredBytes: o.size }, parameters: o.parameters });
    const volumeId = vol.volume!.volumeId!;
    await client.node.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: o.cap });
    staged.push({ volumeId, staging });
  }
  return { staged, seconds: (Date.now() - t) / 1000 };
}

/** N tmpfs mounts under `dir` (in this private namespace; main's clean-up unmounts them). */
function addOtherMounts(dir: string, n: number): void {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < n; i++) {
    const at = path.join(dir, String(i));
    mkdirSync(at);
    mountFs("bench-other", at, "tmpfs", 0, "size=64k");
  }
}

async function main(): Promise<void> {
  const o = options();
  // Our own driver makes real mounts (another one, given by --endpoint, is its own business).
  if (!o.endpoint && rerunInPrivateMountNamespace()) return;
  await fsp.mkdir(o.kubeletDir, { recursive: true });
  try {
    await run(o);
  } finally {
    if (!o.endpoint) {
      // Mounts a failed run left (this namespace's only) go first: rm must not walk into a volume.
      for (const m of [...readMountInfo()].reverse()) if (m.mountPoint.startsWith(o.workDir + "/")) unmount(m.mountPoint, { detach: true });
      await fsp.rm(o.workDir, { recursive: true, force: true });
    }
  }
}

async function run(o: Options): Promise<void> {
  let spawned: Awaited<ReturnType<typeof spawnDriver>> | undefined;
  let endpoint = o.endpoint;
  if (!endpoint) {
    if (o.otherMounts > 0) addOtherMounts(path.join(o.workDir, "other"), o.otherMounts);
    spawned = await spawnDriver(o.workDir, o.kubeletDir);
    endpoint = spawned.endpoint;
  }
  const client = connect(endpoint);
  const node = nodeCaller(client, endpoint, o.nodeConnectionPerCall);
  const result: Record<string, unknown> = {
    endpoint,
    concurrency: o.concurrency,
    seconds: o.seconds,
    idle: o.idle,
    otherMounts: o.otherMounts,
    staged: o.staged,
    parameters: o.parameters,
    size: o.size,
    nodeConnections: o.nodeConnectionPerCall ? "one per call" : "shared",
  };
  const CAP = o.cap;
  if (spawned) {
    result.readyMs = Math.round(spawned.readyMs);
    await new Promise((r) => setTimeout(r, 500));
    result.idleRssMiB = Math.round(rssMiB(spawned.proc.pid!) * 10) / 10;
  }
  if (o.idle > 0) result.idleCreateSeconds = await createIdle(client, o.idle, o.concurrency, o.parameters);
  const many = o.staged > 0 ? await stageMany(client, o) : undefined;
  if (many) result.stageSeconds = many.seconds;

  const samples: Record<RpcName, number[]> = Object.fromEntries(RPCS.map((r) => [r, []])) as unknown as Record<RpcName, number[]>;
  let cycles = 0;
  let errors = 0;
  let failedInARow = 0;
  let givenUp = false;
  const deadline = Date.now() + o.seconds * 1000;
  const started = process.hrtime.bigint();
  const cpu0 = spawned ? cpuMs(spawned.proc.pid!) : 0;
  await Promise.all(
    Array.from({ length: o.concurrency }, async (_, w) => {
      // The kubelet makes the staging directory and the target's parent
      // before it calls the driver; so does this client, once per worker.
      const staging = path.join(o.kubeletDir, "plugins", "staging", `w${w}`);
      const podDir = path.join(o.kubeletDir, "pods", `w${w}`);
      await fsp.mkdir(staging, { recursive: true });
      await fsp.mkdir(podDir, { recursive: true });
      for (let i = 0; !givenUp && Date.now() < deadline; i++) {
        const name = `bench-${process.pid}-${w}-${i}`;
        const target = path.join(podDir, "mount");
        try {
          const vol = await timed(samples.CreateVolume, () =>
            client.controller.createVolume({ name, volumeCapabilities: [CAP], capacityRange: { requiredBytes: o.size }, parameters: o.parameters }),
          );
          const volumeId = vol.volume!.volumeId!;
          await timed(samples.NodeStageVolume, () => node((n) => n.nodeStageVolume({ volumeId, stagingTargetPath: staging, volumeCapability: CAP })));
          await timed(samples.NodePublishVolume, () =>
            node((n) => n.nodePublishVolume({ volumeId, stagingTargetPath: staging, targetPath: target, volumeCapability: CAP })),
          );
          await timed(samples.NodeUnpublishVolume, () => node((n) => n.nodeUnpublishVolume({ volumeId, targetPath: target })));
          await timed(samples.NodeUnstageVolume, () => node((n) => n.nodeUnstageVolume({ volumeId, stagingTargetPath: staging })));
          await timed(samples.DeleteVolume, () => client.controller.deleteVolume({ volumeId }));
          cycles++;
          failedInARow = 0;
        } catch (err) {
          errors++;
          if (errors <= 3) process.stderr.write(`cycle failed: ${(err as Error).message}\n`);
          // Nothing is being measured once every cycle fails: stop.
          if (++failedInARow >= 50) {
            process.stderr.write(`${failedInARow} cycles in a row failed; giving up\n`);
            givenUp = true;
          }
        }
      }
    }),
  );
  const elapsed = Number(process.hrtime.bigint() - started) / 1e9;
  if (givenUp) process.exitCode = 1;
  result.cycles = cycles;
  result.errors = errors;
  result.cyclesPerSecond = Math.round((cycles / elapsed) * 10) / 10;
  result.rpcMs = Object.fromEntries(
    RPCS.map((r) => {
      const s = samples[r].slice().sort((a, b) => a - b);
      return [r, { p50: Math.round(percentile(s, 50) * 1000) / 1000, p99: Math.round(percentile(s, 99) * 1000) / 1000 }];
    }),
  );
  if (spawned) {
    result.rssAfterMiB = Math.round(rssMiB(spawned.proc.pid!) * 10) / 10;
    result.driverCpuMsPerCycle = cycles > 0 ? Math.round(((cpuMs(spawned.proc.pid!) - cpu0) / cycles) * 100) / 100 : undefined;
  }

  for (const s of many?.staged ?? []) {
    await client.node.nodeUnstageVolume({ volumeId: s.volumeId, stagingTargetPath: s.staging });
    await client.controller.deleteVolume({ volumeId: s.volumeId });
  }
  client.close();
  if (spawned) {
    spawned.proc.kill("SIGTERM");
    await new Promise((r) => spawned!.proc.once("exit", r));
  }

  if (o.json) {
    process.stdout.write(JSON.stringify(result, null, 2) + "\n");
    return;
  }
  const lines = [
    `endpoint ${endpoint}  concurrency ${o.concurrency}  idle volumes ${o.idle}${o.otherMounts ? `  other mounts ${o.otherMounts}` : ""}${o.staged ? `  staged ${o.staged}` : ""}  ${o.seconds}s  size ${o.size}${o.cap.block ? " block" : ""}  ${Mode[o.cap.accessMode?.mode ?? Mode.UNKNOWN]}  ${JSON.stringify(o.parameters)}`,
    ...(spawned ? [`driver ready in ${result.readyMs} ms, idle RSS ${result.idleRssMiB} MiB, RSS after load ${result.rssAfterMiB} MiB`] : []),
    `${cycles} cycles, ${errors} errors, ${result.cyclesPerSecond} cycles/s${spawned ? `, driver CPU ${result.driverCpuMsPerCycle} ms per cycle` : ""}`,
    `${"rpc".padEnd(22)}${"p50 ms".padStart(10)}${"p99 ms".padStart(10)}`,
    ...RPCS.map((r) => {
      const v = (result.rpcMs as Record<string, { p50: number; p99: number }>)[r]!;
      return `${r.padEnd(22)}${v.p50.toFixed(3).padStart(10)}${v.p99.toFixed(3).padStart(10)}`;
    }),
  ];
  process.stdout.write(lines.join("\n") + "\n");
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
