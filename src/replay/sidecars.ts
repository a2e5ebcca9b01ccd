/**
 * The controllers' part: what the sidecars beside the driver call when the
 * objects they watch change.
 *
 *   csi-provisioner  a claim of one of the driver's StorageClasses:
 *                    CreateVolume (empty, from a snapshot, or a clone of
 *                    another claim), and a PersistentVolume for it; the
 *                    claim deleted with reclaimPolicy Delete: DeleteVolume
 *   csi-snapshotter  a VolumeSnapshotContent: CreateSnapshot; deleted with
 *                    deletionPolicy Delete: DeleteSnapshot
 *   csi-resizer      a claim asking for more than its status.capacity:
 *                    ControllerExpandVolume, whose answer becomes the PV's
 *                    capacity (resize.ts, with the API server's rule for a
 *                    claim's new size and the kubelet's half); a claim naming
 *                    another VolumeAttributesClass: ControllerModifyVolume
 *   csi-attacher     a VolumeAttachment, when the CSIDriver requires
 *                    attaching: ControllerPublish/UnpublishVolume
 *
 * Each call goes to the process whose pod holds that sidecar
 * (deployment.ts routes). Claims bound by hand (volumeName, selector) and
 * hand-written PersistentVolumes cause no call.
 */
import { parseQuantity } from "../node/ephemeral";
import type { ClaimState, PvState } from "./cluster-state";
import type { Sidecar } from "./deployment";
import { sha256, uidFor } from "./kubelet-paths";
import { at, isObject, list, nameOf, str, type JsonObject, type K8sObject } from "./k8s-objects";
import { PROVISIONER_IDENTITY, sidecarCall, type Planning } from "./planning";
import { bindClaim, resizeClaim } from "./resize";
import { placeholder } from "./steps";

export function pvOf(p: Planning, claim: string): PvState | undefined {
  const name = p.state.claims.get(claim)?.pv;
  return name ? p.state.pvs.get(name) : undefined;
}

export function sizeOf(o: K8sObject): number {
  const q = str(at(o, "spec", "resources", "requests", "storage")) ?? str(at(o, "spec", "capacity", "storage")) ?? "0";
  const n = parseQuantity(q);
  if (n === undefined) throw new Error(`${nameOf(o)}: size ${q} is not a quantity`);
  return n;
}

export function createClaim(p: Planning, o: K8sObject): void {
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
    p.note(`the PV controller binds it to PersistentVolume ${pv.name} (${byName ? "volumeName" : "selector"}); no CSI call`);
    return bindClaim(p, claim, pv);
  }
  const sc = p.state.classNamed("StorageClass", claim.storageClass);
  if (!sc || sc.provisioner !== p.driverName) return p.note(`StorageClass ${claim.storageClass} is not ${p.driverName}'s: nothing to do here`);
  if (str(sc.volumeBindingMode) === "WaitForFirstConsumer") return p.note("WaitForFirstConsumer: the volume is made when a pod using the claim is scheduled");
  p.note("Immediate binding: the csi-provisioner creates the volume now");
  provision(p, claim, false);
}

/** csi-provisioner: CreateVolume for a claim, and the PersistentVolume for its volume. */
export function provision(p: Planning, claim: ClaimState, scheduled: boolean): void {
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
    capacity: placeholder("capacity", pvName),
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
  if (p.deployment.routes["csi-provisioner"]) bindClaim(p, claim, pv);
}

function sidecarFlag(p: Planning, sidecar: Sidecar, name: string): boolean {
  return (p.deployment.sidecarArgs[sidecar] ?? []).some((a) => a === `--${name}` || a === `--${name}=true`);
}

export function addStaticPv(p: Planning, o: K8sObject): void {
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
    capacity: sizeOf(o),
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

/** csi-attacher, when the CSIDriver requires attaching: the volume is attached to the node before the kubelet stages it. */
export function attach(p: Planning, pv: PvState): void {
  if (!p.deployment.attachRequired || p.state.attached.has(pv.name)) return;
  p.note(`attachRequired: the attach/detach controller creates a VolumeAttachment of ${pv.name} to ${p.facts.nodeName}`);
  const capability = p.capability({ block: pv.block, fsType: pv.fsType, mountOptions: pv.mountOptions, mode: p.accessMode(pv.accessModes[0]!, "controller") });
  const request = { volumeId: pv.handle, nodeId: p.facts.nodeId, volumeCapability: capability, readonly: false, secrets: {}, volumeContext: pv.context };
  sidecarCall(p, "csi-attacher", "ControllerPublishVolume", `VolumeAttachment of ${pv.name} to ${p.facts.nodeName}`, request, { save: { attachment: pv.name } });
  p.state.attached.add(pv.name);
}

export function detach(p: Planning, pv: string): void {
  const v = p.state.pvs.get(pv);
  if (!v || !p.state.attached.delete(pv)) return;
  p.note(`the node no longer uses ${pv}: its VolumeAttachment is deleted`);
  sidecarCall(p, "csi-attacher", "ControllerUnpublishVolume", `VolumeAttachment of ${pv} to ${p.facts.nodeName} is deleted`, { volumeId: v.handle, nodeId: p.facts.nodeId, secrets: {} });
}

export function updateClaim(p: Planning, claim: ClaimState, o: K8sObject, file: string | undefined): void {
  const vac = str(at(o, "spec", "volumeAttributesClassName"));
  const pv = claim.pv ? p.state.pvs.get(claim.pv) : undefined;
  p.step(`update PersistentVolumeClaim ${p.opts.namespace}/${claim.name}`, file);
  if (!resizeClaim(p, claim, pv, sizeOf(o), str(at(o, "spec", "storageClassName")) ?? "")) return;
  claim.object = o;
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

export function deleteClaim(p: Planning, name: string): void {
  const claim = p.state.claims.get(name);
  if (!claim) return;
  p.state.claims.delete(name);
  const pv = claim.pv ? p.state.pvs.get(claim.pv) : undefined;
  if (!pv) return p.note("the claim was never bound: nothing to reclaim");
  pv.claim = undefined;
  // A resize still waiting for the node (NodeResizePending) is the claim's status: it goes with the claim.
  p.state.mayWaitForNode.delete(pv.name);
  p.state.raisedWhileWaiting.delete(pv.name);
  p.state.resized.delete(pv.name);
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

export function createSnapshot(p: Planning, o: K8sObject): void {
  const name = nameOf(o);
  const source = str(at(o, "spec", "source", "persistentVolumeClaimName"));
  const pv = source ? pvOf(p, source) : undefined;
  if (!pv) return p.note(`claim ${source} is not bound: the snapshot waits`);
  const uid = uidFor(`snapshot/${p.opts.namespace}/${name}/${p.steps.length}`);
  const content = `snapcontent-${uid}`;
  const className = str(at(o, "spec", "volumeSnapshotClassName")) ?? "";
  const cls = p.state.classNamed("VolumeSnapshotClass", className);
  // Distributed snapshotting: the content is labelled with a node the PV's node affinity matches (a shared volume's: every node allowed a share).
  const which = pv.backend === "nfs" ? "a node allowed a share, as the PV's node affinity (<driver>/shared) says" : "the node in the PV's node affinity";
  p.note(`the snapshot-controller creates VolumeSnapshotContent ${content}, labelled with node ${p.facts.nodeName}: ${which} (distributed snapshotting)`);
  const parameters: Record<string, string> = isObject(cls?.parameters) ? { ...(cls.parameters as Record<string, string>) } : {};
  if (sidecarFlag(p, "csi-snapshotter", "extra-create-metadata")) {
    Object.assign(parameters, { "csi.storage.k8s.io/volumesnapshot/name": name, "csi.storage.k8s.io/volumesnapshot/namespace": p.opts.namespace, "csi.storage.k8s.io/volumesnapshotcontent/name": content });
  }
  // A PV without node affinity gets a content labelled with no node, which no csi-snapshotter (--node-deployment) takes:
  // the call is never made, and the snapshot never becomes ready. (A hand-written PV is taken to have one.)
  sidecarCall(p, "csi-snapshotter", "CreateSnapshot", `VolumeSnapshotContent ${content} asks for a snapshot of ${pv.name}`, { sourceVolumeId: pv.handle, name: `snapshot-${uid}`, parameters, secrets: {} }, {
    save: { snapshot: content },
    unless: placeholder("noNodeAffinity", pv.name),
  });
  p.state.snapshots.set(name, { name, uid, content, className, files: p.state.filesOf(pv.handle).map((f) => ({ ...f })) });
}

/** csi-snapshotter: DeleteSnapshot when the VolumeSnapshot goes and its class's deletionPolicy is Delete. */
export function deleteSnapshot(p: Planning, name: string): void {
  const s = p.state.snapshots.get(name);
  if (!s) return;
  p.state.snapshots.delete(name);
  const policy = str(at(p.state.classNamed("VolumeSnapshotClass", s.className), "deletionPolicy")) ?? "Delete";
  if (policy !== "Delete") return p.note(`the class's deletionPolicy is ${policy}: the snapshot stays`);
  sidecarCall(p, "csi-snapshotter", "DeleteSnapshot", `VolumeSnapshotContent ${s.content} is deleted with its VolumeSnapshot (deletionPolicy Delete)`, { snapshotId: placeholder("snapshotId", s.content), secrets: {} });
}
