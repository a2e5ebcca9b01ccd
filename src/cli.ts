/**
 * The `csi-lab` command.
 *
 *   csi-lab driver [flags]   run the CSI driver
 *   csi-lab rpc …            the RPC playground (see src/rpc-demo)
 *
 * Flags follow the conventions of the kubernetes-csi sidecars and drivers
 * (--endpoint, --node-id, and the CSI_ENDPOINT / NODE_ID environment
 * variables a DaemonSet sets), so the manifests read like any driver's.
 * With no flags at all the driver runs on embedded defaults inside the
 * current directory: socket .csi-lab/csi.sock, data .csi-lab/root.
 */
import * as path from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_CAPACITY_MODES, defaultConfig, openDriver, type DefaultCapacityMode, type DriverConfig, type Mode } from "./server/driver";
import { parseEndpoint } from "./server/endpoint";
import { createLogger, parseLevel } from "./server/logger";
import { parseHttpAddress, startMetricsServer } from "./server/metrics-http";
import { startServer, type RunningServer } from "./server/server";
import { setMountObserver } from "./mount/observer";
import { version } from "./server/version";

const USAGE = `csi-lab ${version} — a CSI driver and an RPC playground

Usage:
  csi-lab driver [flags]     serve the CSI Identity, Controller and Node services
  csi-lab rpc <command> …    the RPC playground (csi-lab rpc --help)
  csi-lab --version

Driver flags (environment fallbacks in brackets):
  --endpoint URL            unix:///abs/path.sock or tcp://host:port   [CSI_ENDPOINT]
                            default unix://$PWD/.csi-lab/csi.sock
  --node-id ID              this node's name                           [NODE_ID]  default: hostname
  --root DIR                where volumes live                         [CSI_LAB_ROOT] default .csi-lab/root
  --driver-name NAME        CSI driver name                            default csi-lab.example.org
  --mode all|controller|node  which services to serve                  default all
  --max-volumes-per-node N  reported by NodeGetInfo (0 = no limit)     default 0
                            and, with --enable-attach, enforced by ControllerPublishVolume
  --enable-attach           offer ControllerPublish/UnpublishVolume (attach)  default off
  --default-capacity-mode auto|quota|image|none
                            how sizes are enforced when a StorageClass
                            does not say (parameter capacity)         default auto
  --mount-timeout SECONDS   deadline of one mount of a shared volume   default 60
  --share-timeout SECONDS   deadline of one file operation on a share  default 30
  --mount-program PATH      mount(8) for shared volumes (tests use stand-ins) default mount
  --log-level debug|info|warn|error                                    [LOG_LEVEL] default info
  --metrics-address HOST:PORT  serve Prometheus /metrics and /healthz  [METRICS_ADDRESS] default off
                            (":9810" = every interface)
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
        throw new Error(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
    }
  } catch (err) {
    process.stderr.write(`csi-lab: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 2;
  }
}

export interface DriverArgs {
  config: DriverConfig;
  endpoint: string;
  logLevel: string;
  /** host:port for /metrics and /healthz; undefined = not served. */
  metricsAddress: string | undefined;
}

export function driverConfigFromArgs(args: string[], env: NodeJS.ProcessEnv = process.env): DriverArgs {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      endpoint: { type: "string" },
      "node-id": { type: "string" },
      root: { type: "string" },
      "driver-name": { type: "string" },
      mode: { type: "string" },
      "max-volumes-per-node": { type: "string" },
      "enable-attach": { type: "boolean" },
      "default-capacity-mode": { type: "string" },
      "mount-program": { type: "string" },
      "mount-timeout": { type: "string" },
      "share-timeout": { type: "string" },
      "log-level": { type: "string" },
      "metrics-address": { type: "string" },
    },
  });
  const mode = values.mode ?? "all";
  if (mode !== "all" && mode !== "controller" && mode !== "node") throw new Error(`--mode must be all, controller or node, not ${mode}`);
  const maxVolumes = Number(values["max-volumes-per-node"] ?? "0");
  if (!Number.isSafeInteger(maxVolumes) || maxVolumes < 0) throw new Error("--max-volumes-per-node must be a whole number ≥ 0");
  const capacityMode = values["default-capacity-mode"] ?? "auto";
  if (!(DEFAULT_CAPACITY_MODES as readonly string[]).includes(capacityMode)) {
    throw new Error(`--default-capacity-mode must be one of ${DEFAULT_CAPACITY_MODES.join(", ")}, not ${capacityMode}`);
  }
  const base = defaultConfig();
  const seconds = (flag: string, fallback: number): number => {
    const v = values[flag as "mount-timeout"];
    if (v === undefined) return fallback;
    const s = Number(v);
    if (!Number.isFinite(s) || s <= 0) throw new Error(`--${flag} must be a positive number of seconds`);
    return Math.round(s * 1000);
  };
  const nodeId = values["node-id"] ?? env.NODE_ID ?? base.nodeId;
  if (nodeId === "" || Buffer.byteLength(nodeId) > 128) throw new Error("--node-id must be 1 to 128 bytes");
  const driverName = values["driver-name"] ?? base.driverName;
  if (!/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/.test(driverName)) {
    throw new Error(`--driver-name ${JSON.stringify(driverName)} must be a DNS-style name of at most 63 characters`);
  }
  const root = path.resolve(values.root ?? env.CSI_LAB_ROOT ?? base.root);
  const endpoint = values.endpoint ?? env.CSI_ENDPOINT ?? `unix://${path.resolve(".csi-lab/csi.sock")}`;
  return {
    config: {
      ...base,
      driverName,
      nodeId,
      root,
      mode: mode as Mode,
      maxVolumesPerNode: maxVolumes,
      enableAttach: values["enable-attach"] === true,
      defaultCapacityMode: capacityMode as DefaultCapacityMode,
      mountProgram: values["mount-program"] ?? base.mountProgram,
      mountTimeoutMs: seconds("mount-timeout", base.mountTimeoutMs),
      shareTimeoutMs: seconds("share-timeout", base.shareTimeoutMs),
    },
    endpoint,
    logLevel: values["log-level"] ?? env.LOG_LEVEL ?? "info",
    metricsAddress: values["metrics-address"] ?? (env.METRICS_ADDRESS || undefined),
  };
}

async function runDriver(args: string[]): Promise<void> {
  const started = process.hrtime.bigint();
  const { config, endpoint, logLevel, metricsAddress } = driverConfigFromArgs(args);
  const httpAddress = metricsAddress === undefined ? undefined : parseHttpAddress(metricsAddress);
  const log = createLogger({ level: parseLevel(logLevel) });

  // Handlers go in before anything is announced: whoever reads "ready"
  // may send SIGTERM at once, and an unhandled SIGTERM would kill the
  // process without removing its socket.
  let server: RunningServer | undefined;
  let metricsServer: Awaited<ReturnType<typeof startMetricsServer>> | undefined;
  let signals = 0;
  const stop = (signal: string) => {
    signals++;
    if (signals > 1 || !server) {
      log.warn(server ? "second signal; exiting now" : "signal before the server started; exiting", { signal });
      process.exit(1);
    }
    log.info("signal received", { signal });
    Promise.all([server.shutdown(), metricsServer?.close()]).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error("shutdown failed", { error: String(err) });
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));

  const driver = await openDriver(config, log);
  // prom-client is loaded only when metrics are asked for: it costs start-up time.
  const metrics = httpAddress ? (await import("./server/metrics.js")).createMetrics(driver) : undefined;
  if (metrics) setMountObserver(metrics.onMount);
  server = await startServer(driver, parseEndpoint(endpoint), { onCall: metrics?.onCall });
  metricsServer = httpAddress && metrics ? await startMetricsServer(httpAddress, driver, metrics) : undefined;
  log.info("ready", { ms: Number(process.hrtime.bigint() - started) / 1e6, volumes: driver.hostpath.count, root: driver.config.root });
}
