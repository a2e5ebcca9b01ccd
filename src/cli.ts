/**
 * The `csi-lab` command.
 *
 *   csi-lab driver [flags]   run the CSI driver
 *   csi-lab rpc …            the RPC playground (see src/rpc-demo)
 *   csi-lab lab              the lab in a browser (see src/lab)
 *
 * Flags follow the conventions of the kubernetes-csi sidecars and drivers
 * (--endpoint, --node-id, and the CSI_ENDPOINT / NODE_ID environment
 * variables a DaemonSet sets), so the manifests read like any driver's.
 * With no flags at all the driver runs on embedded defaults inside the
 * current directory: socket .csi-lab/csi.sock, data .csi-lab/root.
 */
import { mkdirSync } from "node:fs";
import * as path from "node:path";
import { openDriver } from "./server/driver";
import { driverUsage, FlagError, parseDriverCommand } from "./server/driver-flags";
import { createLogger } from "./server/logger";
import { CallEvents } from "./server/call-events";
import type { CallRecord } from "./server/interceptor";
import type { startMetricsServer } from "./server/metrics-http";
import { preflight } from "./server/preflight";
import { startServer, type RunningServer } from "./server/server";
import { stopOnSignals } from "./server/stop-signals";
import { describeHolder, lockRoot } from "./storage/root-lock";
import { mountTableSource } from "./mount/mountinfo";
import { setMountObserver } from "./mount/observer";
import { version } from "./server/version";
import { youngGenerationBytes } from "./server/young-generation";

const USAGE = `csi-lab ${version} — a CSI driver and an RPC playground

Usage:
  csi-lab driver [flags]     serve the CSI Identity, Controller and Node services
                             (csi-lab driver --help lists its flags)
  csi-lab rpc <command> …    the RPC playground (csi-lab rpc --help)
  csi-lab lab [flags]        the lab in a browser: bytes, a volume's life, a replay
                             (csi-lab lab --help)
  csi-lab --version

Example:
  mkdir -p /tmp/x
  csi-lab driver --endpoint unix:///tmp/x/csi.sock --node-id node-1 --root /tmp/x/root
`;

export async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case "driver":
        await runDriver(rest);
        return;
      case "rpc":
        // Loaded on demand: the driver need not carry the playground (protobufjs and
        // all) in its memory or its start-up time.
        await (require("./rpc-demo/cli") as typeof import("./rpc-demo/cli")).main(rest);
        return;
      case "lab":
        await (require("./lab/cli") as typeof import("./lab/cli")).main(rest);
        return;
      case "--version":
      case "version":
        process.stdout.write(version + "\n");
        return;
      case undefined:
      case "-h":
      case "--help":
      case "help":
        process.stdout.write(USAGE);
        return;
      default:
        throw new FlagError(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
    }
  } catch (err) {
    // A bad flag is the user's to fix: one line, exit 2. Anything else that
    // stops the start (a root that cannot be laid out, a socket in use) is
    // also one line; the details are in the log when it got that far.
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`csi-lab${command === "driver" ? " driver" : ""}: ${message}\n`);
    process.exitCode = err instanceof FlagError ? 2 : 1;
  }
}

async function runDriver(argv: string[]): Promise<void> {
  const started = process.hrtime.bigint();
  const command = parseDriverCommand(argv);
  if (command.kind === "help") return void process.stdout.write(driverUsage());
  if (command.kind === "version") return void process.stdout.write(version + "\n");
  const args = command.args;
  const checked = preflight(args);
  const log = createLogger({ level: args.logLevel });
  for (const warning of checked.warnings) log.warn(warning);
  if (checked.cannotMount) log.warn("cannot mount", { problem: checked.cannotMount });
  if (args.endpoint.kind === "tcp" && args.config.allowNetworkEndpoint) {
    log.warn("serving CSI on TCP: anyone who can reach this address can create, mount and delete volumes", { host: args.endpoint.host });
  }

  // Handlers go in before anything is announced: whoever reads "ready"
  // may send SIGTERM at once, and an unhandled SIGTERM would kill the
  // process without removing its socket.
  let metricsServer: Awaited<ReturnType<typeof startMetricsServer>> | undefined;
  const stops = stopOnSignals("the driver", {
    stopping: (signal, cause) => log.info("signal received", { signal, ...(cause ? { cause } : {}) }),
    exitingNow: (signal, cause, serving) =>
      log.warn(serving ? "second signal; exiting now" : "signal before the server started; exiting", { signal, ...(cause ? { cause } : {}) }),
    failed: (err) => log.error("shutdown failed", { error: String(err) }),
  });
  // A driver started from a shell or npm ends with it (parent-death.ts).
  const { parent } = stops;
  log.debug("parent process", parent.armed ? { pid: parent.parent, onItsEnd: "SIGTERM" } : { watched: false, why: parent.why });

  // The embedded default's .csi-lab holds the socket and, with the default
  // --root, the data: made owner-only here, before the root's mkdir -p
  // would make it 0755 (docs/security.md).
  if (args.defaultEndpoint && args.endpoint.kind === "unix") {
    try {
      mkdirSync(path.dirname(args.endpoint.path), { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
  }
  // One driver per root, before anything in it is swept or written: a second
  // one waits for the first to exit, or gives up (storage/root-lock.ts).
  await lockRoot(args.config.root, {
    waitMs: args.rootLockTimeoutMs,
    onWait: (holder) =>
      log.warn("another driver holds the root; waiting for it to exit", { root: args.config.root, holder: describeHolder(holder), waitSeconds: args.rootLockTimeoutMs / 1000 }),
  });
  const driver = await openDriver(args.config, log, { mountProblem: checked.cannotMount });
  // prom-client and the HTTP server are loaded only when metrics are asked for: they cost start-up time.
  const metrics = args.metricsAddress ? (await import("./server/metrics.js")).createMetrics(driver) : undefined;
  if (metrics) setMountObserver(metrics.onMount);
  // The live call stream (GET /events) rides on the same listener.
  const events = metrics ? new CallEvents() : undefined;
  const onCall = metrics && events ? (rec: CallRecord) => (metrics.onCall(rec), events.publish(rec)) : undefined;
  // The metrics listener before the CSI socket, and closed again if the
  // socket fails: a start that cannot have both ends with neither, rather
  // than a driver that serves CSI after saying it failed to start.
  metricsServer = args.metricsAddress && metrics ? await (await import("./server/metrics-http.js")).startMetricsServer(args.metricsAddress, driver, metrics, events) : undefined;
  let server: RunningServer;
  try {
    server = await startServer(driver, args.endpoint, { onCall, socketGid: checked.socketGid });
  } catch (err) {
    await metricsServer?.close();
    throw err;
  }
  stops.serving(() => Promise.all([server.shutdown(), metricsServer?.close()]));
  log.info("ready", { ms: Number(process.hrtime.bigint() - started) / 1e6, youngGenerationBytes: youngGenerationBytes(), volumes: driver.backends.all.reduce((n, b) => n + b.count, 0), root: driver.config.root, mountTable: mountTableSource() });
}
