/**
 * The real driver with --metrics-address, started by the sanity harness.
 *
 * We ask for port 0, so the kernel picks a free one; the driver's JSON log
 * line "metrics listening" (written before "ready") says which.
 */
import { connect, type CsiClient } from "../../src/client/csi-client";
import { destroyDriver, mountCapability, startDriver } from "../sanity/harness";
import type { CreateVolumeRequest } from "../../src/gen/csi";

export interface RunningDriver {
  dir: string;
  root: string;
  endpoint: string;
  /** e.g. http://127.0.0.1:40123 */
  httpBase: string;
  /** The driver's "ready" log record. */
  ready: Record<string, unknown>;
  /** Its log lines so far (stderr). */
  readonly logs: readonly string[];
  stop(): Promise<void>;
}

/** `metricsAddress` ":0" listens on every interface; httpBase then reaches it at 127.0.0.1. */
export async function startDriverWithMetrics(extraArgs: string[] = [], env?: NodeJS.ProcessEnv, metricsAddress = "127.0.0.1:0"): Promise<RunningDriver> {
  const d = await startDriver({
    env,
    nodeId: "metrics-node",
    extraArgs: ["--metrics-address", metricsAddress, "--default-capacity-mode", "none", ...extraArgs],
  });
  const address = d.jsonLogs().find((rec) => rec.msg === "metrics listening")?.address;
  if (typeof address !== "string") {
    await destroyDriver(d);
    throw new Error(`the driver did not say where /metrics listens:\n${d.logs.join("\n")}`);
  }
  const ready = d.jsonLogs().find((rec) => rec.msg === "ready") ?? {};
  return { dir: d.dir, root: d.root, endpoint: d.endpoint, httpBase: `http://${address.replace(/^(\[::\]|0\.0\.0\.0):/, "127.0.0.1:")}`, ready, logs: d.logs, stop: () => destroyDriver(d) };
}

/**
 * For the describe block that calls it: a driver with metrics started
 * before its tests and a client connected to it, both stopped after them.
 */
export function useDriverWithMetrics(env?: NodeJS.ProcessEnv): { readonly driver: RunningDriver; readonly client: CsiClient } {
  let driver: RunningDriver | undefined;
  let client: CsiClient | undefined;
  before(async () => {
    driver = await startDriverWithMetrics([], env);
    client = connect(driver.endpoint);
  });
  after(async () => {
    client?.close();
    await driver?.stop();
  });
  return {
    get driver() {
      return driver!;
    },
    get client() {
      return client!;
    },
  };
}

/** GET a path; the status and body. */
export async function get(base: string, p: string): Promise<{ status: number; body: string; type: string }> {
  const res = await fetch(base + p);
  return { status: res.status, body: await res.text(), type: res.headers.get("content-type") ?? "" };
}

/** The value of one sample line of a Prometheus text page, or undefined. */
export function sample(page: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of page.split("\n")) {
    if (line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? "").matchAll(/([a-zA-Z_]+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

/** A CreateVolume request for `name`, of `bytes` if given. */
export function createVolumeRequest(name: string, bytes?: number): CreateVolumeRequest {
  return {
    name,
    capacityRange: bytes === undefined ? undefined : { requiredBytes: bytes, limitBytes: 0 },
    volumeCapabilities: [mountCapability()],
    parameters: {},
    secrets: {},
    mutableParameters: {},
  };
}
