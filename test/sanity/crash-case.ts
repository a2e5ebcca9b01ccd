/**
 * One case of the crash explorer (crash-explorer.ts): kill the driver at one
 * call of an RPC, restart it, retry, finish the cycle, and check what is
 * left. A case may kill the driver a second time, in the RPC's first retry
 * after the restart: a crash in the middle of recovering from a crash.
 *
 * strace's `when=K` counts every call of a kind on a thread, and some of
 * those come and go from run to run (a pool thread's eventfd writes, which
 * libuv coalesces when the main thread is slow to read them). So a case
 * checks where the driver was stopped, and aims again when it was not at
 * its call.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import {
  checkClean,
  childPrograms,
  delay,
  newState,
  pointsFrom,
  roles,
  runRetrying,
  start,
  waitForHelpers,
  type CaseResult,
  type CrashCase,
  type CrashPoint,
  type Reference,
  type Role,
  tree,
} from "./crash-explorer";
import { holdStart, running, type HeldStart } from "./crash-startup";
import { destroyDriver, type DriverProcess } from "./harness";
import { ArmedStrace, callSignature, diedIn, poolThread, recordCalls, type KillMoment, type TracedCall } from "./strace";

export interface RunOptions {
  /** Record the calls of the RPC's first retry, and give the cases of a second crash there (killed before each). */
  recordRetry?: boolean;
  /** Record the start-up after the kill, and give the cases of a crash in it (killed at these moments of each call). */
  recordStartup?: readonly KillMoment[];
}

/** Run one case; with `recordRetry` or `recordStartup`, also the cases it gives for a second crash in the retry or the start-up. */
export async function runCase(c: CrashCase, ref: Reference, opts: RunOptions = {}): Promise<CaseResult & { retryCases?: CrashCase[] }> {
  const aims = [c.call.nth, c.retry?.call.nth ?? 0, c.startup?.call.nth ?? 0];
  let note: string | undefined;
  let again = 0; // tries at an aim the count already named
  for (let attempt = 0; attempt < 10; attempt++) {
    const r = await runCaseOnce(c, ref, aims, opts);
    if (!r.miss) return { case: c, problems: r.problems, note, retryCases: r.retryCases };
    // strace's count differs from the reference run's (a call of the same kind came or went before it): aim again.
    const { level, landed, found, passed } = r.miss;
    const point = [c, c.retry, c.startup][level]!;
    note = `${["", "in the retry, ", "in the start-up, "][level]}aimed at #${aims[level]}, ${landed}`;
    if (found === undefined && passed === undefined) break;
    // Counted where it was aimed, yet another call was there: the pool thread's wake-up writes
    // (eventfd) fall at different places from run to run under load. The same aim, a few times.
    if (found === aims[level]) {
      if (++again > 3) break;
      continue;
    }
    // Seen: go to it. Not yet: at least as many calls further as changing ones of its kind are still to come before it.
    aims[level] = found ?? aims[level]! + Math.max(1, point.rank - passed!);
  }
  return { case: c, problems: [`could not stop the driver at this call: ${note}`], note };
}

/** Where the driver was stopped, when it was not at the call aimed at. */
interface Miss {
  /** 0: the first crash; 1: the one in the retry; 2: the one in the start-up. */
  level: number;
  landed: string;
  /** The call's number in this run's count, if it was seen. */
  found?: number;
  /** Stopped at an earlier call of its kind: how many changing calls of that kind had been made by then (the one stopped at included). */
  passed?: number;
}

async function runCaseOnce(c: CrashCase, ref: Reference, aims: number[], opts: RunOptions): Promise<{ problems: string[]; miss?: Miss; retryCases?: CrashCase[] }> {
  const d = await start(c.cycle);
  const s = newState(d);
  const step = c.cycle.steps[c.step]!;
  const problems: string[] = [];
  try {
    for (const earlier of c.cycle.steps.slice(0, c.step)) await earlier.run(s);
    const missed = await crashAt(c, aims[0]!, d, () => step.run(s));
    if (missed) return { problems, miss: { level: 0, ...missed } };
    let retryCases: CrashCase[] | undefined;
    const foreign = c.startup || opts.recordStartup ? placeForeign(d) : [];
    if (c.startup) {
      const held = await holdStart(d);
      const inStartup = await crashAt(c.startup, aims[2]!, d, () => held.started, held);
      if (inStartup) return { problems, miss: { level: 2, ...inStartup } };
      await d.start();
      // Names with a random part (a temporary's) are compared without it: the first kill's run made its own.
      const [now, then] = [tree(d.dir), c.startupTree!].map((t) => t.map((e) => e.replace(/\b[0-9a-f]{8}[0-9a-z]{0,8}\b/g, "*")));
      const differs = [...now!.filter((e) => !then!.includes(e)), ...then!.filter((e) => !now!.includes(e)).map((e) => `no ${e}`)];
      if (differs.length > 0) problems.push(`after this start-up was cut off and the next ran, unlike after an uncut start-up: ${differs.join(", ")}`);
    } else if (opts.recordStartup) {
      retryCases = await recordStartup(c, d, opts.recordStartup);
    } else {
      await d.start();
    }
    if (c.retry) {
      const again = await crashAt(c.retry, aims[1]!, d, () => step.run(s));
      if (again) return { problems, miss: { level: 1, ...again } };
      await d.start();
    }
    let failed: string | undefined;
    if (opts.recordRetry) {
      const threads = [...roles(d)].filter(([role]) => role.startsWith("driver"));
      const { calls } = await recordCalls(
        threads.map(([, r]) => r.tid),
        path.join(d.dir, "strace.retry"),
        async () => void (failed = await runRetrying(step, s)),
      );
      retryCases = threads.flatMap(([role, r]) => pointsFrom(calls.get(r.tid) ?? [], role, d.dir, ["before"]).map((retry) => ({ ...c, retry })));
    } else {
      failed = await runRetrying(step, s);
    }
    if (failed) problems.push(`${step.name} after the restart: ${failed}`);
    else
      for (const later of c.cycle.steps.slice(c.step + 1)) {
        const err = await runRetrying(later, s, 1);
        if (err) {
          problems.push(`${later.name}: ${err}`);
          break;
        }
      }
    problems.push(...removeForeign(foreign));
    problems.push(...(await checkClean(d, c.cycle, ref)));
    return { problems, retryCases };
  } catch (e) {
    problems.push(`the explorer: ${(e as Error).stack ?? e}`);
    return { problems };
  } finally {
    await destroyDriver(d);
  }
}

/**
 * Start the driver after a kill, recording its start-up: the cases of a
 * crash in it (each with what the scratch directory holds after this
 * uncut start-up, which a cut one followed by another must also give).
 */
async function recordStartup(c: CrashCase, d: DriverProcess, moments: readonly KillMoment[]): Promise<CrashCase[]> {
  const held = await holdStart(d);
  childPrograms().record();
  const { calls } = await recordCalls(held.tids, path.join(d.dir, "strace.startup"), async () => {
    held.go();
    await held.started;
  });
  const runs = childPrograms().runs().map((r) => [`child ${r.name}` as Role, r.calls] as const);
  childPrograms().off();
  const pool = poolThread(held.pid);
  if (pool !== held.pool) throw new Error(`the pool thread is ${pool}, not the newest thread at the start (${held.pool})`);
  const startupTree = tree(d.dir);
  const threads = [["driver main thread", held.main] as const, ["driver pool thread", held.pool] as const].map(([role, tid]) => [role, calls.get(tid) ?? []] as const);
  const other = held.tids.filter((t) => t !== held.main && t !== held.pool).flatMap((t) => (calls.get(t) ?? []).filter((call) => call.changing));
  if (other.length > 0) throw new Error(`the start-up made changing calls on threads the explorer does not follow: ${other.map((o) => o.text).join(", ")}`);
  return [...threads, ...runs].flatMap(([role, list]) => pointsFrom(list, role, d.dir, moments).map((startup) => ({ ...c, startup, startupTree })));
}

/**
 * Things the driver did not make, put where a start-up looks (data/, which
 * the sweep must leave to whoever wrote there; the kubelet directory) before
 * a start-up that follows a kill: after the cycle they must be as they were.
 */
function placeForeign(d: DriverProcess): string[] {
  const files = [path.join(d.root, "data", "not-a-volume", "keep"), path.join(d.kubeletDir, "not-the-drivers", "keep")];
  for (const f of files) {
    mkdirSync(path.dirname(f), { recursive: true });
    writeFileSync(f, FOREIGN);
  }
  return files;
}

/** Check the foreign files are as they were, and remove them; what is wrong with them. */
function removeForeign(files: string[]): string[] {
  const problems: string[] = [];
  for (const f of files) {
    let content: string | undefined;
    try {
      content = readFileSync(f, "utf8");
    } catch {
      // gone
    }
    if (content !== FOREIGN) problems.push(`what the driver did not make was touched: ${f} ${content === undefined ? "is gone" : "changed"}`);
    rmSync(path.dirname(f), { recursive: true, force: true });
  }
  return problems;
}

const FOREIGN = "not the driver's\n";

/**
 * Run `act` (the RPC; or, with `held`, a start-up held before its first
 * call) with the driver set to stop at `point` (the `nth` call of its
 * kind); kill it there and wait until it and what it leaves running have
 * ended. undefined when it was stopped at that very call.
 */
async function crashAt(point: CrashPoint, nth: number, d: DriverProcess, act: () => Promise<unknown>, held?: HeldStart): Promise<Omit<Miss, "level"> | undefined> {
  const armed = await arm(point, d, nth, path.join(d.dir, "strace.log"), held);
  const call = act().then(
    () => "answered",
    () => "failed",
  );
  const hit = armed.hit(call).then(() => "hit");
  let outcome = await Promise.race([hit, call]);
  // A failed call may be the dead driver's closed socket, seen before its exit; an answered one may have left work running.
  if (outcome !== "hit") outcome = await Promise.race([hit, delay(outcome === "failed" ? 2000 : 300).then(() => outcome)]);
  if (outcome === "hit") d.proc.kill("SIGKILL"); // "after": it is stopped just after the call; "before": it is dead already
  await armed.done();
  await call;

  // A call the thread died in is printed as it entered: without what the kernel fills in (an ioctl's struct), which the reference run's shows.
  const sig = (t: TracedCall) => callSignature(t.text, d.dir);
  const isPoint = (t: TracedCall) => sig(t) === point.signature || (diedIn(t) && point.signature.startsWith(sig(t).replace(/\)$/, "")));
  const seen = armed.calls();
  const found = seen.filter(isPoint)[point.occurrence - 1]?.nth;
  if (outcome !== "hit") return { landed: `the call never came (the RPC ${outcome})`, found };
  await d.exit;
  const last = seen.at(-1);
  if (!last || last.nth !== nth || !isPoint(last)) {
    const landed = `stopped at ${last ? `#${last.nth} ${last.text.split(d.dir).join("…")}` : "no call"}`;
    return { landed, found, passed: found === undefined ? seen.filter((t) => t.changing).length : undefined };
  }
  await waitForHelpers(d);
  return undefined;
}

/** A stop set up at one call: `hit` resolves when it happened (given the RPC's promise, for a call that never comes). */
interface Armed {
  hit(rpc: Promise<unknown>): Promise<void>;
  /** After the driver is killed (or the call never came): let go. */
  done(): Promise<void>;
  /** What the thread or program did of the call's kind, the last one the call it was stopped at. */
  calls(): TracedCall[];
}

async function arm(point: CrashPoint, d: DriverProcess, nth: number, log: string, held?: HeldStart): Promise<Armed> {
  if (point.role.startsWith("child ")) {
    // A helper program: stopped just after its call; once the driver is dead it carries on as it would have
    // (dying with it, if it was tied to it by --pdeathsig), and the explorer waits until it has ended.
    const children = childPrograms();
    const run = point.role.slice("child ".length);
    children.inject(run, point.call.syscall, nth);
    held?.go();
    let stopped: { pid: number } | undefined;
    return {
      hit: async (rpc) => {
        stopped = await children.stopped(run, rpc);
        if (!stopped) await new Promise(() => {}); // never: the RPC's outcome decides
      },
      done: async () => {
        children.off();
        if (!stopped) return;
        try {
          process.kill(stopped.pid, "SIGCONT");
        } catch {
          // it died with the driver
        }
        for (let i = 0; i < 1000 && processRuns(stopped.pid); i++) await delay(10);
      },
      calls: () => children.runs().find((r) => `child ${r.name}` === point.role)?.calls.filter((t) => t.syscall === point.call.syscall) ?? [],
    };
  }
  const target = held ? { pid: held.pid, tid: point.role === "driver main thread" ? held.main : held.pool } : roles(d).get(point.role);
  if (!target) throw new Error(`no ${point.role} to attach to`);
  const resume = held && (async () => (held.go(), await running(held.pid)));
  const armed = await ArmedStrace.arm(target.pid, target.tid, point.call.syscall, nth, point.moment, log, d.exit, resume);
  return { hit: () => armed.hit, done: () => armed.done(), calls: () => armed.calls() };
}

function processRuns(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}
