/**
 * How a benchmark starts the driver: as the installed command runs it, in a
 * mount namespace of its own, ready once a Probe answers.
 *
 * bin/csi-lab.js takes no node flags (any V8 flag on the command line costs
 * start-up time; see the file): what the driver needs of V8 it sets itself,
 * so `node bin/csi-lab.js` is the process that ships — with the environment
 * the image gives it (driverEnv).
 */
import { spawnSync, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import * as path from "node:path";
import { connect } from "../src/client/csi-client";

export const DRIVER_BIN = path.resolve(__dirname, "../../bin/csi-lab.js");

/** node's arguments for running bin/csi-lab.js with `args`. */
export function driverArgs(args: string[]): string[] {
  return [DRIVER_BIN, ...args];
}

/**
 * Variables of this shell that Node acts on before it runs any JavaScript,
 * and that the driver's image (Dockerfile: node:24-bookworm-slim) does not
 * set. NODE_EXTRA_CA_CERTS makes Node read and parse a bundle of CA
 * certificates as the process starts, and build its store of root
 * certificates with them: Debian's bundle, about 140 certificates, costs
 * some 40 ms before V8 even starts on the benchmark VM, whose environment
 * sets it for every process. The driver never opens a TLS connection.
 */
export const NOT_IN_IMAGE = ["NODE_EXTRA_CA_CERTS"] as const;

/**
 * What the driver's image sets for Node (the Dockerfile's ENV), and so the
 * benchmarks too: --use-openssl-ca spares the driver Node 24's parse of its
 * bundled root certificates, which it does on a thread of its own as soon as
 * node:tls is loaded (node:http2 loads it), and keeps: about 1.5 MiB of RSS.
 */
export const SET_BY_IMAGE = { NODE_OPTIONS: "--use-openssl-ca" } as const;

/** The driver's environment as its image gives it: this process's, without NOT_IN_IMAGE, with SET_BY_IMAGE. */
export function driverEnv(from: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...from, ...SET_BY_IMAGE };
  for (const name of NOT_IN_IMAGE) delete env[name];
  return env;
}

/** Which of NOT_IN_IMAGE this process has (their start-up cost is then measured apart). */
export function setHereNotInImage(from: NodeJS.ProcessEnv = process.env): string[] {
  return NOT_IN_IMAGE.filter((name) => from[name] !== undefined);
}

/**
 * A driver makes real mounts: unless this process already runs in a private
 * mount namespace made for it, run this same command again inside one
 * (unshare -m, util-linux) and return true — the caller then returns, with
 * the exit status set from that run.
 */
export function rerunInPrivateMountNamespace(): boolean {
  if (process.env.CSI_LAB_BENCH_PRIVATE === "1") return false;
  const r = spawnSync("unshare", ["--mount", "--propagation", "private", "--", process.execPath, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, CSI_LAB_BENCH_PRIVATE: "1" },
  });
  if (r.error) throw new Error(`unshare: ${r.error.message} (util-linux; run as root)`);
  process.exitCode = r.status ?? 1;
  return true;
}

/**
 * Wait until a driver just started at `endpoint` answers Probe, as a
 * liveness probe would see it. A fresh client per attempt: a channel that
 * failed to connect waits before its next try, which would be measured too.
 * On a unix socket the attempts start once the socket file is there: until
 * then a stat every millisecond is all the waiting costs, where a gRPC
 * client per attempt would take CPU from the start being measured (this
 * machine has two cores).
 */
export async function untilServing(proc: ChildProcess, endpoint: string, who: string): Promise<void> {
  const stillRunning = () => {
    if (proc.exitCode !== null) throw new Error(`${who} exited during start-up (code ${proc.exitCode})`);
  };
  const socketPath = endpoint.startsWith("unix://") ? endpoint.slice("unix://".length) : undefined;
  while (socketPath && !existsSync(socketPath)) {
    stillRunning();
    await new Promise((r) => setTimeout(r, 1));
  }
  for (;;) {
    const client = connect(endpoint);
    try {
      await client.identity.probe({}, { timeoutMs: 200 });
      return;
    } catch {
      stillRunning();
      await new Promise((r) => setTimeout(r, 2));
    } finally {
      client.close();
    }
  }
}
