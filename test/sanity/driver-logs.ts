/**
 * What the drivers a failed test talked to last logged.
 *
 * A test that fails in CI leaves only its own output behind: the assertion,
 * or "Timeout of 30000ms exceeded". What the driver did meanwhile — which
 * call it was in, which tool it waited on, how long each took — is in its
 * log (started at debug level by the harness), and is gone with its scratch
 * directory. So the harness registers each driver it starts here, forgets
 * it once destroyed, and the root hook (test/root-hooks.ts) prints the last
 * lines of the most recently started ones after a failed test.
 */
export interface LoggingDriver {
  readonly dir: string;
  readonly logs: readonly string[];
}

const live = new Set<LoggingDriver>();
/** Only so many are kept (a test that never destroys its driver must not keep its logs for the rest of the run). */
const KEPT = 8;

export function registerDriver(d: LoggingDriver): void {
  live.delete(d); // started again: now the most recent
  live.add(d);
  for (const old of live) {
    if (live.size <= KEPT) break;
    live.delete(old);
  }
}

export function forgetDriver(d: LoggingDriver): void {
  live.delete(d);
}

/** The last `lines` log lines of each of the `drivers` most recently started and not destroyed, each cut to `width` characters. */
export function recentDriverLogs(drivers = 3, lines = 40, width = 400): string {
  return [...live]
    .slice(-drivers)
    .filter((d) => d.logs.length > 0)
    .map((d) => {
      const tail = d.logs.slice(-lines).map((l) => (l.length > width ? `${l.slice(0, width)}…` : l));
      return `--- the last ${tail.length} of ${d.logs.length} log lines of the driver in ${d.dir}:\n${tail.join("\n")}\n`;
    })
    .join("");
}
