/**
 * Start the real driver as a child process, the way a DaemonSet would,
 * and find out from its JSON log where it listens.
 *
 * The driver logs one JSON object per line on stderr; "metrics listening"
 * carries the HTTP address actually bound (we ask for port 0, so the
 * kernel picks a free one) and "ready" means the CSI socket is serving.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import * as readline from "node:readline";
import { unmountUnder } from "../sanity/harness";
import { VolumeCapability_AccessMode_Mode as Mode, type CreateVolumeRequest } from "../../src/gen/csi";

const CLI = path.resolve(__dirname, "../../../bin/csi-lab.js");

export interface RunningDriver {
  dir: string;
  root: string;
  endpoint: string;
  /** e.g. http://127.0.0.1:40123 */
  httpBase: string;
  stop(): Promise<void>;
}

export async function startDriverWithMetrics(extraArgs: string[] = []): Promise<RunningDriver> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "csi-lab-metrics-"));
  const root = path.join(dir, "root");
  const endpoint = `unix://${path.join(dir, "csi.sock")}`;
  const args = [CLI, "driver", "--endpoint", endpoint, "--node-id", "metrics-node", "--root", root, "--metrics-address", "127.0.0.1:0", "--default-capacity-mode", "none", ...extraArgs];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
  let address: string | undefined;
  await new Promise<void>((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stderr! });
    let ready = false;
    lines.on("line", (line) => {
      let rec: { msg?: string; address?: string };
      try {
        rec = JSON.parse(line) as typeof rec;
      } catch {
        return;
      }
      if (rec.msg === "metrics listening") address = rec.address;
      if (rec.msg === "ready") ready = true;
      if (ready && address) resolve();
    });
    child.once("exit", (code) => reject(new Error(`driver exited with ${code} before it was ready`)));
  });
  return {
    dir,
    root,
    endpoint,
    httpBase: `http://${address}`,
    stop: () => stopChild(child, dir),
  };
}

async function stopChild(child: ChildProcess, dir: string): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    await new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.kill("SIGTERM");
    });
  }
  // A test that failed half-way may leave mounts: never rm -rf through them.
  await unmountUnder(dir);
  rmSync(dir, { recursive: true, force: true });
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

/** A single-node-writer filesystem volume, as a pod's claim asks for. */
export const mountCapability = { mount: { fsType: "", mountFlags: [], volumeMountGroup: "" }, accessMode: { mode: Mode.SINGLE_NODE_WRITER } };

/** A CreateVolume request for `name`, of `bytes` if given. */
export function createVolumeRequest(name: string, bytes?: number): CreateVolumeRequest {
  return {
    name,
    capacityRange: bytes === undefined ? undefined : { requiredBytes: bytes, limitBytes: 0 },
    volumeCapabilities: [mountCapability],
    parameters: {},
    secrets: {},
    mutableParameters: {},
  };
}
