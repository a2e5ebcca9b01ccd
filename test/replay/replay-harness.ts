/**
 * Test helper: replay a scenario against the driver run as the kind
 * overlay's manifests run it (src/replay/processes.ts), and report.
 *
 * The deployment is read from `kubectl kustomize deploy/kind` (or the
 * offline renderer) through test/deploy/lib, so a change to the manifests'
 * flags, sidecars or mounts changes what the replay runs. The replay
 * starts real drivers and makes real mounts, shared mounts and loop
 * devices: it runs only inside test/sandbox/throwaway-root.
 */
import { statfsSync } from "node:fs";
import { mkdtempSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { render } from "../deploy/lib/render";
import { REPO } from "../deploy/lib/targets";
import { deploymentFrom, type Deployment } from "../../src/replay/deployment";
import { discover, discoveryStep } from "../../src/replay/discover";
import { plan } from "../../src/replay/plan";
import { freePort, ReplayHost } from "../../src/replay/processes";
import { run, type ReplayEvent, type RunResult } from "../../src/replay/run";
import type { Scenario } from "../../src/replay/scenario";
import type { Step } from "../../src/replay/steps";

const TMPFS_MAGIC = 0x01021994;
export const CONTAINED = process.env.CSI_LAB_SANDBOX === "1" && statfsSync("/").type === TMPFS_MAGIC;

/**
 * A suite that replays against a real driver: run where the replay may make
 * its mounts and directories (CONTAINED), and elsewhere one skipped test
 * that says where it runs.
 */
export function describeContained(title: string, fn: (this: Mocha.Suite) => void): void {
  if (CONTAINED) {
    describe(title, fn);
    return;
  }
  describe(title, () => {
    it("runs only inside test/sandbox/throwaway-root (npm test runs it there)", function () {
      this.skip();
    });
  });
}
export const BIN = path.join(REPO, "bin/csi-lab.js");
export const EXAMPLES_DIR = path.join(REPO, "deploy/examples");
export const NODE_NAME = "node-1";

let kind: Deployment | undefined;
/** The kind overlay's deployment (its shared directory stands for the NFS share). */
export function kindDeployment(): Deployment {
  kind ??= deploymentFrom(render(path.join(REPO, "deploy/kind")), { nodeName: NODE_NAME });
  return kind;
}


export interface Replayed {
  result: RunResult;
  events: ReplayEvent[];
  steps: Step[];
  /** /metrics of the node plugin after the replay */
  metrics: string;
  /** loop devices still attached to the replay's files when it ended (before the forced clean-up) */
  loopsLeft: string[];
  /** failures, with the plan's calls and the last log lines, for an assertion message */
  report: string;
  /** the port each process's metrics listener ended up on */
  metricsPorts: { node: number | undefined; controller: number | undefined };
}

export interface ReplayOptions {
  deployment?: Deployment;
  hostPaths?: Record<string, string>;
  /** called with the host once it runs, before the replay (to break something on purpose) */
  before?: (host: ReplayHost) => void | Promise<void>;
  /** called once the replay ran, before everything stops (to look at what the driver left on the node) */
  after?: (host: ReplayHost, result: RunResult) => void | Promise<void>;
  /** metrics ports to try first (default: free ones) */
  metricsPorts?: { node?: number; controller?: number };
}

/** Start the node plugin and controller, discover, plan `scenario`, run it, stop everything. */
export async function replay(scenario: Scenario, opts: ReplayOptions = {}): Promise<Replayed> {
  const deployment = opts.deployment ?? kindDeployment();
  const hostDir = mkdtempSync(path.join(os.tmpdir(), "csi-lab-replay-"));
  const ports = { node: opts.metricsPorts?.node ?? (await freePort()), controller: opts.metricsPorts?.controller ?? (await freePort()) };
  const host = await ReplayHost.start({ deployment, hostDir, hostPaths: opts.hostPaths, bin: BIN, metricsPorts: ports });
  const events: ReplayEvent[] = [];
  let steps: Step[] = [discoveryStep(deployment)];
  try {
    await opts.before?.(host);
    const facts = await discover(deployment, NODE_NAME, host, { onEvent: (e) => events.push(e) });
    steps = plan(scenario, deployment, facts, { kubeletDir: host.kubeletDir, driverPath: (p) => host.containerPath("node", p) });
    const result = await run(steps, host, { onEvent: (e) => events.push(e) });
    await opts.after?.(host, result);
    const metrics = await fetch(`http://127.0.0.1:${host.metricsPort("node")}/metrics`).then((r) => r.text());
    const report = result.ok ? "" : describeFailure(result, events, host);
    const metricsPorts = { node: host.metricsPort("node"), controller: host.metricsPort("controller") };
    return { result, events, steps, metrics, report, loopsLeft: host.loopDevices(), metricsPorts };
  } finally {
    await host.stop();
  }
}

function describeFailure(result: RunResult, events: ReplayEvent[], host: ReplayHost): string {
  const calls = events
    .filter((e): e is Extract<ReplayEvent, { type: "reply" }> => e.type === "reply")
    .map((e) => `  step ${e.step}: ${e.call.process} ${e.call.method} → ${e.code}${e.message ? ` (${e.message})` : ""}`);
  const tail = (p: "node" | "controller") => host.logs(p).slice(-15).map((l) => `  ${l}`);
  return [
    "failures:",
    ...result.failures.map((f) => `  ${f}`),
    "calls made:",
    ...calls,
    "node plugin log (last lines):",
    ...tail("node"),
    "controller log (last lines):",
    ...tail("controller"),
  ].join("\n");
}

/** Calls made, as "process Method code" lines, for assertions. */
export function callsOf(events: ReplayEvent[]): string[] {
  return events.filter((e): e is Extract<ReplayEvent, { type: "reply" }> => e.type === "reply").map((e) => `${e.call.process} ${e.call.method} ${e.code}`);
}
