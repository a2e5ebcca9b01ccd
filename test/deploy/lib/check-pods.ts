/**
 * Cross-checks inside each pod: what must agree between the driver and
 * the sidecars beside it, and between them and the node.
 *
 *  - the driver's command line is accepted by the driver's own parser
 *    (src/cli.ts), which also says its name, endpoint and mode
 *  - every sidecar's --csi-address is the driver's socket (same volume,
 *    same file name); the registrar's --kubelet-registration-path is that
 *    socket as the kubelet sees it on the host
 *  - the kubelet's directories are mounted at their host paths with
 *    Bidirectional propagation, in a privileged driver container
 *  - probes point at ports that exist and at the right server
 *  - per-node sidecars run in a DaemonSet with NODE_NAME, central ones
 *    with leader election; sidecar images are pinned releases
 */
import * as path from "node:path";
import type { DriverConfig } from "../../../src/server/driver";
import { driverConfigFromArgs } from "../../../src/server/driver-flags";
import { formatEndpoint } from "../../../src/server/endpoint";
import { at, isObject, list, str } from "./objects";
import {
  addressPort,
  arg,
  envOf,
  hostPathOf,
  mountsOf,
  portNumber,
  socketPath,
  volumeMountedAt,
  volumeNamed,
  workloadsOf,
  type Container,
  type Workload,
} from "./workloads";
import type { K8sObject } from "./objects";

export interface DriverInstance {
  workload: Workload;
  container: Container;
  /** The driver's configuration, as its own flag parser reads the container's arguments. */
  config: DriverConfig;
  driverName: string;
  mode: string;
  socket: string;
  metricsPort: number | undefined;
}

const PINNED = /^registry\.k8s\.io\/sig-storage\/[a-z-]+:v\d+\.\d+\.\d+$/;
const CONTROLLER_SIDECARS = new Set(["csi-provisioner", "csi-resizer", "csi-snapshotter", "csi-attacher"]);
const LIVENESS_DEFAULT_PORT = 9808;

/** Every driver container, read through the driver's own flag parser. */
export function driverInstances(objects: readonly K8sObject[], problems: string[] = []): DriverInstance[] {
  const out: DriverInstance[] = [];
  for (const w of workloadsOf(objects)) {
    for (const c of w.containers.filter((x) => x.role === "driver")) {
      try {
        const parsed = driverConfigFromArgs(c.args.slice(1), {});
        const endpoint = parsed.endpoint;
        if (endpoint.kind !== "unix") throw new Error(`endpoint ${formatEndpoint(endpoint)} is not a unix socket`);
        out.push({
          workload: w,
          container: c,
          config: parsed.config,
          driverName: parsed.config.driverName,
          mode: parsed.config.mode,
          socket: endpoint.path,
          metricsPort: parsed.metricsAddress?.port,
        });
      } catch (err) {
        problems.push(`${w.label} container ${c.name}: the driver would refuse its arguments: ${(err as Error).message}`);
      }
    }
  }
  return out;
}

export function checkPods(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  const drivers = driverInstances(objects, problems);
  for (const w of workloadsOf(objects)) {
    const csi = w.containers.filter((c) => c.role !== undefined);
    if (csi.length === 0) continue;
    const inPod = drivers.filter((d) => d.workload.object === w.object);
    if (inPod.length !== 1) {
      problems.push(`${w.label}: has CSI sidecars but ${inPod.length} driver containers (want 1)`);
      continue;
    }
    const d = inPod[0]!;
    checkMounts(w, problems);
    checkPorts(w, problems);
    for (const c of csi) {
      const where = `${w.label} container ${c.name}`;
      if (c.role !== "driver" && !PINNED.test(c.image)) problems.push(`${where}: image ${c.image} is not a pinned kubernetes-csi release`);
      if (c.role === "driver" || c.role === undefined) continue;
      if (!sameSocket(w, d, c, arg(c, "csi-address"))) {
        problems.push(`${where}: --csi-address ${arg(c, "csi-address")} is not the driver's socket ${d.socket} (same volume and file name)`);
      }
      if (CONTROLLER_SIDECARS.has(c.role) && d.mode === "node") problems.push(`${where}: needs the Controller service, but the driver runs --mode=node`);
      checkPlacement(w, c, where, problems);
    }
    const registrar = csi.find((c) => c.role === "csi-node-driver-registrar");
    if (registrar) checkNodePlugin(w, d, registrar, problems);
    checkProbes(w, d, problems);
  }
  return problems;
}

/** Both name the same file: the same volume, mounted where each expects, and the same file name. */
function sameSocket(w: Workload, d: DriverInstance, c: Container, address: string | undefined): boolean {
  const p = socketPath(address);
  if (!p || path.basename(p) !== path.basename(d.socket)) return false;
  const mine = str(volumeMountedAt(c, path.dirname(p))?.name);
  const theirs = str(volumeMountedAt(d.container, path.dirname(d.socket))?.name);
  return mine !== undefined && mine === theirs && volumeNamed(w, mine) !== undefined;
}

function checkNodePlugin(w: Workload, d: DriverInstance, registrar: Container, problems: string[]): void {
  const where = `${w.label}`;
  if (w.object.kind !== "DaemonSet") problems.push(`${where}: node-driver-registrar must run in a DaemonSet (one per node)`);
  if (d.mode === "controller") problems.push(`${where}: node-driver-registrar needs the Node service, but the driver runs --mode=controller`);
  const regVolume = str(volumeMountedAt(registrar, "/registration")?.name);
  const regHost = regVolume ? hostPathOf(w, regVolume) : undefined;
  if (!regHost || path.basename(regHost) !== "plugins_registry") {
    problems.push(`${where}: node-driver-registrar must mount the kubelet's plugins_registry directory at /registration`);
    return;
  }
  const kubeletDir = path.dirname(regHost);
  if (!d.config.kubeletDirs.includes(kubeletDir)) {
    problems.push(`${where}: the kubelet's directory is ${kubeletDir}, but the driver's --kubelet-dir is ${d.config.kubeletDirs.join(", ")}: it would refuse every staging and target path`);
  }
  const socketVolume = str(volumeMountedAt(d.container, path.dirname(d.socket))?.name);
  const socketHost = socketVolume ? hostPathOf(w, socketVolume) : undefined;
  const expected = socketHost ? path.join(socketHost, path.basename(d.socket)) : undefined;
  const registration = arg(registrar, "kubelet-registration-path");
  if (registration === undefined || registration !== expected) {
    problems.push(`${where}: --kubelet-registration-path ${registration} is not the driver's socket on the host (${expected ?? "its socket directory is not a hostPath"})`);
  }
  if (socketHost && !socketHost.startsWith(kubeletDir + "/plugins/")) {
    problems.push(`${where}: the socket directory ${socketHost} is not under the kubelet's ${kubeletDir}/plugins`);
  }
  for (const sub of ["pods", "plugins"]) {
    const host = path.join(kubeletDir, sub);
    const m = mountsOf(d.container).find((x) => str(x.name) !== undefined && hostPathOf(w, str(x.name)!) === host);
    if (!m) problems.push(`${where}: the driver does not mount the kubelet's ${host}`);
    else {
      if (m.mountPath !== host) problems.push(`${where}: the driver mounts ${host} at ${String(m.mountPath)}; the kubelet passes host paths, so they must be equal`);
      if (m.mountPropagation !== "Bidirectional") problems.push(`${where}: ${host} must be mounted with Bidirectional propagation`);
    }
  }
  if (at(d.container.spec, "securityContext", "privileged") !== true) problems.push(`${where}: the driver container must be privileged to mount`);
}

function checkMounts(w: Workload, problems: string[]): void {
  for (const c of w.containers) {
    for (const m of mountsOf(c)) {
      if (!volumeNamed(w, String(m.name))) problems.push(`${w.label} container ${c.name}: mounts volume ${String(m.name)}, which the pod does not declare`);
      if (m.mountPropagation === "Bidirectional" && at(c.spec, "securityContext", "privileged") !== true) {
        problems.push(`${w.label} container ${c.name}: Bidirectional propagation needs a privileged container`);
      }
      // Paths the driver mounts under and hands back (kubelet directories,
      // its own root) must read the same inside and outside the container.
      const host = hostPathOf(w, String(m.name));
      if (m.mountPropagation === "Bidirectional" && host !== undefined && host !== m.mountPath) {
        problems.push(`${w.label} container ${c.name}: host path ${host} is mounted at ${String(m.mountPath)}; with Bidirectional propagation they must be equal`);
      }
    }
  }
}

function checkPorts(w: Workload, problems: string[]): void {
  const seen = new Map<number, string>();
  for (const c of w.containers) {
    for (const p of list(c.spec.ports).filter(isObject)) {
      const n = p.containerPort;
      if (typeof n !== "number") continue;
      const other = seen.get(n);
      if (other) problems.push(`${w.label}: port ${n} is declared by both ${other} and ${c.name} (one network namespace)`);
      seen.set(n, c.name);
    }
    const listens = arg(c, "http-endpoint") ?? (c.role === "livenessprobe" ? `:${arg(c, "health-port") ?? LIVENESS_DEFAULT_PORT}` : undefined);
    const port = addressPort(listens);
    if (port !== undefined && c.role !== "livenessprobe" && ![...list(c.spec.ports)].some((p) => isObject(p) && p.containerPort === port)) {
      problems.push(`${w.label} container ${c.name}: listens on ${port} but does not declare that port`);
    }
    for (const probe of ["livenessProbe", "readinessProbe", "startupProbe"]) {
      const p = at(c.spec, probe, "httpGet", "port");
      if (p !== undefined && portNumber(c, typeof p === "number" || typeof p === "string" ? p : undefined) === undefined) {
        problems.push(`${w.label} container ${c.name}: ${probe} uses port ${String(p)}, which the container does not declare`);
      }
    }
  }
}

/** The driver's liveness probe must reach the livenessprobe sidecar; its readiness probe its own /healthz. */
function checkProbes(w: Workload, d: DriverInstance, problems: string[]): void {
  const c = d.container;
  const liveness = w.containers.find((x) => x.role === "livenessprobe");
  const livePort = portNumber(c, asPort(at(c.spec, "livenessProbe", "httpGet", "port")));
  if (liveness) {
    const sidecarPort = Number(arg(liveness, "health-port") ?? LIVENESS_DEFAULT_PORT);
    if (livePort !== sidecarPort) problems.push(`${w.label}: the driver's livenessProbe port ${livePort} is not livenessprobe's --health-port ${sidecarPort}`);
    if (!sameSocket(w, d, liveness, arg(liveness, "csi-address"))) problems.push(`${w.label}: livenessprobe does not probe the driver's socket`);
  } else if (livePort !== undefined && livePort !== d.metricsPort) {
    problems.push(`${w.label}: the driver's livenessProbe port ${livePort} is served by nothing in the pod`);
  }
  const ready = portNumber(c, asPort(at(c.spec, "readinessProbe", "httpGet", "port")));
  if (ready !== undefined && ready !== d.metricsPort) problems.push(`${w.label}: the driver's readinessProbe port ${ready} is not its --metrics-address port ${d.metricsPort}`);
}

function asPort(v: unknown): string | number | undefined {
  return typeof v === "string" || typeof v === "number" ? v : undefined;
}

function checkPlacement(w: Workload, c: Container, where: string, problems: string[]): void {
  const perNode = arg(c, "node-deployment") === "true";
  if (perNode) {
    if (w.object.kind !== "DaemonSet") problems.push(`${where}: --node-deployment belongs in a DaemonSet`);
    const nodeName = envOf(c, "NODE_NAME");
    if (at(nodeName, "valueFrom", "fieldRef", "fieldPath") !== "spec.nodeName") problems.push(`${where}: --node-deployment needs NODE_NAME from spec.nodeName`);
    if (arg(c, "leader-election") === "true") problems.push(`${where}: --node-deployment and --leader-election exclude each other`);
  } else if (c.role !== "livenessprobe" && c.role !== "csi-node-driver-registrar") {
    if (w.object.kind === "DaemonSet") problems.push(`${where}: a controller sidecar in a DaemonSet needs --node-deployment, or every node would act on every volume`);
    else if (arg(c, "leader-election") !== "true") problems.push(`${where}: a central sidecar needs --leader-election (a rolling update runs two)`);
  }
  if (c.role === "csi-provisioner" && arg(c, "enable-capacity") === "true") {
    for (const v of ["NAMESPACE", "POD_NAME"]) if (!envOf(c, v)) problems.push(`${where}: --enable-capacity needs the ${v} environment variable`);
  }
}
