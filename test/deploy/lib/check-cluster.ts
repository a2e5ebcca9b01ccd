/**
 * Cross-checks across objects: names that must agree, accounts and
 * permissions that must line up with the pods, and the sidecars that the
 * driver's advertised capabilities call for.
 *
 *  - one CSIDriver; every driver container, StorageClass, snapshot class
 *    and attributes class names it
 *  - every pod's ServiceAccount exists; every binding's subject and role
 *    exist; each account can do what its sidecars must do and holds no
 *    role that none of its sidecars needs (least privilege)
 *  - capabilities ⇄ sidecars: a sidecar without its capability exits at
 *    start-up, a capability without its sidecar is never used
 *  - every nfs StorageClass's share is one each driver may use (--allow-share)
 *  - every local share a driver may use is mounted into its container
 */
import { ATTACH_CAPABILITIES } from "../../../src/controller/controller-get-capabilities";
import {
  ControllerServiceCapability_RPC_Type as Ctl,
  NodeServiceCapability_RPC_Type as NodeCap,
  PluginCapability_Service_Type as Plugin,
} from "../../../src/gen/csi";
import { BACKEND_NAMES } from "../../../src/backends";
import { isShareAllowed } from "../../../src/backends/nfs/allowed-shares";
import { driverInstances, type DriverInstance } from "./check-pods";
import { at, describe, isObject, list, nameOf, namespaceOf, ofKind, str, type Json, type K8sObject } from "./objects";
import { arg, hostPathOf, mountsOf, workloadsOf, type Sidecar } from "./workloads";

export interface Capabilities {
  plugin: readonly Plugin[];
  controller: readonly Ctl[];
  node: readonly NodeCap[];
}

/** Accounts that live outside our manifests but that we grant rights to. */
const EXTERNAL_ACCOUNTS = new Set(["kube-system/snapshot-controller"]);

/**
 * What each sidecar cannot work without, as [apiGroup, resource, verb,
 * scope]. Used both ways: the account must have these, and every role
 * bound to it must grant at least one of its sidecars' needs.
 */
type Need = [group: string, resource: string, verb: string, scope: "cluster" | "namespace"];
const NEEDS: Record<Sidecar, (c: { leader: boolean; capacity: boolean }) => Need[]> = {
  "csi-provisioner": ({ capacity }) => [
    ["", "persistentvolumes", "create", "cluster"],
    ["", "persistentvolumeclaims", "watch", "cluster"],
    ["storage.k8s.io", "storageclasses", "watch", "cluster"],
    ["", "nodes", "get", "cluster"],
    ["storage.k8s.io", "csinodes", "get", "cluster"],
    ...(capacity ? ([["storage.k8s.io", "csistoragecapacities", "create", "namespace"], ["", "pods", "get", "namespace"]] as Need[]) : []),
  ],
  "csi-snapshotter": () => [
    ["snapshot.storage.k8s.io", "volumesnapshotcontents", "update", "cluster"],
    ["snapshot.storage.k8s.io", "volumesnapshotcontents/status", "patch", "cluster"],
    ["snapshot.storage.k8s.io", "volumesnapshotclasses", "get", "cluster"],
  ],
  "csi-resizer": () => [
    ["", "persistentvolumes", "patch", "cluster"],
    ["", "persistentvolumeclaims/status", "patch", "cluster"],
  ],
  "csi-attacher": () => [
    ["storage.k8s.io", "volumeattachments", "patch", "cluster"],
    ["storage.k8s.io", "volumeattachments/status", "patch", "cluster"],
  ],
  "csi-node-driver-registrar": () => [],
  livenessprobe: () => [],
};
const LEADER_NEED: Need = ["coordination.k8s.io", "leases", "create", "namespace"];

export function checkCluster(objects: readonly K8sObject[], caps: Capabilities): string[] {
  const problems: string[] = [];
  const drivers = driverInstances(objects, problems);
  const csiDrivers = ofKind(objects, "CSIDriver");
  if (csiDrivers.length !== 1) problems.push(`want exactly one CSIDriver, found ${csiDrivers.length}`);
  const driverName = csiDrivers[0] ? nameOf(csiDrivers[0]) : undefined;

  // Names.
  for (const d of drivers) {
    if (d.driverName !== driverName) problems.push(`${d.workload.label}: the driver runs as ${d.driverName}, the CSIDriver is ${driverName}`);
  }
  problems.push(...checkDriverNames(objects, driverName));
  for (const sc of ofKind(objects, "StorageClass")) problems.push(...checkStorageClass(sc));
  problems.push(...checkAllowedShares(objects, drivers));
  problems.push(...checkLocalSharesMounted(drivers));

  // Accounts and permissions.
  problems.push(...checkAccounts(objects));

  // Capabilities and sidecars.
  problems.push(...checkCapabilities(objects, caps, csiDrivers[0]));
  return problems;
}

/** Every object that names a CSI driver names ours. */
export function checkDriverNames(objects: readonly K8sObject[], driverName: string | undefined): string[] {
  const problems: string[] = [];
  const expect = (o: K8sObject, field: string, value: Json | undefined) => {
    if (value !== driverName) problems.push(`${describe(o)}: ${field} is ${JSON.stringify(value)}, the CSIDriver is ${driverName}`);
  };
  for (const o of objects) {
    if (o.kind === "StorageClass") expect(o, "provisioner", o.provisioner);
    if (o.kind === "VolumeSnapshotClass") expect(o, "driver", o.driver);
    if (o.kind === "VolumeAttributesClass") expect(o, "driverName", o.driverName);
    if (o.kind === "PersistentVolume") expect(o, "spec.csi.driver", at(o, "spec", "csi", "driver"));
    for (const w of workloadsOf([o])) {
      for (const v of list(w.pod.volumes).filter(isObject)) if (isObject(v.csi)) expect(o, `volume ${String(v.name)} csi.driver`, v.csi.driver);
    }
  }
  return problems;
}

/** Every nfs StorageClass among `classes` names a share that every driver may use, or CreateVolume and NodeStageVolume refuse it. */
export function checkAllowedShares(classes: readonly K8sObject[], drivers: readonly DriverInstance[]): string[] {
  const problems: string[] = [];
  for (const sc of ofKind(classes, "StorageClass")) {
    if (str(at(sc, "parameters", "backend")) !== "nfs") continue;
    const share = { server: str(at(sc, "parameters", "server")) ?? "", share: str(at(sc, "parameters", "share")) ?? "" };
    for (const d of drivers) {
      if (!isShareAllowed(d.config.allowedShares, share)) {
        problems.push(`${describe(sc)}: share ${share.server ? `${share.server}:` : ""}${share.share} is not allowed by ${d.workload.label}'s driver (--allow-share)`);
      }
    }
  }
  return problems;
}

/**
 * A local share (--allow-share with no server) is a directory the driver
 * works in directly, so its container must see it: a hostPath volume
 * mounted at or above it. (An export on a server the driver mounts itself.)
 */
export function checkLocalSharesMounted(drivers: readonly DriverInstance[]): string[] {
  const problems: string[] = [];
  for (const d of drivers) {
    for (const s of d.config.allowedShares.filter((x) => !x.server)) {
      const mounted = mountsOf(d.container).some((m) => {
        const at = str(m.mountPath);
        return at !== undefined && hostPathOf(d.workload, String(m.name)) !== undefined && (s.share === at || s.share.startsWith(at.replace(/\/$/, "") + "/"));
      });
      if (!mounted) problems.push(`${d.workload.label} container ${d.container.name}: --allow-share ${s.share} is a local share, but no hostPath volume is mounted there: the driver would find no such directory`);
    }
  }
  return problems;
}

const BACKENDS = new Set(BACKEND_NAMES);
/** Backends whose volumes live on one node: their classes must wait for the pod's node. */
const NODE_LOCAL = new Set(["hostpath", "memory"]);

function checkStorageClass(sc: K8sObject): string[] {
  const problems: string[] = [];
  const backend = str(at(sc, "parameters", "backend")) ?? "hostpath";
  if (!BACKENDS.has(backend)) problems.push(`${describe(sc)}: backend ${backend} is not one of ${[...BACKENDS].join(", ")}`);
  if (NODE_LOCAL.has(backend) && sc.volumeBindingMode !== "WaitForFirstConsumer") {
    problems.push(`${describe(sc)}: ${backend} volumes are node-local and need volumeBindingMode WaitForFirstConsumer`);
  }
  if (backend === "nfs" && !str(at(sc, "parameters", "share"))) problems.push(`${describe(sc)}: the nfs backend needs a share`);
  return problems;
}

interface Grant {
  role: K8sObject;
  scope: "cluster" | "namespace";
}

function grants(role: K8sObject, need: Need): boolean {
  return list(role.rules).some(
    (r) =>
      isObject(r) &&
      list(r.apiGroups).some((g) => g === need[0] || g === "*") &&
      list(r.resources).some((x) => x === need[1] || x === "*") &&
      list(r.verbs).some((v) => v === need[2] || v === "*"),
  );
}

function checkAccounts(objects: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  const accounts = new Set(ofKind(objects, "ServiceAccount").map((o) => `${namespaceOf(o) ?? "default"}/${nameOf(o)}`));
  const bound = new Map<string, Grant[]>();
  for (const b of [...ofKind(objects, "ClusterRoleBinding"), ...ofKind(objects, "RoleBinding")]) {
    const roleKind = str(at(b, "roleRef", "kind"));
    const roleName = str(at(b, "roleRef", "name"));
    const ns = namespaceOf(b);
    const role = objects.find((o) => o.kind === roleKind && nameOf(o) === roleName && (roleKind === "ClusterRole" || namespaceOf(o) === ns));
    if (!role) problems.push(`${describe(b)}: roleRef ${roleKind}/${roleName} does not exist`);
    for (const s of list(b.subjects).filter(isObject)) {
      if (s.kind !== "ServiceAccount") continue;
      const key = `${str(s.namespace) ?? ns ?? "default"}/${String(s.name)}`;
      if (!accounts.has(key) && !EXTERNAL_ACCOUNTS.has(key)) problems.push(`${describe(b)}: subject ServiceAccount ${key} does not exist`);
      if (role) bound.set(key, [...(bound.get(key) ?? []), { role, scope: b.kind === "ClusterRoleBinding" ? "cluster" : "namespace" }]);
    }
  }
  const needsOf = new Map<string, Need[]>();
  for (const w of workloadsOf(objects)) {
    const sa = `${w.namespace}/${str(w.pod.serviceAccountName) ?? "default"}`;
    if (!accounts.has(sa)) problems.push(`${w.label}: serviceAccountName ${sa} does not exist`);
    const needs = needsOf.get(sa) ?? [];
    for (const c of w.containers) {
      if (c.role === undefined || c.role === "driver") continue;
      needs.push(...NEEDS[c.role]({ leader: arg(c, "leader-election") === "true", capacity: arg(c, "enable-capacity") === "true" }));
      if (arg(c, "leader-election") === "true") needs.push(LEADER_NEED);
    }
    needsOf.set(sa, needs);
  }
  for (const [sa, needs] of needsOf) {
    const have = bound.get(sa) ?? [];
    for (const n of needs) {
      if (!have.some((g) => (n[3] === "namespace" || g.scope === "cluster") && grants(g.role, n))) {
        problems.push(`ServiceAccount ${sa}: a sidecar it runs needs ${n[2]} ${n[1]}${n[0] ? "." + n[0] : ""}, which no role bound to it grants`);
      }
    }
    for (const g of have) {
      if (!needs.some((n) => grants(g.role, n))) problems.push(`ServiceAccount ${sa}: ${describe(g.role)} is bound to it, but none of its sidecars needs it`);
    }
  }
  return problems;
}

function checkCapabilities(objects: readonly K8sObject[], caps: Capabilities, csiDriver: K8sObject | undefined): string[] {
  const problems: string[] = [];
  const containers = workloadsOf(objects).flatMap((w) => w.containers);
  const deployed = (s: Sidecar) => containers.filter((c) => c.role === s);
  const want = (sidecar: Sidecar, needed: boolean, because: string) => {
    const present = deployed(sidecar).length > 0;
    if (needed && !present) problems.push(`the driver advertises ${because}, but no ${sidecar} is deployed`);
    if (!needed && present) problems.push(`${sidecar} is deployed, but the driver does not advertise ${because}; it would exit at start-up or never get work`);
  };
  // Attach is switched on by a driver flag; what the driver advertises
  // then depends on the arguments it is deployed with.
  const drivers = containers.filter((c) => c.role === "driver");
  const attachOn = drivers.filter((c) => c.args.includes("--enable-attach"));
  if (attachOn.length > 0 && attachOn.length < drivers.length) {
    problems.push(`--enable-attach is given to ${attachOn.length} of ${drivers.length} driver containers; give it to all or none`);
  }
  const ctl = new Set([...caps.controller, ...(attachOn.length > 0 ? ATTACH_CAPABILITIES : [])]);
  const node = new Set(caps.node);
  const controllerService = caps.plugin.includes(Plugin.CONTROLLER_SERVICE);
  want("csi-provisioner", controllerService && ctl.has(Ctl.CREATE_DELETE_VOLUME), "CREATE_DELETE_VOLUME");
  want("csi-snapshotter", ctl.has(Ctl.CREATE_DELETE_SNAPSHOT), "CREATE_DELETE_SNAPSHOT");
  want("csi-resizer", ctl.has(Ctl.EXPAND_VOLUME) || ctl.has(Ctl.MODIFY_VOLUME) || node.has(NodeCap.EXPAND_VOLUME), "EXPAND_VOLUME or MODIFY_VOLUME");
  want("csi-attacher", ctl.has(Ctl.PUBLISH_UNPUBLISH_VOLUME), "PUBLISH_UNPUBLISH_VOLUME");
  want("csi-node-driver-registrar", true, "a Node service");
  want("livenessprobe", true, "Probe");

  const attachRequired = at(csiDriver, "spec", "attachRequired");
  if ((attachRequired === true) !== ctl.has(Ctl.PUBLISH_UNPUBLISH_VOLUME)) {
    problems.push(`CSIDriver attachRequired is ${String(attachRequired)}, but PUBLISH_UNPUBLISH_VOLUME is ${ctl.has(Ctl.PUBLISH_UNPUBLISH_VOLUME) ? "" : "not "}advertised`);
  }
  const capacity = at(csiDriver, "spec", "storageCapacity") === true;
  const publishing = deployed("csi-provisioner").some((c) => arg(c, "enable-capacity") === "true");
  if (capacity && !ctl.has(Ctl.GET_CAPACITY)) problems.push("CSIDriver storageCapacity is true, but the driver does not advertise GET_CAPACITY");
  if (capacity !== publishing) problems.push(`CSIDriver storageCapacity is ${capacity}, but csi-provisioner ${publishing ? "publishes" : "does not publish"} capacity (--enable-capacity)`);

  if (caps.plugin.includes(Plugin.VOLUME_ACCESSIBILITY_CONSTRAINTS)) {
    for (const c of deployed("csi-provisioner")) {
      if (/Topology=false/.test(arg(c, "feature-gates") ?? "")) problems.push("csi-provisioner has Topology turned off, but the driver reports volume topology");
      if (arg(c, "node-deployment") !== "true") problems.push("csi-provisioner must run per node (--node-deployment): hostPath volumes can only be created on their own node");
    }
    for (const c of deployed("csi-snapshotter")) {
      if (arg(c, "node-deployment") !== "true") problems.push("csi-snapshotter must run per node (--node-deployment): a hostPath volume can only be snapshotted on its node");
    }
  }
  return problems;
}
