/**
 * Stopping a command that serves until it is stopped: `csi-lab rpc serve`
 * and `csi-lab lab` (the driver does the same in its JSON log: src/cli.ts).
 *
 * Three things stop it: Ctrl-C (SIGINT), a SIGTERM, and the end of the
 * process that started it, which parent-death.ts turns into a SIGTERM (a
 * server left running, orphaned, would keep its port, and the next start
 * on that port would fail). Each ends the same way: one line on stderr
 * saying why, the listener closed, exit status 0. A second signal while
 * it closes, or a signal before there is anything to close, exits at once
 * with status 1.
 */
import { endedParent, stopWithParent, type ParentWatch } from "./parent-death";

export interface StopSignals {
  /** What to close when a signal comes: the command is now serving. */
  serving(close: () => Promise<void>): void;
}

/**
 * Take SIGINT and SIGTERM, and ask for a SIGTERM when the parent process
 * ends. Call it before the listener starts; `name` is the command as its
 * own output names it ("csi-lab lab").
 */
export function stopOnSignals(name: string): StopSignals {
  let close: (() => Promise<void>) | undefined;
  let signals = 0;
  let parent: ParentWatch = { armed: false, why: "not asked yet" };
  const say = (text: string) => void process.stderr.write(`${name}: ${text}\n`);
  const stop = (signal: NodeJS.Signals) => {
    const ended = signal === "SIGTERM" ? endedParent(parent) : undefined;
    const why = ended === undefined ? signal : `its parent process (pid ${ended}) ended`;
    if (++signals > 1 || !close) {
      say(`${why}; ${close ? "a second signal: exiting now" : "exiting before it was serving"}`);
      process.exit(1);
    }
    say(`stopping: ${why}`);
    close().then(
      () => process.exit(0),
      (err: unknown) => {
        say(`could not stop cleanly: ${err instanceof Error ? err.message : String(err)}`);
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("SIGTERM", () => stop("SIGTERM"));
  // After the handlers: a parent already gone means a SIGTERM at once.
  parent = stopWithParent(name);
  return { serving: (c) => void (close = c) };
}
