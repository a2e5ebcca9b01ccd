/**
 * Running the deploy scripts offline: with test/deploy/fake-tools first on
 * PATH, `kubectl`, `kind`, `docker` and `csi-sanity` are stand-ins that
 * log each command line and answer as a small cluster would. What a
 * script did is then read from that log — which commands, in what order,
 * with what piped into `kubectl apply -f -` (as a digest) — and from what
 * it printed.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { REPO } from "./targets";

export const FAKE_TOOLS = path.join(REPO, "test/deploy/fake-tools");

export interface FakeRun {
  status: number | null;
  /** stdout and stderr, interleaved as printed */
  output: string;
  /** every command line the stand-ins saw, in order */
  log: string[];
}

/** Run `script args…` with the stand-in tools first on PATH and `env` added. */
export function runWithFakes(script: string, args: string[] = [], env: Record<string, string> = {}): FakeRun {
  const dir = mkdtempSync(path.join(os.tmpdir(), "csi-lab-fake-"));
  try {
    const logFile = path.join(dir, "log");
    const r = spawnSync("bash", ["-c", 'exec "$@" 2>&1', "run", script, ...args], {
      encoding: "utf8",
      env: { ...process.env, PATH: `${FAKE_TOOLS}:${process.env.PATH ?? ""}`, FAKE_LOG: logFile, HOME: dir, ...env },
      timeout: 60_000,
    });
    let log: string[] = [];
    try {
      log = readFileSync(logFile, "utf8").split("\n").filter((l) => l !== "");
    } catch {
      // nothing was run
    }
    return { status: r.status, output: r.stdout, log };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The summary table's rows: "  ok       name" → ["ok", "name"]. */
export function summaryRows(output: string): [string, string][] {
  const rows: [string, string][] = [];
  for (const line of output.split("\n")) {
    const m = /^\s+(ok|skipped|FAILED)\s+(\S+)/.exec(line);
    if (m) rows.push([m[1]!, m[2]!]);
  }
  return rows;
}
