/**
 * The deployment read as CSI sees it: which pods run the driver, which
 * sidecars sit beside it, where their sockets and host paths are.
 *
 * Containers are recognised by image: the kubernetes-csi sidecars by their
 * registry.k8s.io/sig-storage/<name> repository, the driver by running
 * `csi-lab driver`. Arguments are read the way the kubelet would pass
 * them, with $(VAR) expanded from the container's env.
 */
import * as path from "node:path";
import { argsOf, at, containersOf, describe, isObject, list, podSpecOf, str, type JsonObject, type K8sObject } from "./objects";

export const SIDECARS = [
  "csi-provisioner",
  "csi-node-driver-registrar",
  "livenessprobe",
  "csi-snapshotter",
  "csi-resizer",
  "csi-attacher",
] as const;
export type Sidecar = (typeof SIDECARS)[number];

export interface Container {
  name: string;
  spec: JsonObject;
  image: string;
  /** args with $(VAR) expanded */
  args: string[];
  /** which sidecar, or "driver", or undefined for anything else */
  role: Sidecar | "driver" | undefined;
}

export interface Workload {
  object: K8sObject;
  label: string;
  namespace: string;
  pod: JsonObject;
  containers: Container[];
}

const WORKLOAD_KINDS = new Set(["DaemonSet", "Deployment", "StatefulSet", "Pod"]);

export function workloadsOf(objects: readonly K8sObject[]): Workload[] {
  const out: Workload[] = [];
  for (const o of objects) {
    const pod = podSpecOf(o);
    if (!WORKLOAD_KINDS.has(o.kind) || !pod) continue;
    const namespace = str(o.metadata.namespace) ?? "default";
    const containers = containersOf(o).map((c) => container(c, namespace));
    out.push({ object: o, label: describe(o), namespace, pod, containers });
  }
  return out;
}

/** The repository's last path element: "registry.k8s.io/sig-storage/csi-resizer:v2" → "csi-resizer". */
export function imageName(image: string): string {
  const noDigest = image.split("@")[0]!;
  const lastSlash = noDigest.lastIndexOf("/");
  const tagAt = noDigest.indexOf(":", lastSlash + 1);
  return path.posix.basename(tagAt >= 0 ? noDigest.slice(0, tagAt) : noDigest);
}

function container(c: JsonObject, namespace: string): Container {
  const image = str(c.image) ?? "";
  const env = new Map<string, string>();
  for (const e of list(c.env).filter(isObject)) {
    const name = str(e.name);
    if (!name) continue;
    const field = str(at(e, "valueFrom", "fieldRef", "fieldPath"));
    const value = str(e.value) ?? (field === "spec.nodeName" ? "node-1" : field === "metadata.namespace" ? namespace : field === "metadata.name" ? "pod-1" : "");
    env.set(name, value);
  }
  const args = argsOf(c).map((a) => a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, v: string) => env.get(v) ?? whole));
  const base = imageName(image);
  const role = (SIDECARS as readonly string[]).includes(base) ? (base as Sidecar) : base === "csi-lab" && args[0] === "driver" ? "driver" : undefined;
  return { name: str(c.name) ?? "", spec: c, image, args, role };
}

/** --name=value from expanded args ("true" for a bare --name). */
export function arg(c: Container, name: string): string | undefined {
  for (const a of c.args) {
    const m = /^--?([^=]+)(?:=(.*))?$/.exec(a);
    if (m && m[1] === name) return m[2] ?? "true";
  }
  return undefined;
}

export function envOf(c: Container, name: string): JsonObject | undefined {
  return list(c.spec.env).filter(isObject).find((e) => e.name === name);
}

export function volumeNamed(w: Workload, name: string): JsonObject | undefined {
  return list(w.pod.volumes).filter(isObject).find((v) => v.name === name);
}

export function hostPathOf(w: Workload, volume: string): string | undefined {
  return str(at(volumeNamed(w, volume), "hostPath", "path"));
}

export function mountsOf(c: Container): JsonObject[] {
  return list(c.spec.volumeMounts).filter(isObject);
}

/** The volume mounted at exactly `dir` in the container, if any. */
export function volumeMountedAt(c: Container, dir: string): JsonObject | undefined {
  return mountsOf(c).find((m) => str(m.mountPath) === dir);
}

/** A container port by name or number → its number. */
export function portNumber(c: Container, port: string | number | undefined): number | undefined {
  if (typeof port === "number") return port;
  const p = list(c.spec.ports).filter(isObject).find((x) => x.name === port);
  return typeof p?.containerPort === "number" ? p.containerPort : undefined;
}

/** The port of an address like ":9809", "0.0.0.0:9809" or "[::]:9809". */
export function addressPort(address: string | undefined): number | undefined {
  const m = /:(\d+)$/.exec(address ?? "");
  return m ? Number(m[1]) : undefined;
}

/** Path of a socket named by --csi-address or an endpoint (unix:// stripped). */
export function socketPath(address: string | undefined): string | undefined {
  if (!address) return undefined;
  return address.replace(/^unix:\/\//, "").replace(/^unix:/, "");
}
