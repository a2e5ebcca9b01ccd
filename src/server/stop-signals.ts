/**
 * Stopping a command that serves until it is stopped: the driver,
 * `csi-lab rpc serve` and `csi-lab lab` — and `csi-lab rpc call` and
 * `rpc walkthrough`, which wait for a reply up to its deadline (as long as
 * 49.7 days), and `rpc csi`, which runs a driver of its own.
 *
 * Three things stop it: Ctrl-C (SIGINT), a SIGTERM, and the end of the
 * process that started it, which parent-death.ts turns into a SIGTERM (a
 * server left running, orphaned, would keep its socket or port, and the
 * next start would fail; a call left waiting would hold its connection, and
 * the server's handler, until its deadline). Each ends the same way: the
 * command says why, closes what it serves, and exits with status 0 (a call
 * cut short: 1, as a call that fails; a walkthrough or `rpc csi` cut
 * short: 130, as their Ctrl-C always has). A second signal while it
 * closes, or a signal before there is anything to close, exits at once
 * with status 1. How it says so is the command's own: a line on stderr
 * (textReport), or the driver's JSON log (src/cli.ts).
 */
import { endedParent, stopWithParent, type ParentWatch } from "./parent-death";

/** What a command says as signals stop it. `cause` is set where the parent's end sent the SIGTERM. */
export interface StopReport {
  /** It stops: what it serves is being closed. */
  stopping(signal: NodeJS.Signals, cause: string | undefined): void;
  /** A second signal while it closes (`serving`), or one before it serves: it exits at once. */
  exitingNow(signal: NodeJS.Signals, cause: string | undefined, serving: boolean): void;
  /** Closing failed. */
  failed(err: unknown): void;
}

export interface StopSignals {
  /** Whether the parent's end is watched, and if not why. */
  readonly parent: ParentWatch;
  /** What to close when a signal comes: the command is now serving. `status`: the exit status once it is closed. */
  serving(close: () => Promise<unknown>, status?: number): void;
}

/** One line on stderr per event, named by `name` ("csi-lab lab: stopping: SIGINT"). */
export function textReport(name: string): StopReport {
  const say = (text: string) => void process.stderr.write(`${name}: ${text}\n`);
  return {
    stopping: (signal, cause) => say(`stopping: ${cause ?? signal}`),
    exitingNow: (signal, cause, serving) => say(`${cause ?? signal}; ${serving ? "a second signal: exiting now" : "exiting before it was serving"}`),
    failed: (err) => say(`could not stop cleanly: ${err instanceof Error ? err.message : String(err)}`),
  };
}

/**
 * Take SIGINT and SIGTERM, and ask for a SIGTERM when the parent process
 * ends. Call it before the listener starts: whoever reads that it serves
 * may signal it at once. `subject` names the command where the parent's end
 * is not watched ("the driver is PID 1 …").
 */
export function stopOnSignals(subject: string, report: StopReport): StopSignals {
  let close: (() => Promise<unknown>) | undefined;
  let status = 0;
  let signals = 0;
  let stoppedFor: string | undefined; // the cause of the stop under way, where the parent's end is it
  let parent: ParentWatch = { armed: false, why: "not asked yet" };
  const stop = (signal: NodeJS.Signals) => {
    const ended = signal === "SIGTERM" ? endedParent(parent) : undefined;
    const cause = ended === undefined ? undefined : `its parent process (pid ${ended}) ended`;
    // A parent with threads ends thread by thread, and the kernel repeats its SIGTERM for each (parent-death.ts): one end.
    if (cause !== undefined && stoppedFor === cause) return;
    stoppedFor = cause;
    if (++signals > 1 || !close) {
      report.exitingNow(signal, cause, close !== undefined);
      process.exit(1);
    }
    report.stopping(signal, cause);
    close().then(
      () => process.exit(status),
      (err: unknown) => {
        report.failed(err);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  // After the handlers: a parent already gone means a SIGTERM at once.
  parent = stopWithParent(subject);
  return {
    parent,
    serving: (c, s = 0) => {
      close = c;
      status = s;
    },
  };
}
