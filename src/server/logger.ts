/**
 * Structured logs: one JSON object per line.
 *
 * A line per RPC with its method, volume, status code and duration is what
 * an operator greps, and what Loki or Elasticsearch index without parsing
 * rules. Anything that looks like a credential is redacted before it is
 * written (see redact.ts).
 */
export const LEVELS = ["debug", "info", "warn", "error"] as const;
export type Level = (typeof LEVELS)[number];
const ORDER: Record<Level, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface Logger {
  /** Whether lines of this level are written (to skip building them). */
  enabled(level: Level): boolean;
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}

export function createLogger(opts: { level?: Level; write?: (line: string) => void } = {}): Logger {
  const min = ORDER[opts.level ?? "info"];
  const write = opts.write ?? ((line: string) => process.stderr.write(line + "\n"));
  const log = (level: Level) => (msg: string, fields: Record<string, unknown> = {}) => {
    if (ORDER[level] < min) return;
    write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }));
  };
  return { enabled: (level) => ORDER[level] >= min, debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") };
}

/** A level by name; anything else is "info" (the command line refuses unknown names before this). */
export function parseLevel(s: string | undefined): Level {
  return (LEVELS as readonly string[]).includes(s ?? "") ? (s as Level) : "info";
}
