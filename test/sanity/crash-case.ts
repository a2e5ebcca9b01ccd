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
import { readFileSync } from "node:fs";
import * as path from "node:path";
import type { CycleState, Step } from "./crash-cycles";
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
} from "./crash-explorer";
import { destroyDriver, type DriverProcess } from "./harness";
import { ArmedStrace, callSignature, diedIn, recordCalls, type TracedCall } from "./strace";

export interface RunOptions {
  /** Record the calls of the RPC's first retry, and give the cases of a second crash there (killed before each). */
  recordRetry?: boolean;
}

/** Run one case; with `recordRetry`, also the cases it gives for a second crash in the retry. */
export async function runCase(c: CrashCase, ref: Reference, opts: RunOptions = {}): Promise<CaseResult & { retryCases?: CrashCase[] }> {
  const aims = [c.call.nth, c.retry?.call.nth ?? 0];
  let note: string | undefined;
  for (let attempt = 0; attempt < 10; attempt++) {
    const r = await runCaseOnce(c, ref, aims, opts);
    if (!r.miss) return { case: c, problems: r.problems, note, retryCases: r.retryCases };
    // strace's count differs from the reference run's (a call of the same kind came or went before it): aim again.
    const { level, landed, found, passed } = r.miss;
    const point = level === 0 ? c : c.retry!;
    note = `${level === 1 ? "in the retry, " : ""}aimed at #${aims[level]}, ${landed}`;
    if (found === aims[level] || (found === undefined && passed === undefined)) break;
    // Seen: go to it. Not yet: at least as many calls further as changing ones of its kind are still to come before it.
    aims[level] = found ?? aims[level]! + Math.max(1, point.rank - passed!);
  }
  return { case: c, problems: [`could not stop the driver at this call: ${note}`], note };
}

/** Where the driver was stopped, when it was not at the call aimed at. */
interface Miss {
  /** 0: the first crash; 1: the one in the retry. */
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
    const missed = await crashAt(c, aims[0]!, d, s, step);
    if (missed) return { problems, miss: { level: 0, ...missed } };
    await d.start();
    if (c.retry) {
      const again = await crashAt(c.retry, aims[1]!, d, s, step);
      if (again) return { problems, miss: { level: 1, ...again } };
      await d.start();
    }
    let failed: string | undefined;
    let retryCases: CrashCase[] | undefined;
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
 * Run `step` with the driver set to stop at `point` (the `nth` call of its
 * kind); kill it there and wait until it and what it leaves running have
 * ended. undefined when it was stopped at that very call.
 */
async function crashAt(point: CrashPoint, nth: number, d: DriverProcess, s: CycleState, step: Step): Promise<Omit<Miss, "level"> | undefined> {
  const armed = await arm(point, d, nth, path.join(d.dir, "strace.log"));
  const call = step.run(s).then(
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

async function arm(point: CrashPoint, d: DriverProcess, nth: number, log: string): Promise<Armed> {
  if (point.role.startsWith("child ")) {
    // A helper program: stopped just after its call; once the driver is dead it carries on as it would have
    // (dying with it, if it was tied to it by --pdeathsig), and the explorer waits until it has ended.
    const children = childPrograms();
    const run = point.role.slice("child ".length);
    children.inject(run, point.call.syscall, nth);
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
  const target = roles(d).get(point.role);
  if (!target) throw new Error(`no ${point.role} to attach to`);
  const armed = await ArmedStrace.arm(target.pid, target.tid, point.call.syscall, nth, point.moment, log, d.exit);
  return { hit: () => armed.hit, done: () => armed.done(), calls: () => armed.calls() };
}

function processRuns(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}
