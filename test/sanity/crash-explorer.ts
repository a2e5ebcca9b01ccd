/**
 * The crash explorer: kill -9 the driver at every call of an RPC that
 * changes the disk or the mount table, restart it, and see that the cycle
 * still ends as if nothing had happened.
 *
 * For one cycle (crash-cycles.ts), a reference run records, for each
 * explored RPC, the calls each driver thread made (strace.ts); each of
 * those calls is then a case: run the cycle up to the RPC, kill the driver
 * just before or just after that call, restart it on the same root and in
 * the same mount namespace (the kubelet's mounts outlive a driver), retry
 * the RPC with the same arguments until it answers, finish the cycle, and
 * check that nothing is left: the scratch directory holds what the
 * reference run's held, nothing is mounted under it, no loop device is
 * attached to a file under it, no helper process of the dead driver runs,
 * and ListVolumes (and ListSnapshots) are empty.
 *
 * Calls of a share agent (the nfs backend's helper process) and of the
 * helper programs (child-trace.ts) are cases too: the process is stopped
 * just after the call, and then the driver is killed. So are the calls of
 * the start-up after a kill (crash-startup.ts): the driver is killed again
 * there, and the next start must leave what an uncut one did. Running a
 * case is crash-case.ts.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, lstatSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { ServiceError } from "@grpc/grpc-js";
import { codeName, Code } from "../../src/csi/errors";
import { readMountInfo } from "../../src/mount/mountinfo";
import { destroyDriver, loopBacking, startDriver, type DriverProcess } from "./harness";
import { callSignature, poolThread, recordCalls, type KillMoment, type TracedCall } from "./strace";
import { ChildPrograms } from "./child-trace";
import { makeLoopFs, type LoopFs, type LoopFsKind } from "./loop-fs";
import type { Cycle, CycleState, Step } from "./crash-cycles";

/** Which thread a call was made on; a helper program's run ("child mkfs.ext4 #1") is one thread. */
export type Role = "driver main thread" | "driver pool thread" | "share agent" | `share agent ${number}` | `child ${string}`;

/** One instant to kill the driver at: a call of one thread or helper program. */
export interface CrashPoint {
  role: Role;
  /** The call, its text with the scratch directory as "…". */
  call: TracedCall;
  /** What recognises it in another run (callSignature), and which call with that signature on its thread it is, from 1. */
  signature: string;
  occurrence: number;
  /** Which changing call of its kind on its thread it is, from 1 (strace's count also counts the others: eventfd writes come and go). */
  rank: number;
  moment: KillMoment;
}

/** Kill the driver at a point of an explored step — and, if `retry` says where, again in that step's first retry. */
export interface CrashCase extends CrashPoint {
  cycle: Cycle;
  /** Index of the explored step in cycle.steps. */
  step: number;
  retry?: CrashPoint;
  /** Or: kill it again in the start-up that follows the first kill, at this point; then what an uncut start-up leaves (tree()). */
  startup?: CrashPoint;
  startupTree?: string[];
}

export interface CaseResult {
  case: CrashCase;
  /** What went wrong; empty when the case passed. */
  problems: string[];
  /** How the aim was corrected, when strace's count in this run differed from the reference run's. */
  note?: string;
}

/** The driver's environment in the explorer: one pool thread (see strace.ts), and no io_uring, which would hide calls from strace. */
const ENV = { UV_THREADPOOL_SIZE: "1", UV_USE_IO_URING: "0" };

/** Codes a CO retries on without giving up. */
const RETRYABLE = new Set<number>([Code.ABORTED, Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED]);

export function describeCase(c: CrashCase): string {
  const point = (p: CrashPoint) => `${p.moment} ${p.role}'s ${p.call.syscall} #${p.call.nth}: ${p.call.text.slice(0, 160)}`;
  return `${c.cycle.name} / ${c.cycle.steps[c.step]!.name} / ${point(c)}${c.retry ? ` / then in the retry: ${point(c.retry)}` : ""}${c.startup ? ` / then in the start-up: ${point(c.startup)}` : ""}`;
}

let base: string | undefined;
let children: ChildPrograms | undefined;
/** The loop file systems cycles with a `root` run on, by kind (made at a cycle's first driver, kept for all its runs). */
const roots = new Map<LoopFsKind, LoopFs>();

/** The wrappers of the helper programs (made with the first driver). */
export function childPrograms(): ChildPrograms {
  if (!children) throw new Error("no driver started yet");
  return children;
}

/**
 * A driver on a fresh scratch directory — always at the same path, so that
 * what the driver derives from paths (a shared volume's ID, the names of
 * its records and views) is the same in every run, and so are its calls.
 */
export async function start(cycle: Cycle): Promise<DriverProcess> {
  base ??= mkdtempSync(path.join(os.tmpdir(), "csi-lab-crash-explorer-"));
  children ??= ChildPrograms.make(path.join(base, "bin"));
  children.off();
  const dir = path.join(cycle.root ? await rootFor(cycle.root) : base, "node");
  mkdirSync(dir);
  return startDriver({ dir, extraArgs: cycle.driverArgs, env: { ...process.env, ...ENV, ...children.env() } });
}

/** The scratch directory on a loop file system of `kind` (UnsupportedFs where this machine cannot make one). */
async function rootFor(kind: LoopFsKind): Promise<string> {
  let fs = roots.get(kind);
  if (!fs) roots.set(kind, (fs = await makeLoopFs(kind, 1024 * 1024 * 1024)));
  return fs.scratch;
}

/** Remove the explorer's scratch (the helper wrappers and loop file systems; each driver's directory goes with it). */
export async function removeScratch(): Promise<void> {
  for (const fs of roots.values()) await fs.cleanup();
  roots.clear();
  if (base) rmSync(base, { recursive: true, force: true });
  base = children = undefined;
}

export function newState(d: DriverProcess): CycleState {
  return { d, volumes: new Map(), snapshots: new Map() };
}

/** The share agents of driver `pid`: its children running share-agent.js, oldest first. */
function shareAgents(pid: number): number[] {
  return pids()
    .filter((p) => {
      try {
        return /^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${p}/status`, "utf8"))?.[1] === String(pid) && readFileSync(`/proc/${p}/cmdline`, "utf8").includes("share-agent.js");
      } catch {
        return false;
      }
    })
    .map((p) => ({ p, start: startOf(p) }))
    .sort((a, b) => a.start - b.start || a.p - b.p)
    .map(({ p }) => p);
}

/** When process `pid` started (clock ticks since boot, /proc/PID/stat); 0 once it is gone. */
function startOf(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19]);
  } catch {
    return 0;
  }
}

function pids(): number[] {
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .map(Number);
}

/** The threads whose calls are cases, by role, as they are now. */
export function roles(d: DriverProcess): Map<Role, { pid: number; tid: number }> {
  const pid = d.proc.pid!;
  const out = new Map<Role, { pid: number; tid: number }>([
    ["driver main thread", { pid, tid: pid }],
    ["driver pool thread", { pid, tid: poolThread(pid) }],
  ]);
  // An agent works with synchronous calls, on its main thread; the reference run follows its other threads too, to see that.
  // A call may use more than one (one holds the share lock of its key, share-locks.ts): named in the order they started,
  // which is the same in every run of a cycle (the pool hands them out in the order they come back).
  shareAgents(pid).forEach((agent, i) => out.set(i === 0 ? "share agent" : `share agent ${i + 1}`, { pid: agent, tid: agent }));
  return out;
}

/** Run a step, retrying as a CO does while the driver answers a code that means "later"; the error it ends with, if any. */
export async function runRetrying(step: Step, s: CycleState, attempts = 30): Promise<string | undefined> {
  for (let i = 1; ; i++) {
    try {
      await step.run(s);
      return undefined;
    } catch (e) {
      const err = e as ServiceError;
      if (typeof err.code === "number" && RETRYABLE.has(err.code) && i < attempts) {
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      return typeof err.code === "number" ? `${codeName(err.code)}: ${err.details}` : String((e as Error).message ?? e);
    }
  }
}

export interface Reference {
  cycle: Cycle;
  cases: CrashCase[];
  /** The scratch directory's entries after an uncrashed run. */
  tree: string[];
  /** Changing calls made on threads the explorer does not follow (there should be none). */
  unfollowed: string[];
}

/** Run the cycle once, uncrashed, recording every explored step's calls. */
export async function reference(cycle: Cycle, moments: readonly KillMoment[]): Promise<Reference> {
  const d = await start(cycle);
  const logs = mkdtempSync(path.join(os.tmpdir(), "csi-lab-strace-"));
  const cases: CrashCase[] = [];
  const unfollowed: string[] = [];
  try {
    const s = newState(d);
    for (const [i, step] of cycle.steps.entries()) {
      if (!step.explore) {
        await step.run(s);
        continue;
      }
      const byRole = roles(d);
      const tids = [...new Set([...byRole.values()].map((r) => r.pid))].flatMap((pid) => readdirSync(`/proc/${pid}/task`).map(Number));
      children!.record();
      const { calls } = await recordCalls(tids, path.join(logs, `step${i}`), () => step.run(s));
      const runs = children!.runs().map((r) => [`child ${r.name}` as Role, r.calls] as const);
      children!.off();
      for (const [tid, list] of [...calls, ...runs]) {
        const role = typeof tid === "string" ? tid : [...byRole].find(([, r]) => r.tid === tid)?.[0];
        if (role) cases.push(...pointsFrom(list, role, d.dir, moments).map((p) => ({ ...p, cycle, step: i })));
        else unfollowed.push(...list.filter((c) => c.changing).map((c) => `${step.name}: thread ${tid}: ${c.text.split(d.dir).join("…")}`));
      }
    }
    await checkClean(d, cycle, undefined);
    return { cycle, cases, tree: tree(d.dir), unfollowed };
  } finally {
    await destroyDriver(d);
    rmSync(logs, { recursive: true, force: true });
  }
}

/**
 * The instants a thread's (or a helper program's) calls give: each changing
 * call, before and after it for the driver's threads (`moments`), after it
 * for a share agent's and a helper's (stopped there, then the driver is
 * killed).
 */
export function pointsFrom(list: TracedCall[], role: Role, dir: string, moments: readonly KillMoment[]): CrashPoint[] {
  const points: CrashPoint[] = [];
  const seen = new Map<string, number>();
  const sample = role.startsWith("child ") ? unrepeated(list, dir) : new Set(list);
  for (const traced of list) {
    const call = { ...traced, text: traced.text.split(dir).join("…") };
    const signature = callSignature(call.text, "…");
    const occurrence = (seen.get(signature) ?? 0) + 1;
    seen.set(signature, occurrence);
    if (!call.changing || !sample.has(traced)) continue;
    const rank = list.filter((c) => c.changing && c.syscall === call.syscall && c.nth < call.nth).length + 1;
    for (const moment of role.startsWith("driver") ? moments : (["after"] as const)) points.push({ role, call, signature, occurrence, rank, moment });
  }
  return points;
}

/**
 * A helper program's changing calls, but of a run of calls alike (the same
 * call on the same file: mkfs's hundreds of pwrite64s into one image) only
 * the first and the last: in between, what is on disk is the same file
 * partly written.
 */
function unrepeated(list: TracedCall[], dir: string): Set<TracedCall> {
  const changing = list.filter((c) => c.changing);
  const sig = (i: number) => (i >= 0 && i < changing.length ? callSignature(changing[i]!.text, dir) : undefined);
  return new Set(changing.filter((_, i) => sig(i) !== sig(i - 1) || sig(i) !== sig(i + 1)));
}

export const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A killed driver's helpers die with it (parent-death signal) or finish on their own; give them a moment. */
export async function waitForHelpers(d: DriverProcess): Promise<void> {
  for (let i = 0; i < 100 && leftoverProcesses(d).length > 0; i++) await delay(10);
}

/** Processes of a dead driver still running: helpers naming its scratch directory, and share agents whose driver is gone. */
function leftoverProcesses(d: DriverProcess): string[] {
  const live = d.proc.exitCode === null && d.proc.signalCode === null ? d.proc.pid : undefined;
  const out: string[] = [];
  for (const p of pids()) {
    if (p === process.pid || p === live) continue;
    try {
      const cmdline = readFileSync(`/proc/${p}/cmdline`, "utf8").replaceAll("\0", " ").trim();
      const ppid = Number(/^PPid:\s+(\d+)$/m.exec(readFileSync(`/proc/${p}/status`, "utf8"))?.[1]);
      if (cmdline.startsWith("strace ")) continue;
      if (cmdline.includes(d.dir) || (cmdline.includes("share-agent.js") && ppid !== live)) out.push(`${p}: ${cmdline.slice(0, 120)}`);
    } catch {
      // gone
    }
  }
  return out;
}

/** What is left after a cycle that should have left nothing. */
export async function checkClean(d: DriverProcess, cycle: Cycle, ref: Reference | undefined): Promise<string[]> {
  const problems: string[] = [];
  const mounts = (await readMountInfo()).filter((m) => m.mountPoint.startsWith(d.dir + "/"));
  for (const m of mounts) problems.push(`still mounted: ${m.mountPoint.slice(d.dir.length)} (${m.fsType} ${m.source})`);
  for (const loop of loopsUnder(d.dir)) problems.push(`loop device still attached: ${loop}`);
  for (const p of leftoverProcesses(d)) problems.push(`process still running: ${p}`);
  const volumes = (await d.client.controller.listVolumes({})).entries ?? [];
  if (volumes.length > 0) problems.push(`ListVolumes: ${volumes.map((e) => e.volume!.volumeId).join(", ")}`);
  if (cycle.snapshots) {
    const snapshots = (await d.client.controller.listSnapshots({})).entries ?? [];
    if (snapshots.length > 0) problems.push(`ListSnapshots: ${snapshots.map((e) => e.snapshot!.snapshotId).join(", ")}`);
  }
  if (cycle.root) for (const q of quotasLeft(d.dir)) problems.push(`quota still there: ${q}`);
  if (ref) {
    const now = tree(d.dir);
    const left = now.filter((e) => !ref.tree.includes(e));
    const gone = ref.tree.filter((e) => !now.includes(e));
    if (left.length > 0) problems.push(`left in the scratch directory: ${left.join(", ")}`);
    if (gone.length > 0) problems.push(`missing from the scratch directory: ${gone.join(", ")}`);
  }
  return problems;
}

/**
 * The project quotas with a limit on the file system holding `dir` ("project 123: 16384 KiB"): a deleted
 * volume's limit goes with it. xfs_quota reads them on ext4 too (-f). (A btrfs volume's qgroup may outlive
 * its subvolume until the kernel's cleaner is done, harmlessly: see btrfs-qgroup.ts. Its subvolume is in the tree.)
 */
function quotasLeft(dir: string): string[] {
  const fsType = execFileSync("findmnt", ["-n", "-o", "FSTYPE", "-T", dir], { encoding: "utf8" }).trim();
  if (fsType !== "xfs" && fsType !== "ext4") return [];
  const out = execFileSync("xfs_quota", [...(fsType === "ext4" ? ["-f"] : []), "-x", "-c", "report -p -N -n", dir], { encoding: "utf8" });
  // Columns: #id, used, soft, hard, warnings, grace (KiB).
  return out
    .split("\n")
    .map((l) => l.trim().split(/\s+/))
    .filter((c) => /^#\d+$/.test(c[0] ?? "") && c[0] !== "#0" && Number(c[3]) > 0)
    .map((c) => `project ${c[0]!.slice(1)}: ${c[3]} KiB`);
}

function loopsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync("/sys/block").filter((n) => /^loop\d+$/.test(n))) {
    const backing = loopBacking(name);
    if (backing?.startsWith(dir + "/")) out.push(`/dev/${name} → ${backing.slice(dir.length)}`);
  }
  return out;
}

/** Every entry under `dir` (not crossing into mounts), as "relative/path type"; the socket and the explorer's logs (strace.*) left out. */
export function tree(dir: string): string[] {
  const dev = lstatSync(dir).dev;
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(path.join(dir, rel)).sort()) {
      const r = path.join(rel, name);
      if (r === "csi.sock" || r.startsWith("strace.")) continue;
      const st = lstatSync(path.join(dir, r));
      const type = st.isDirectory() ? "dir" : st.isFile() ? "file" : st.isSymbolicLink() ? "link" : st.isBlockDevice() ? "block device" : "other";
      out.push(`${r} (${type})`);
      if (st.isDirectory() && st.dev === dev) walk(r);
    }
  };
  walk("");
  return out;
}
