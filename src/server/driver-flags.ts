/**
 * The driver's command line: every flag, its default, and its check.
 *
 * Flags follow the conventions of the kubernetes-csi sidecars and drivers
 * (--endpoint, --node-id, and the CSI_ENDPOINT / NODE_ID environment
 * variables a DaemonSet sets), so the manifests read like any driver's.
 * With no flags at all the driver runs on embedded defaults inside the
 * current directory: socket .csi-lab/csi.sock, data .csi-lab/root.
 *
 * Everything here is checked before the driver creates or changes anything
 * (preflight.ts then checks what the flags name on disk): a bad value is one
 * line naming the flag and the problem, and the process exits with status 2.
 * The table below is also the `csi-lab driver --help` text, so the two
 * cannot drift apart.
 */
import * as path from "node:path";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { cleanPathProblem, isAtOrUnder, systemPathProblem } from "../csi/system-paths";
import { serverProblem, sharePathProblem, type ShareLocation } from "../backends/nfs/volume-id";
import { DEFAULT_CAPACITY_MODES, defaultConfig, type DefaultCapacityMode, type DriverConfig, type Mode } from "./driver";
import { parseEndpoint, type Endpoint } from "./endpoint";
import { LEVELS, type Level } from "./logger";
import { parseHttpAddress, type HttpAddress } from "./http-address";
import { version } from "./version";

/** A problem with the command line: printed as one line, exit status 2. */
export class FlagError extends Error {
  override readonly name = "FlagError";
}

export const DEFAULT_KUBELET_DIR = "/var/lib/kubelet";

interface FlagHelp {
  flag: string;
  env?: string;
  default: string;
  help: string;
}

const HELP: FlagHelp[] = [
  { flag: "--endpoint URL", env: "CSI_ENDPOINT", default: "unix://$PWD/.csi-lab/csi.sock", help: "where to serve CSI: unix:///abs/path.sock, or tcp://127.0.0.1:PORT" },
  { flag: "--node-id ID", env: "NODE_ID", default: "the host name", help: "this node's name (NodeGetInfo, topology)" },
  { flag: "--root DIR", env: "CSI_LAB_ROOT", default: ".csi-lab/root", help: "where volumes and the driver's records live" },
  { flag: "--root-lock-timeout SECONDS", default: "60", help: "how long to wait for another driver on the same --root to exit (one driver per root; 0 = do not wait)" },
  { flag: "--kubelet-dir DIR", default: DEFAULT_KUBELET_DIR, help: "the kubelet's directory; staging and target paths must lie inside it (repeatable)" },
  { flag: "--driver-name NAME", default: "csi-lab.example.org", help: "CSI driver name (a StorageClass's provisioner)" },
  { flag: "--mode all|controller|node", default: "all", help: "which services to serve" },
  { flag: "--max-volumes-per-node N", default: "0", help: "reported by NodeGetInfo (0 = no limit); enforced by ControllerPublishVolume with --enable-attach" },
  { flag: "--enable-attach", default: "off", help: "offer ControllerPublish/UnpublishVolume (attach)" },
  { flag: "--default-capacity-mode auto|quota|image|none", default: "auto", help: "how sizes are enforced when a StorageClass has no capacity parameter" },
  { flag: "--allow-share SHARE", default: "none", help: "a share nfs volumes may live on: /local/path or server:/export (repeatable; shares below it too)" },
  { flag: "--mount-timeout SECONDS", default: "60", help: "deadline of one mount of a shared volume" },
  { flag: "--share-timeout SECONDS", default: "30", help: "deadline of one file operation on a share, and how long a copy there may make no progress" },
  { flag: "--mount-program PATH", default: "mount", help: "mount(8) for shared volumes (tests use stand-ins)" },
  { flag: "--socket-group GROUP", default: "none", help: "group (name or id) allowed to use the unix socket: mode 0660 instead of 0600" },
  { flag: "--allow-network-endpoint", default: "off", help: "allow a tcp:// endpoint on an address other than loopback (CSI has no authentication)" },
  { flag: "--log-level debug|info|warn|error", env: "LOG_LEVEL", default: "info", help: "debug also logs every request (secrets redacted)" },
  { flag: "--metrics-address HOST:PORT", env: "METRICS_ADDRESS", default: "off", help: "serve Prometheus /metrics, /healthz and the live call stream /events (\":9810\" = every interface)" },
];

export function driverUsage(): string {
  const rows = HELP.map((h) => {
    const env = h.env ? ` [${h.env}]` : "";
    return `  ${h.flag}\n      ${h.help}; default ${h.default}${env}`;
  });
  return `csi-lab driver ${version} — serve the CSI Identity, Controller and Node services

Usage: csi-lab driver [flags]

Flags (environment fallbacks in brackets):
${rows.join("\n")}
  -h, --help      this text
  --version       print the version

Example (a node plugin as a DaemonSet runs it):
  csi-lab driver --endpoint unix:///csi/csi.sock --node-id "$NODE_ID" \\
    --root /var/lib/csi-lab --kubelet-dir /var/lib/kubelet --mode node
`;
}

export interface DriverArgs {
  config: DriverConfig;
  endpoint: Endpoint;
  /** The endpoint came from the embedded default (its directory may be made). */
  defaultEndpoint: boolean;
  logLevel: Level;
  /** host:port for /metrics, /healthz and /events; undefined = not served. */
  metricsAddress: HttpAddress | undefined;
  /** How long to wait for another driver to let go of the root (storage/root-lock.ts); 0 = not at all. */
  rootLockTimeoutMs: number;
}

export const DEFAULT_ROOT_LOCK_TIMEOUT_MS = 60_000;

/** What the command line asks for besides running: help or the version. */
export type DriverCommand = { kind: "run"; args: DriverArgs } | { kind: "help" } | { kind: "version" };

export function parseDriverCommand(args: string[], env: NodeJS.ProcessEnv = process.env): DriverCommand {
  if (args.some((a) => a === "-h" || a === "--help")) return { kind: "help" };
  if (args.includes("--version")) return { kind: "version" };
  return { kind: "run", args: driverConfigFromArgs(args, env) };
}

type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig["options"]>;

const DRIVER_OPTIONS = {
  endpoint: { type: "string" },
  "node-id": { type: "string" },
  root: { type: "string" },
  "root-lock-timeout": { type: "string" },
  "kubelet-dir": { type: "string", multiple: true },
  "driver-name": { type: "string" },
  mode: { type: "string" },
  "max-volumes-per-node": { type: "string" },
  "enable-attach": { type: "boolean" },
  "default-capacity-mode": { type: "string" },
  "allow-share": { type: "string", multiple: true },
  "mount-program": { type: "string" },
  "mount-timeout": { type: "string" },
  "share-timeout": { type: "string" },
  "socket-group": { type: "string" },
  "allow-network-endpoint": { type: "boolean" },
  "log-level": { type: "string" },
  "metrics-address": { type: "string" },
} as const satisfies ParseArgsOptionsConfig;

/**
 * A flag that takes one value, given twice: which did the user mean?
 * node:util keeps the last one without a word (so "--mode bogus --mode node"
 * ran, its first value never checked). Repeatable flags may repeat.
 */
export function repeatedFlag(tokens: readonly { kind: string; name?: string; value?: string }[], options: ParseArgsOptionsConfig): string | undefined {
  const seen = new Map<string, string | undefined>();
  for (const t of tokens) {
    if (t.kind !== "option" || t.name === undefined) continue;
    const o = options[t.name];
    if (!o || o.type !== "string" || o.multiple) continue;
    if (seen.has(t.name)) return `--${t.name} is given twice (${JSON.stringify(seen.get(t.name))}, then ${JSON.stringify(t.value)}); give it once`;
    seen.set(t.name, t.value);
  }
  return undefined;
}

export function driverConfigFromArgs(args: string[], env: NodeJS.ProcessEnv = process.env): DriverArgs {
  let values;
  let tokens;
  try {
    ({ values, tokens } = parseArgs({
      args,
      strict: true,
      tokens: true,
      options: DRIVER_OPTIONS,
    }));
  } catch (err) {
    // node:util's messages run over several lines; a refused start is one.
    throw new FlagError(`${(err as Error).message.replace(/\s*\n\s*/g, " ")} (csi-lab driver --help lists the flags)`);
  }
  const repeated = repeatedFlag(tokens, DRIVER_OPTIONS);
  if (repeated) throw new FlagError(repeated);
  const base = defaultConfig();

  const mode = values.mode ?? "all";
  if (mode !== "all" && mode !== "controller" && mode !== "node") throw new FlagError(`--mode must be all, controller or node, not ${JSON.stringify(mode)}`);
  const maxText = values["max-volumes-per-node"] ?? "0";
  const maxVolumes = Number(maxText);
  if (!/^\d+$/.test(maxText) || !Number.isSafeInteger(maxVolumes)) throw new FlagError(`--max-volumes-per-node must be a whole number ≥ 0, not ${JSON.stringify(maxText)}`);
  const capacityMode = values["default-capacity-mode"] ?? "auto";
  if (!(DEFAULT_CAPACITY_MODES as readonly string[]).includes(capacityMode)) {
    throw new FlagError(`--default-capacity-mode must be one of ${DEFAULT_CAPACITY_MODES.join(", ")}, not ${JSON.stringify(capacityMode)}`);
  }
  const seconds = (flag: "mount-timeout" | "share-timeout" | "root-lock-timeout", fallback: number, least = 1): number => {
    const v = values[flag];
    if (v === undefined) return fallback;
    // Decimal seconds to the millisecond (Number() would also take "0x10" and "1e3"), at least `least` ms.
    const ms = /^\d+(\.\d{1,3})?$/.test(v) ? Math.round(Number(v) * 1000) : NaN;
    if (!(ms >= least && ms <= 86_400_000)) throw new FlagError(`--${flag} must be a number of seconds from ${least / 1000} to 86400, not ${JSON.stringify(v)}`);
    return ms;
  };
  const nodeId = values["node-id"] ?? env.NODE_ID ?? base.nodeId;
  if (nodeId === "" || Buffer.byteLength(nodeId) > 128 || /[\0-\x1f\x7f]/.test(nodeId)) throw new FlagError("--node-id must be 1 to 128 bytes of printable text");
  const driverName = values["driver-name"] ?? base.driverName;
  if (!/^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$/.test(driverName)) {
    throw new FlagError(`--driver-name ${JSON.stringify(driverName)} must be a DNS-style name of at most 63 characters`);
  }
  const level = values["log-level"] ?? env.LOG_LEVEL ?? "info";
  if (!(LEVELS as readonly string[]).includes(level)) throw new FlagError(`--log-level must be one of ${LEVELS.join(", ")}, not ${JSON.stringify(level)}`);

  const root = absoluteDir("--root", values.root ?? env.CSI_LAB_ROOT ?? base.root);
  const kubeletDirs = (values["kubelet-dir"] ?? [DEFAULT_KUBELET_DIR]).map((d) => absoluteDir("--kubelet-dir", d));
  for (const k of kubeletDirs) {
    if (isAtOrUnder(root, k)) throw new FlagError(`--root ${root} is inside --kubelet-dir ${k}: the driver's own records must not be where requests may point`);
    if (isAtOrUnder(k, root)) throw new FlagError(`--kubelet-dir ${k} is inside --root ${root}`);
  }
  const allowedShares = (values["allow-share"] ?? []).map((s) => parseAllowedShare(s, root, kubeletDirs));

  const endpointText = values.endpoint ?? env.CSI_ENDPOINT;
  let endpoint: Endpoint;
  try {
    endpoint = parseEndpoint(endpointText ?? `unix://${path.resolve(".csi-lab/csi.sock")}`);
  } catch (err) {
    throw new FlagError(`--endpoint: ${(err as Error).message}`);
  }
  const allowNetwork = values["allow-network-endpoint"] === true;
  if (endpoint.kind === "tcp" && !allowNetwork && !isLoopback(endpoint.host)) {
    throw new FlagError(
      `--endpoint ${endpointText}: CSI has no authentication, so a tcp endpoint binds loopback only (tcp://127.0.0.1:PORT); add --allow-network-endpoint to serve ${endpoint.host} anyway`,
    );
  }
  const mountProgram = values["mount-program"] ?? base.mountProgram;
  if (mountProgram === "" || /[\0\n]/.test(mountProgram) || (mountProgram.includes("/") && !path.isAbsolute(mountProgram))) {
    throw new FlagError(`--mount-program ${JSON.stringify(mountProgram)} must be a program name on PATH or an absolute path`);
  }
  const group = values["socket-group"];
  if (group !== undefined && !/^([0-9]{1,10}|[a-z_][a-z0-9_.-]{0,31}\$?)$/i.test(group)) throw new FlagError(`--socket-group ${JSON.stringify(group)} is not a group name or id`);

  let metricsAddress: HttpAddress | undefined;
  const metricsText = values["metrics-address"] ?? (env.METRICS_ADDRESS || undefined);
  if (metricsText !== undefined) {
    try {
      metricsAddress = parseHttpAddress(metricsText);
    } catch (err) {
      throw new FlagError((err as Error).message);
    }
  }

  const config: DriverConfig = {
    ...base,
    driverName,
    nodeId,
    root,
    kubeletDirs,
    allowedShares,
    mode: mode as Mode,
    maxVolumesPerNode: maxVolumes,
    enableAttach: values["enable-attach"] === true,
    defaultCapacityMode: capacityMode as DefaultCapacityMode,
    mountProgram,
    mountTimeoutMs: seconds("mount-timeout", base.mountTimeoutMs),
    shareTimeoutMs: seconds("share-timeout", base.shareTimeoutMs),
    socketGroup: group,
    allowNetworkEndpoint: allowNetwork,
  };
  const rootLockTimeoutMs = seconds("root-lock-timeout", DEFAULT_ROOT_LOCK_TIMEOUT_MS, 0);
  return { config, endpoint, defaultEndpoint: endpointText === undefined, logLevel: level as Level, metricsAddress, rootLockTimeoutMs };
}

/** An absolute, clean directory path that is not a system location. */
function absoluteDir(flag: string, value: string): string {
  if (value === "" || value.includes("\0")) throw new FlagError(`${flag} must name a directory`);
  const abs = path.resolve(value);
  const problem = systemPathProblem(abs);
  if (problem) throw new FlagError(`${flag} ${value}: ${problem}; choose a directory of its own`);
  return abs;
}

/** `--allow-share /path` or `--allow-share server:/path` (IPv6: [addr]:/path). */
export function parseAllowedShare(spec: string, root: string, kubeletDirs: readonly string[]): ShareLocation {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^/:[\]][^/:]*)):(\/.*)$/.exec(spec);
  const share: ShareLocation = spec.startsWith("/") ? { server: "", share: spec } : m ? { server: m[1] ?? m[2]!, share: m[3]! } : { server: "?", share: "" };
  if (share.server === "?") throw new FlagError(`--allow-share ${JSON.stringify(spec)} must be /local/path or server:/export`);
  const problem = serverProblem(share.server) ?? sharePathProblem(share.share) ?? cleanPathProblem(share.share);
  if (problem) throw new FlagError(`--allow-share ${JSON.stringify(spec)}: ${problem}`);
  const system = systemPathProblem(share.share);
  if (system && !share.server) throw new FlagError(`--allow-share ${spec}: ${system}; a share is a directory of its own`);
  if (share.share === "/") throw new FlagError(`--allow-share ${spec}: a whole server's root is not a share; name the export`);
  if (!share.server) {
    for (const d of [root, ...kubeletDirs]) {
      if (isAtOrUnder(share.share, d) || isAtOrUnder(d, share.share)) throw new FlagError(`--allow-share ${spec} overlaps ${d}, the driver's or the kubelet's own directory`);
    }
  }
  return share;
}

/** Is `host` a loopback address (or "localhost")? */
export function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}
