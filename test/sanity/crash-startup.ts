/**
 * The crash explorer's start-ups: the driver killed while it starts.
 *
 * A driver that was killed starts again on the same root, and its start-up
 * (the hostPath store's sweep, sweep.ts, first) finishes or undoes what the
 * kill cut off — writing, renaming and removing as it goes, so it can be
 * cut off too. To reach its calls, the driver is started stopped: a hook
 * preloaded into it (NODE_OPTIONS="--require <this file>") gives libuv its
 * one pool thread (a stat queued to it) and stops the process (SIGSTOP)
 * before the driver's own code has run; strace is attached to its threads,
 * and SIGCONT lets it go. The pool thread is then the newest of its
 * threads, as it was the last made.
 *
 * The hook acts only in the process the explorer started (its parent's pid
 * is in CSI_LAB_STOP_AT_START): the driver's own helpers inherit the
 * environment and go on as they would.
 */
import { readdirSync, stat } from "node:fs";
import type { DriverProcess } from "./harness";
import { threadState, untilThreads } from "./strace";

if (process.env.CSI_LAB_STOP_AT_START && process.env.CSI_LAB_STOP_AT_START === String(process.ppid)) {
  stat("/", () => {});
  process.kill(process.pid, "SIGSTOP");
}

/** A driver start held before its first call, to attach to: `go()` lets it run, `started` is its start (it rejects if it dies). */
export interface HeldStart {
  pid: number;
  /** Its main thread and its pool thread (the newest), by tid. */
  main: number;
  pool: number;
  tids: number[];
  go(): void;
  started: Promise<void>;
}

/** Start `d` again, held before its first call. */
export async function holdStart(d: DriverProcess): Promise<HeldStart> {
  const env = d.opts.env;
  const before = d.proc;
  const preload = `--require ${__filename}`;
  d.opts.env = {
    ...(env ?? process.env),
    CSI_LAB_STOP_AT_START: String(process.pid),
    NODE_OPTIONS: [(env ?? process.env).NODE_OPTIONS, preload].filter(Boolean).join(" "),
  };
  const started = d.start();
  started.catch(() => undefined); // the caller awaits it; a kill makes it reject
  try {
    while (d.proc === before) await delay(1);
  } finally {
    d.opts.env = env;
  }
  const pid = d.proc.pid!;
  for (;;) {
    if (threadState(pid, pid) === "T") break;
    if (d.proc.exitCode !== null || d.proc.signalCode !== null) throw new Error("the driver ended before it stopped at its start");
    await delay(1);
  }
  const tids = readdirSync(`/proc/${pid}/task`).map(Number);
  return { pid, main: pid, pool: Math.max(...tids), tids, go: () => process.kill(pid, "SIGCONT"), started };
}

/** Resolves once no thread of `pid` is stopped any more (or it is gone). */
export function running(pid: number): Promise<void> {
  return untilThreads(pid, (states) => !states.includes("T"), 1);
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));
