/**
 * The deployment as the replay needs it: what the rendered manifests say
 * about who runs the driver, with which flags, and who calls it.
 *
 * In Kubernetes a CSI driver never talks to the API server itself. Sidecar
 * containers beside it watch objects and call it over its unix socket:
 * csi-provisioner (claims → CreateVolume/DeleteVolume), csi-snapshotter
 * (snapshot contents → CreateSnapshot/DeleteSnapshot), csi-resizer (claim
 * size or VolumeAttributesClass → ControllerExpandVolume/ModifyVolume),
 * csi-attacher (VolumeAttachments → ControllerPublish/Unpublish). Which
 * driver process a call reaches is decided by which pod that sidecar sits
 * in: the node DaemonSet's driver or the controller Deployment's. The
 * kubelet always calls the node's. This module reads that routing, and
 * each driver container's arguments and volume mounts, from the objects.
 */
import { argsOf, at, containersOf, describe, isObject, list, nameOf, ofKind, podSpecOf, str, type Json, type JsonObject, type K8sObject } from "./k8s-objects";

/** The two driver processes a deployment runs: the node plugin and the controller. */
export type Process = "node" | "controller";

export const SIDECARS = ["csi-provisioner", "csi-snapshotter", "csi-resizer", "csi-attacher"] as const;
export type Sidecar = (typeof SIDECARS)[number];

export interface VolumeMount {
  /** where the container sees it */
  containerPath: string;
  /** a hostPath volume's path on the node; undefined for an emptyDir */
  hostPath: string | undefined;
  /** the volume's name, for an emptyDir's per-pod directory */
  volume: string;
  propagation: "None" | "HostToContainer" | "Bidirectional";
}

export interface DriverContainer {
  /** "DaemonSet/csi-lab/csi-lab-node" */
  workload: string;
  /** `driver …` with $(VAR) expanded from the container's env */
  args: string[];
  mounts: VolumeMount[];
}

export interface Deployment {
  driverName: string;
  /** CSIDriver spec */
  attachRequired: boolean;
  podInfoOnMount: boolean;
  fsGroupPolicy: string;
  /** the driver containers: a node plugin always, a controller when one is deployed */
  node: DriverContainer;
  controller: DriverContainer | undefined;
  /** which process each sidecar calls; undefined when the sidecar is not deployed */
  routes: Record<Sidecar, Process | undefined>;
  /** each deployed sidecar's arguments (--extra-create-metadata and the like) */
  sidecarArgs: Partial<Record<Sidecar, string[]>>;
  /** cluster-scoped objects the deployment installs: StorageClasses, VolumeSnapshotClasses… */
  objects: K8sObject[];
}

/** Values of the fieldRefs a container's env uses ($(NODE_ID) and the like). */
export interface PodFields {
  nodeName: string;
  podName?: string;
}

/** The repository's last path element: "registry.k8s.io/sig-storage/csi-resizer:v2" → "csi-resizer". */
export function imageName(image: string): string {
  const noDigest = image.split("@")[0]!;
  const lastSlash = noDigest.lastIndexOf("/");
  const tagAt = noDigest.indexOf(":", lastSlash + 1);
  const repo = tagAt >= 0 ? noDigest.slice(0, tagAt) : noDigest;
  return repo.slice(lastSlash + 1);
}

/** A container's args with $(VAR) expanded from its env, as the kubelet does. */
export function expandedArgs(container: JsonObject, namespace: string, fields: PodFields): string[] {
  const env = new Map<string, string>();
  for (const e of list(container.env).filter(isObject)) {
    const name = str(e.name);
    if (!name) continue;
    const field = str(at(e, "valueFrom", "fieldRef", "fieldPath"));
    const fromField =
      field === "spec.nodeName" ? fields.nodeName : field === "metadata.namespace" ? namespace : field === "metadata.name" ? (fields.podName ?? "pod") : "";
    env.set(name, str(e.value) ?? fromField);
  }
  return argsOf(container).map((a) => a.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, v: string) => env.get(v) ?? whole));
}

function mountsOf(container: JsonObject, pod: JsonObject): VolumeMount[] {
  const volumes = list(pod.volumes).filter(isObject);
  return list(container.volumeMounts)
    .filter(isObject)
    .map((m) => {
      const volume = volumes.find((v) => v.name === m.name);
      const propagation = str(m.mountPropagation);
      return {
        containerPath: str(m.mountPath) ?? "",
        hostPath: str(at(volume, "hostPath", "path")),
        volume: str(m.name) ?? "",
        propagation: propagation === "Bidirectional" || propagation === "HostToContainer" ? propagation : "None",
      };
    });
}

/** Read the deployment from rendered manifests (`kubectl kustomize deploy/kind`). */
export function deploymentFrom(objects: readonly K8sObject[], fields: PodFields): Deployment {
  const csiDriver = ofKind(objects, "CSIDriver")[0];
  if (!csiDriver) throw new Error("the manifests hold no CSIDriver");
  const drivers: { kind: string; container: DriverContainer }[] = [];
  const routes: Record<Sidecar, Process | undefined> = { "csi-provisioner": undefined, "csi-snapshotter": undefined, "csi-resizer": undefined, "csi-attacher": undefined };
  const sidecarsIn = new Map<string, Sidecar[]>();
  const sidecarArgs: Partial<Record<Sidecar, string[]>> = {};
  for (const o of objects) {
    const pod = podSpecOf(o);
    if (!pod || !["DaemonSet", "Deployment", "StatefulSet"].includes(o.kind)) continue;
    const namespace = str(o.metadata.namespace) ?? "default";
    for (const c of containersOf(o)) {
      const name = imageName(str(c.image) ?? "");
      const args = expandedArgs(c, namespace, fields);
      if (name === "csi-lab" && args[0] === "driver") drivers.push({ kind: o.kind, container: { workload: describe(o), args, mounts: mountsOf(c, pod) } });
      if ((SIDECARS as readonly string[]).includes(name)) {
        sidecarsIn.set(describe(o), [...(sidecarsIn.get(describe(o)) ?? []), name as Sidecar]);
        sidecarArgs[name as Sidecar] = args;
      }
    }
  }
  const node = drivers.find((d) => d.kind === "DaemonSet")?.container;
  if (!node) throw new Error("no DaemonSet runs `csi-lab driver`: there is no node plugin");
  const controller = drivers.find((d) => d.kind !== "DaemonSet")?.container;
  for (const [workload, sidecars] of sidecarsIn) {
    const process: Process | undefined = workload === node.workload ? "node" : workload === controller?.workload ? "controller" : undefined;
    if (!process) throw new Error(`${workload} runs ${sidecars.join(", ")} but no csi-lab driver`);
    for (const s of sidecars) routes[s] = process;
  }
  const spec = (key: string): Json | undefined => at(csiDriver, "spec", key);
  return {
    driverName: nameOf(csiDriver),
    attachRequired: spec("attachRequired") !== false,
    podInfoOnMount: spec("podInfoOnMount") === true,
    fsGroupPolicy: str(spec("fsGroupPolicy")) ?? "ReadWriteOnceWithFSType",
    node,
    controller,
    routes,
    sidecarArgs,
    objects: objects.filter((o) => ["StorageClass", "VolumeSnapshotClass", "VolumeAttributesClass"].includes(o.kind)),
  };
}

/** The value of --name=value (or --name value) in a driver's args. */
export function flag(args: readonly string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === `--${name}`) return args[i + 1];
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return undefined;
}
