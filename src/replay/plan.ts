/**
 * From Kubernetes object changes to CSI calls: the planner plays the
 * controllers that watch the objects of an example and call the driver.
 *
 *   a claim of a csi-lab class        csi-provisioner: CreateVolume (at once
 *                                     for Immediate binding, when the first
 *                                     pod is scheduled for WaitForFirstConsumer)
 *   a pod                             kubelet: NodeStage, NodePublish (kubelet.ts)
 *   a claim asking for more           csi-resizer: ControllerExpandVolume, then
 *                                     the kubelet: NodeExpandVolume
 *   a claim naming another            csi-resizer: ControllerModifyVolume
 *   VolumeAttributesClass
 *   a VolumeSnapshot                  snapshot-controller makes the content,
 *                                     csi-snapshotter: CreateSnapshot
 *   deleting a pod / claim / snapshot NodeUnpublish+NodeUnstage / DeleteVolume
 *                                     (reclaimPolicy Delete) / DeleteSnapshot
 *
 * Each call goes to the process the manifests put its sidecar beside
 * (deployment.ts). The whole replay runs on one node. The result is a
 * list of steps (steps.ts) that run.ts plays against a driver.
 */
import { expandOnNode, podVolumes, startPod, stopPod } from "./kubelet";
import { sha256, uidFor } from "./kubelet-paths";
import { at, isObject, list, nameOf, str, type JsonObject, type K8sObject } from "./k8s-objects";
import { Planning, PROVISIONER_IDENTITY, type DriverFacts, type PlanOptions } from "./planning";
import type { Action, Scenario } from "./scenario";
import { placeholder, type Step } from "./steps";
import { parseQuantity } from "../node/ephemeral";
import type { ClaimState, PvState } from "./cluster-state";
import type { Deployment, Sidecar } from "./deployment";

export type { DriverFacts, PlanOptions } from "./planning";

export function plan(scenario: Scenario, deployment: Deployment, facts: DriverFacts, opts: Omit<PlanOptions, "namespace">): Step[] {
  const p = new Planning(deployment, facts, { ...opts, namespace: scenario.namespace });
  for (const action of scenario.actions) act(p, action);
  return p.steps;
}

function act(p: Planning, a: Action): void {
  const ns = p.opts.namespace;
  switch (a.type) {
    case "apply":
      for (const raw of a.objects) apply(p, substitute(p, raw, a.substitute ?? {}), a.file, a.restartBefore);
      return;
    case "delete":
      remove(p, a.kind, a.name, a.why);
      return;
    case "delete-pv-of": {
      const pv = p.state.formerPv.get(a.claim) ?? pvOf(p, a.claim);
      p.step(`delete PersistentVolume ${pv?.name ?? "?"}`);
      if (a.why) p.note(a.why);
      if (pv) p.state.pvs.delete(pv.name);
      p.note("a PersistentVolume whose reclaimPolicy is Retain goes without a CSI call: the volume stays");
      return;
    }
    case "restart-node":
      p.step(`delete Pod csi-lab/${p.deployment.node.workload.split("/").pop()}-… (the node plugin)`);
      p.note(a.why);
      p.restart("the DaemonSet starts a new node plugin pod: a new container, a new mount namespace that inherits the node's mounts");
      registration(p);
      return;
    case "delete-namespace":
      p.step(`delete Namespace ${ns}`);
      p.note("Kubernetes deletes what the namespace holds: pods first (the claims stay until no pod uses them), then snapshots and claims");
      for (const pod of [...p.state.pods.values()]) remove(p, "Pod", pod.name);
      for (const s of [...p.state.snapshots.keys()]) remove(p, "VolumeSnapshot", s);
      for (const c of [...p.state.claims.keys()]) remove(p, "PersistentVolumeClaim", c);
      p.step("the example is gone");
      p.check({ type: "no-mounts", what: "nothing is left mounted in the kubelet directory", under: p.opts.kubeletDir });
      return;
  }
}

/** The node-driver-registrar and the kubelet meet a (new) node plugin. */
export function registration(p: Planning): void {
  p.call({ method: "GetPluginInfo", service: "Identity", process: "node", caller: "node-driver-registrar", why: "learn the driver's name to register its socket with the kubelet", request: {} });
  p.call({ method: "NodeGetInfo", service: "Node", process: "node", caller: "kubelet", why: "plugin registration: the node's ID and topology", request: {} });
}

function substitute(p: Planning, o: K8sObject, subs: Record<string, { handleOfClaim: string } | { nodeName: true }>): K8sObject {
  let text = JSON.stringify(o);
  for (const [from, to] of Object.entries(subs)) {
    if (!text.includes(from)) continue;
    const value = "nodeName" in to ? p.facts.nodeName : (p.state.formerPv.get(to.handleOfClaim) ?? pvOf(p, to.handleOfClaim))?.handle;
    if (value === undefined) throw new Error(`${from}: claim ${"handleOfClaim" in to ? to.handleOfClaim : ""} has no volume`);
    text = text.split(from).join(value);
  }
  return JSON.parse(text) as K8sObject;
}

function pvOf(p: Planning, claim: string): PvState | undefined {
  const name = p.state.claims.get(claim)?.pv;
  return name ? p.state.pvs.get(name) : undefined;
}

function apply(p: Planning, o: K8sObject, file: string | undefined, restartBefore: string | undefined): void {
  const name = nameOf(o);
  const where = o.kind === "StorageClass" || o.kind.endsWith("Class") || o.kind === "PersistentVolume" ? name : `${p.opts.namespace}/${name}`;
  switch (o.kind) {
    case "StorageClass":
    case "VolumeSnapshotClass":
    case "VolumeAttributesClass":
      p.step(`create ${o.kind} ${where}`, file);
      p.note("recorded for later claims; no CSI call");
      p.state.classes.set(`${o.kind}/${name}`, o);
      return;
    case "PersistentVolumeClaim":
      if (p.state.claims.has(name)) return updateClaim(p, p.state.claims.get(name)!, o, file);
      p.step(`create PersistentVolumeClaim ${where}`, file);
      return createClaim(p, o);
    case "PersistentVolume":
      p.step(`create PersistentVolume ${name}`, file);
      p.note("a PersistentVolume written by hand (static provisioning): no CSI call until a pod uses it");
      return addStaticPv(p, o);
    case "Pod":
      p.step(`create Pod ${where}`, file);
      return schedulePod(p, o, name, undefined, restartBefore);
    case "Deployment":
      return applyDeployment(p, o, file);
    case "VolumeSnapshot":
      p.step(`create VolumeSnapshot ${where}`, file);
      return createSnapshot(p, o);
    default:
      p.step(`create ${o.kind} ${where}`, file);
      p.note(`no CSI call: ${o.kind} is read by another controller`);
  }
}

function remove(p: Planning, kind: string, name: string, why?: string): void {
  p.step(`delete ${kind} ${p.opts.namespace}/${name}`);
  if (why) p.note(why);
  if (kind === "Pod") {
    const pod = p.state.pods.get(name);
    for (const pv of pod ? stopPod(p, pod) : []) detach(p, pv);
  } else if (kind === "PersistentVolumeClaim") {
    deleteClaim(p, name);
  } else if (kind === "VolumeSnapshot") {
    const s = p.state.snapshots.get(name);
    if (!s) return;
    p.state.snapshots.delete(name);
    const policy = str(at(p.state.classNamed("VolumeSnapshotClass", s.className), "deletionPolicy")) ?? "Delete";
    if (policy !== "Delete") return p.note(`the class's deletionPolicy is ${policy}: the snapshot stays`);
    sidecarCall(p, "csi-snapshotter", "DeleteSnapshot", `VolumeSnapshotContent ${s.content} is deleted with its VolumeSnapshot (deletionPolicy Delete)`, { snapshotId: placeholder("snapshotId", s.content), secrets: {} });
  }
}

function sidecarCall(p: Planning, sidecar: Sidecar, method: string, why: string, request: JsonObject, extra: Partial<Parameters<Planning["call"]>[0]> = {}): void {
  const process = p.deployment.routes[sidecar];
  if (!process) {
    p.note(`no ${sidecar} is deployed: nothing calls ${method}`);
    return;
  }
  p.call({ method, service: "Controller", process, caller: sidecar, why, request, ...extra });
}

function sizeOf(o: K8sObject): number {
  const q = str(at(o, "spec", "resources", "requests", "storage")) ?? str(at(o, "spec", "capacity", "storage")) ?? "0";
  const n = parseQuantity(q);
  if (n === undefined) throw new Error(`${nameOf(o)}: size ${q} is not a quantity`);
  return n;
}

function createClaim(p: Planning, o: K8sObject): void {
  const name = nameOf(o);
  const claim: ClaimState = {
    name,
    uid: uidFor(`pvc/${p.opts.namespace}/${name}/${p.steps.length}`),
    object: o,
    storageClass: str(at(o, "spec", "storageClassName")) ?? "",
    sizeBytes: sizeOf(o),
    accessModes: list(at(o, "spec", "accessModes")).map(String),
    block: at(o, "spec", "volumeMode") === "Block",
    attributesClass: str(at(o, "spec", "volumeAttributesClassName")),
    pv: undefined,
  };
  p.state.claims.set(name, claim);
  const byName = str(at(o, "spec", "volumeName"));
  const selector = at(o, "spec", "selector", "matchLabels");
  if (byName || claim.storageClass === "") {
    const pv = [...p.state.pvs.values()].find(
      (v) => !v.claim && (byName ? v.name === byName : isObject(selector) && Object.entries(selector).every(([k, val]) => v.labels[k] === val)),
    );
    if (!pv) return p.note("no PersistentVolume matches yet: the claim stays Pending");
    pv.claim = name;
    claim.pv = pv.name;
    return p.note(`the PV controller binds it to PersistentVolume ${pv.name} (${byName ? "volumeName" : "selector"}); no CSI call`);
  }
  const sc = p.state.classNamed("StorageClass", claim.storageClass);
  if (!sc || sc.provisioner !== p.driverName) return p.note(`StorageClass ${claim.storageClass} is not ${p.driverName}'s: nothing to do here`);
  if (str(sc.volumeBindingMode) === "WaitForFirstConsumer") return p.note("WaitForFirstConsumer: the volume is made when a pod using the claim is scheduled");
  p.note("Immediate binding: the csi-provisioner creates the volume now");
  provision(p, claim, false);
}

/** csi-provisioner: CreateVolume for a claim, and the PersistentVolume for its volume. */
function provision(p: Planning, claim: ClaimState, scheduled: boolean): void {
  const sc = p.state.classNamed("StorageClass", claim.storageClass)!;
  const pvName = `pvc-${claim.uid}`;
  const scParams = isObject(sc.parameters) ? (sc.parameters as Record<string, string>) : {};
  const parameters: Record<string, string> = {};
  for (const [k, v] of Object.entries(scParams)) if (!k.startsWith("csi.storage.k8s.io/")) parameters[k] = k === "share" ? p.driverPath(v) : v;
  if (sidecarFlag(p, "csi-provisioner", "extra-create-metadata")) {
    Object.assign(parameters, { "csi.storage.k8s.io/pvc/name": claim.name, "csi.storage.k8s.io/pvc/namespace": p.opts.namespace, "csi.storage.k8s.io/pv/name": pvName });
  }
  const mountOptions = list(sc.mountOptions).map(String);
  const fsType = scParams["csi.storage.k8s.io/fstype"] ?? "";
  const request: JsonObject = {
    name: pvName,
    capacityRange: { requiredBytes: claim.sizeBytes, limitBytes: 0 },
    volumeCapabilities: claim.accessModes.map((m) => p.capability({ block: claim.block, fsType, mountOptions, mode: p.accessMode(m, "controller") })),
    parameters,
    secrets: {},
  };
  if (scheduled) request.accessibilityRequirements = { requisite: [{ segments: p.facts.topology }], preferred: [{ segments: p.facts.topology }] };
  const vac = claim.attributesClass ? p.state.classNamed("VolumeAttributesClass", claim.attributesClass) : undefined;
  if (isObject(vac?.parameters)) request.mutableParameters = vac.parameters;
  const source = at(claim.object, "spec", "dataSource");
  let files = [] as ReturnType<typeof p.state.filesOf>;
  if (isObject(source) && source.kind === "VolumeSnapshot") {
    const snap = p.state.snapshots.get(String(source.name));
    if (!snap) throw new Error(`claim ${claim.name}: no snapshot ${String(source.name)}`);
    request.volumeContentSource = { snapshot: { snapshotId: placeholder("snapshotId", snap.content) } };
    files = snap.files;
  } else if (isObject(source) && source.kind === "PersistentVolumeClaim") {
    const from = pvOf(p, String(source.name));
    if (!from) throw new Error(`claim ${claim.name}: source claim ${String(source.name)} is not bound`);
    request.volumeContentSource = { volume: { volumeId: from.handle } };
    files = p.state.filesOf(from.handle);
  }
  const why = `${scheduled ? `the scheduler picked ${p.facts.nodeName} for a pod using claim ${claim.name}` : `claim ${claim.name} was created`}; the provisioner ${p.deployment.routes["csi-provisioner"] === "node" ? `on ${p.facts.nodeName} ` : ""}makes its volume${request.volumeContentSource ? " from its data source" : ""}`;
  sidecarCall(p, "csi-provisioner", "CreateVolume", why, request, { save: { volume: pvName } });
  const handle = placeholder("volumeId", pvName);
  const pv: PvState = {
    name: pvName,
    handle,
    handleHash: placeholder("volumeHash", pvName),
    context: { "...": placeholder("volumeContext", pvName), "storage.kubernetes.io/csiProvisionerIdentity": PROVISIONER_IDENTITY },
    sizeBytes: claim.sizeBytes,
    accessModes: claim.accessModes,
    block: claim.block,
    fsType,
    mountOptions,
    reclaim: str(sc.reclaimPolicy) === "Retain" ? "Retain" : "Delete",
    backend: scParams.backend ?? "hostpath",
    labels: {},
    claim: claim.name,
  };
  p.state.pvs.set(pvName, pv);
  p.state.files.set(handle, files.map((f) => ({ ...f })));
  claim.pv = pvName;
  p.state.formerPv.set(claim.name, pv);
  p.note(`the provisioner creates PersistentVolume ${pvName}; the claim binds to it`);
}

function sidecarFlag(p: Planning, sidecar: Sidecar, name: string): boolean {
  return (p.deployment.sidecarArgs[sidecar] ?? []).some((a) => a === `--${name}` || a === `--${name}=true`);
}

function addStaticPv(p: Planning, o: K8sObject): void {
  const handle = str(at(o, "spec", "csi", "volumeHandle"));
  if (!handle || at(o, "spec", "csi", "driver") !== p.driverName) return p.note("not a volume of this driver");
  const attrs = at(o, "spec", "csi", "volumeAttributes");
  const fromPlaceholder = /^\$\{volumeId:([^}]+)\}$/.exec(handle);
  const labels = at(o, "metadata", "labels");
  p.state.pvs.set(nameOf(o), {
    name: nameOf(o),
    handle,
    handleHash: fromPlaceholder ? placeholder("volumeHash", fromPlaceholder[1]!) : sha256(handle),
    context: isObject(attrs) ? (attrs as JsonObject) : {},
    sizeBytes: sizeOf(o),
    accessModes: list(at(o, "spec", "accessModes")).map(String),
    block: at(o, "spec", "volumeMode") === "Block",
    fsType: str(at(o, "spec", "csi", "fsType")) ?? "",
    mountOptions: list(at(o, "spec", "mountOptions")).map(String),
    reclaim: at(o, "spec", "persistentVolumeReclaimPolicy") === "Delete" ? "Delete" : "Retain",
    backend: undefined,
    labels: isObject(labels) ? (labels as Record<string, string>) : {},
    claim: undefined,
  });
}

function schedulePod(p: Planning, o: K8sObject, name: string, owner: string | undefined, restartBefore?: string): void {
  p.note(`the scheduler places it on ${p.facts.nodeName}`);
  for (const v of list(at(o, "spec", "volumes")).filter(isObject)) {
    const claim = p.state.claims.get(str(at(v, "persistentVolumeClaim", "claimName")) ?? "");
    if (claim && !claim.pv) provision(p, claim, true);
    if (claim?.pv) attach(p, p.state.pvs.get(claim.pv)!);
  }
  const uid = uidFor(`pod/${p.opts.namespace}/${name}/${p.steps.length}`);
  const fsGroup = at(o, "spec", "securityContext", "fsGroup");
  const pod = { name, uid, volumes: [] as ReturnType<typeof podVolumes>, fsGroup: typeof fsGroup === "number" ? fsGroup : undefined, owner };
  pod.volumes = podVolumes(p, o, uid, pod.fsGroup);
  startPod(p, pod, o, restartBefore);
  p.state.pods.set(name, pod);
  for (const v of pod.volumes) {
    const claim = [...p.state.claims.values()].find((c) => c.pv && c.pv === v.pv);
    const vac = claim?.attributesClass ? p.state.classNamed("VolumeAttributesClass", claim.attributesClass) : undefined;
    const mode = str(at(vac, "parameters", "mode"));
    if (mode && !v.block) p.check({ type: "mode", what: `VolumeAttributesClass ${claim!.attributesClass}: the volume's root has mode ${mode}`, path: v.target, mode: parseInt(mode, 8) });
  }
}

/** csi-attacher, when the CSIDriver requires attaching: the volume is attached to the node before the kubelet stages it. */
function attach(p: Planning, pv: PvState): void {
  if (!p.deployment.attachRequired || p.state.attached.has(pv.name)) return;
  p.note(`attachRequired: the attach/detach controller creates a VolumeAttachment of ${pv.name} to ${p.facts.nodeName}`);
  const capability = p.capability({ block: pv.block, fsType: pv.fsType, mountOptions: pv.mountOptions, mode: p.accessMode(pv.accessModes[0]!, "controller") });
  const request = { volumeId: pv.handle, nodeId: p.facts.nodeId, volumeCapability: capability, readonly: false, secrets: {}, volumeContext: pv.context };
  sidecarCall(p, "csi-attacher", "ControllerPublishVolume", `VolumeAttachment of ${pv.name} to ${p.facts.nodeName}`, request, { save: { attachment: pv.name } });
  p.state.attached.add(pv.name);
}

function detach(p: Planning, pv: string): void {
  const v = p.state.pvs.get(pv);
  if (!v || !p.state.attached.delete(pv)) return;
  p.note(`the node no longer uses ${pv}: its VolumeAttachment is deleted`);
  sidecarCall(p, "csi-attacher", "ControllerUnpublishVolume", `VolumeAttachment of ${pv} to ${p.facts.nodeName} is deleted`, { volumeId: v.handle, nodeId: p.facts.nodeId, secrets: {} });
}

function applyDeployment(p: Planning, o: K8sObject, file: string | undefined): void {
  const name = nameOf(o);
  const template = at(o, "spec", "template");
  const digest = sha256(JSON.stringify(template)).slice(0, 10);
  const existing = p.state.deployments.get(name);
  const podObject = (): K8sObject => ({ apiVersion: "v1", kind: "Pod", metadata: { name: "" }, spec: at(template, "spec") ?? {} }) as K8sObject;
  if (existing && existing.template === digest) {
    p.step(`update Deployment ${p.opts.namespace}/${name}`, file);
    return p.note("the pod template is unchanged: nothing happens");
  }
  const podName = `${name}-${digest}-${uidFor(`${name}/${digest}`).slice(0, 5)}`;
  p.step(existing ? `update Deployment ${p.opts.namespace}/${name}: new Pod ${podName}` : `create Deployment ${p.opts.namespace}/${name}: Pod ${podName}`, file);
  if (existing) p.note("a rolling update (maxUnavailable 0): the new pod starts beside the old one, on the node that holds the volume");
  schedulePod(p, podObject(), podName, name);
  const old = existing?.pods ?? [];
  p.state.deployments.set(name, { template: digest, pods: [podName] });
  for (const oldPod of old) remove(p, "Pod", oldPod, "the new pod is Ready: the rolling update stops the old one");
}

function updateClaim(p: Planning, claim: ClaimState, o: K8sObject, file: string | undefined): void {
  const size = sizeOf(o);
  const vac = str(at(o, "spec", "volumeAttributesClassName"));
  const pv = claim.pv ? p.state.pvs.get(claim.pv) : undefined;
  p.step(`update PersistentVolumeClaim ${p.opts.namespace}/${claim.name}`, file);
  claim.object = o;
  if (size > claim.sizeBytes && pv) {
    p.note(`the claim asks for ${size} bytes instead of ${claim.sizeBytes}: csi-resizer expands the volume`);
    const capability = p.capability({ block: pv.block, fsType: pv.fsType, mountOptions: pv.mountOptions, mode: p.accessMode(pv.accessModes[0]!, "controller") });
    sidecarCall(p, "csi-resizer", "ControllerExpandVolume", `claim ${claim.name} asks for ${size} bytes`, { volumeId: pv.handle, capacityRange: { requiredBytes: size, limitBytes: 0 }, secrets: {}, volumeCapability: capability }, { save: { expansion: pv.name } });
    claim.sizeBytes = size;
    pv.sizeBytes = size;
    expandOnNode(p, pv, size);
  }
  if (vac !== claim.attributesClass && pv) {
    const cls = vac ? p.state.classNamed("VolumeAttributesClass", vac) : undefined;
    const route = p.deployment.routes["csi-resizer"];
    const nodeLocal = pv.backend === "hostpath" && route === "controller";
    p.note(`the claim names VolumeAttributesClass ${vac}: csi-resizer asks the driver to change the volume`);
    sidecarCall(p, "csi-resizer", "ControllerModifyVolume", `claim ${claim.name} switched to VolumeAttributesClass ${vac}`, { volumeId: pv.handle, secrets: {}, mutableParameters: isObject(cls?.parameters) ? cls.parameters : {} }, {
      ...(nodeLocal
        ? { expect: { code: "INVALID_ARGUMENT", because: "the controller's driver does not hold node-local volumes, so the change is infeasible here (csi-resizer records ModifyVolume Infeasible on the claim)" } }
        : {}),
    });
    claim.attributesClass = vac;
  }
}

function deleteClaim(p: Planning, name: string): void {
  const claim = p.state.claims.get(name);
  if (!claim) return;
  p.state.claims.delete(name);
  const pv = claim.pv ? p.state.pvs.get(claim.pv) : undefined;
  if (!pv) return p.note("the claim was never bound: nothing to reclaim");
  pv.claim = undefined;
  if (pv.reclaim === "Retain") {
    p.note(`reclaimPolicy Retain: PersistentVolume ${pv.name} turns Released and its volume stays`);
    p.check({ type: "volume", what: `the volume of ${pv.name} is kept (Retain)`, volumeId: pv.handle, exists: true });
    return;
  }
  p.note(`reclaimPolicy Delete: the provisioner deletes the volume, then PersistentVolume ${pv.name}`);
  sidecarCall(p, "csi-provisioner", "DeleteVolume", `claim ${name} is gone and its PV's reclaimPolicy is Delete`, { volumeId: pv.handle, secrets: {} });
  p.state.pvs.delete(pv.name);
  p.check({ type: "volume", what: `the volume of ${pv.name} is gone from the node (Delete)`, volumeId: pv.handle, exists: false });
}

function createSnapshot(p: Planning, o: K8sObject): void {
  const name = nameOf(o);
  const source = str(at(o, "spec", "source", "persistentVolumeClaimName"));
  const pv = source ? pvOf(p, source) : undefined;
  if (!pv) return p.note(`claim ${source} is not bound: the snapshot waits`);
  const uid = uidFor(`snapshot/${p.opts.namespace}/${name}/${p.steps.length}`);
  const content = `snapcontent-${uid}`;
  const className = str(at(o, "spec", "volumeSnapshotClassName")) ?? "";
  const cls = p.state.classNamed("VolumeSnapshotClass", className);
  p.note(`the snapshot-controller creates VolumeSnapshotContent ${content}${pv.backend === "hostpath" ? `, labelled with node ${p.facts.nodeName} (distributed snapshotting)` : ""}`);
  const parameters: Record<string, string> = isObject(cls?.parameters) ? { ...(cls.parameters as Record<string, string>) } : {};
  if (sidecarFlag(p, "csi-snapshotter", "extra-create-metadata")) {
    Object.assign(parameters, { "csi.storage.k8s.io/volumesnapshot/name": name, "csi.storage.k8s.io/volumesnapshot/namespace": p.opts.namespace, "csi.storage.k8s.io/volumesnapshotcontent/name": content });
  }
  sidecarCall(p, "csi-snapshotter", "CreateSnapshot", `VolumeSnapshotContent ${content} asks for a snapshot of ${pv.name}`, { sourceVolumeId: pv.handle, name: `snapshot-${uid}`, parameters, secrets: {} }, { save: { snapshot: content } });
  p.state.snapshots.set(name, { name, uid, content, className, files: p.state.filesOf(pv.handle).map((f) => ({ ...f })) });
}
