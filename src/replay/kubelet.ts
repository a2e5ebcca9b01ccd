/**
 * The kubelet's part: what the node agent asks the node plugin when a pod
 * starts or stops on its node, and after a volume grew.
 *
 * Pod start, for each CSI volume of the pod:
 *   NodeStageVolume    once per volume per node (skipped when another pod
 *                      has it staged already), at the staging path
 *   NodePublishVolume  once per pod, at the pod's target path, with the
 *                      pod's identity in volume_context (podInfoOnMount)
 *                      and its fsGroup as volume_mount_group (the node
 *                      advertises VOLUME_MOUNT_GROUP)
 * Pod stop: NodeUnpublishVolume, then NodeUnstageVolume when no other pod
 * on the node uses the volume. The kubelet makes the parent directories
 * of those paths before and removes them after; a removal that fails
 * means the driver left something behind. An inline (ephemeral) volume
 * is only published, with an ID the kubelet makes. After a resize, the
 * kubelet asks NodeExpandVolume for the claim's allocated size
 * (status.allocatedResources: the size csi-resizer asked the controller
 * for, which Kubernetes 1.32 on hands the kubelet; older kubelets asked
 * for the PV's capacity, the controller's answer), and only when
 * ControllerExpandVolume said the node must follow: at once where a pod
 * has the volume mounted (online), else right after the next pod's
 * NodePublishVolume of it (the claim waits, NodeResizePending, till then).
 *
 * The "pod" itself is played by the checks: it finds what earlier pods
 * wrote to its volume and writes a file of its own.
 */
import * as path from "node:path";
import type { PodState, PodVolumeState, PvState } from "./cluster-state";
import { blockStagingPath, blockTargetPath, ephemeralVolumeId, stagingPath, targetPath } from "./kubelet-paths";
import type { Planning } from "./planning";
import { placeholder, type FileEntry } from "./steps";
import { at, isObject, list, str, type JsonObject, type K8sObject } from "./k8s-objects";

const BLOCK_SLOT = 4096;

/** What ControllerPublishVolume returned for an attached volume; nothing otherwise. */
function publishContextOf(p: Planning, pv: PvState): string | JsonObject {
  return p.state.attached.has(pv.name) ? placeholder("publishContext", pv.name) : {};
}

function podIdentity(p: Planning, pod: PodState): JsonObject {
  if (!p.deployment.podInfoOnMount) return {};
  return {
    "csi.storage.k8s.io/pod.name": pod.name,
    "csi.storage.k8s.io/pod.namespace": p.opts.namespace,
    "csi.storage.k8s.io/pod.uid": pod.uid,
    "csi.storage.k8s.io/serviceAccount.name": "default",
  };
}

/** The pod's CSI volumes, resolved against the claims and PVs (a claim must be bound by now). */
export function podVolumes(p: Planning, pod: K8sObject, uid: string, fsGroup: number | undefined): PodVolumeState[] {
  const out: PodVolumeState[] = [];
  const group = fsGroup !== undefined && p.facts.nodeCaps.includes("VOLUME_MOUNT_GROUP") && p.deployment.fsGroupPolicy !== "None" ? String(fsGroup) : undefined;
  for (const v of list(at(pod, "spec", "volumes")).filter(isObject)) {
    const name = str(v.name) ?? "";
    const claimName = str(at(v, "persistentVolumeClaim", "claimName"));
    const inline = at(v, "csi");
    if (claimName) {
      const pv = boundPv(p, claimName);
      const readOnly = at(v, "persistentVolumeClaim", "readOnly") === true;
      const capability = p.capability({ block: pv.block, fsType: pv.fsType, mountOptions: pv.mountOptions, mode: p.accessMode(pv.accessModes[0]!, "node"), mountGroup: group });
      out.push({
        name,
        pv: pv.name,
        handle: pv.handle,
        target: pv.block ? blockTargetPath(p.opts.kubeletDir, pv.name, uid) : targetPath(p.opts.kubeletDir, uid, pv.name),
        staging: pv.block ? blockStagingPath(p.opts.kubeletDir, pv.name) : stagingPath(p.opts.kubeletDir, p.driverName, pv.handleHash),
        block: pv.block,
        readOnly,
        capability,
      });
    } else if (isObject(inline) && inline.driver === p.driverName) {
      const capability = p.capability({ block: false, fsType: str(inline.fsType) ?? "", mountOptions: [], mode: p.accessMode("ReadWriteOnce", "node"), mountGroup: group });
      out.push({ name, pv: undefined, handle: ephemeralVolumeId(uid, name), target: targetPath(p.opts.kubeletDir, uid, name), staging: undefined, block: false, readOnly: inline.readOnly === true, capability });
    }
  }
  return out;
}

function boundPv(p: Planning, claimName: string): PvState {
  const claim = p.state.claims.get(claimName);
  const pv = claim?.pv ? p.state.pvs.get(claim.pv) : undefined;
  if (!pv) throw new Error(`pod mounts claim ${claimName}, which is not bound`);
  return pv;
}

/** NodeStage (if needed) and NodePublish for every volume of a pod that was just scheduled to the node; then the pod's checks. */
export function startPod(p: Planning, pod: PodState, object: K8sObject, restartBefore?: string): void {
  const inlineAttributes = new Map<string, JsonObject>();
  for (const v of list(at(object, "spec", "volumes")).filter(isObject)) {
    const attrs = at(v, "csi", "volumeAttributes");
    if (isObject(v.csi)) inlineAttributes.set(str(v.name) ?? "", isObject(attrs) ? (attrs as JsonObject) : {});
  }
  const maybeRestart = (method: string) => {
    if (restartBefore === method) p.restart(`the node plugin is killed before the kubelet's ${method}; a new container starts`);
  };
  for (const v of pod.volumes) {
    const pv = v.pv ? p.state.pvs.get(v.pv) : undefined;
    if (pv && v.staging && !p.state.stagedAt(pv.name)) {
      maybeRestart("NodeStageVolume");
      stage(p, pv, v, `pod ${pod.name} is the first on ${p.facts.nodeName} to use ${pv.name}: mount it once for the node`);
    }
    maybeRestart("NodePublishVolume");
    publish(p, pod, v, pv, inlineAttributes.get(v.name) ?? {});
    if (pv) expandPending(p, pod, v, pv);
  }
  for (const v of pod.volumes) {
    const files = p.state.filesOf(v.handle);
    const write: FileEntry | undefined = v.readOnly ? undefined : { name: `replay-${pod.name}.txt`, content: `written by pod ${pod.name}\n`, offset: files.length * BLOCK_SLOT };
    p.check({ type: "data", what: `pod ${pod.name} finds what earlier pods wrote to ${v.pv ?? v.name} and writes its own file`, pod: pod.name, path: v.target, block: v.block, expect: [...files], ...(write ? { write } : {}) });
    if (write) files.push(write);
    const group = at(v.capability, "mount", "volumeMountGroup");
    if (typeof group === "string" && group !== "") p.check({ type: "group", what: `pod ${pod.name}'s fsGroup ${group} owns ${v.pv ?? v.name} and may write there`, path: v.target, gid: Number(group) });
  }
}

/**
 * NodeUnpublish for each volume of a pod being deleted, and NodeUnstage for
 * volumes no other pod on the node uses; returns those volumes' PVs (which
 * the node no longer needs attached).
 */
export function stopPod(p: Planning, pod: PodState): string[] {
  const left: string[] = [];
  for (const v of pod.volumes) {
    p.check({ type: "data", what: `pod ${pod.name} still sees everything written to ${v.pv ?? v.name} before it stops`, pod: pod.name, path: v.target, block: v.block, expect: [...p.state.filesOf(v.handle)] });
  }
  p.state.pods.delete(pod.name);
  const podDir = path.join(p.opts.kubeletDir, "pods", pod.uid);
  // What the kubelet removes once the pod's volumes are gone: its directories under pods/.
  const podDirs = pod.volumes.some((v) => !v.block) ? [path.join(podDir, "volumes/kubernetes.io~csi"), path.join(podDir, "volumes"), podDir] : [];
  pod.volumes.forEach((v, i) => {
    const others = v.pv ? p.state.podsUsing(v.pv) : [];
    const last = i === pod.volumes.length - 1;
    const unstageToo = v.pv !== undefined && v.staging !== undefined && others.length === 0;
    // The block target's directory is per volume; the last pod's unpublish removes it.
    const targetDirs = v.block && others.length > 0 ? [] : [path.dirname(v.target)];
    unpublish(p, pod, v, [...targetDirs, ...(last && !unstageToo ? podDirs : [])]);
    if (unstageToo) {
      unstage(p, v, `no other pod on ${p.facts.nodeName} uses ${v.pv}: undo the node's mount`, [...(v.block ? [v.staging!] : [v.staging!, path.dirname(v.staging!)]), ...(last ? podDirs : [])]);
      left.push(v.pv!);
    }
  });
  return left;
}

/**
 * After ControllerExpandVolume said so (node_expansion_required):
 * NodeExpandVolume where a pod has the volume (online), for the claim's
 * allocated size, `requested`: the size csi-resizer asked for and wrote to
 * status.allocatedResources, where the kubelet takes it from
 * (operation_generator.go, nodeExpandVolume, with
 * RecoverVolumeExpansionFailure, on by default since Kubernetes 1.32; the
 * PV's capacity, the controller's answer, only before). Without
 * node_expansion_required the resizer marks the claim's resize finished
 * and the kubelet calls nothing. Then the
 * kubelet's next stats, and the size the pod sees (at least the
 * `requested` bytes). Where no pod has the volume, the resize waits for
 * the next pod to mount it (expandPending).
 */
export function expandOnNode(p: Planning, pv: PvState, requested: number): void {
  const users = p.state.podsUsing(pv.name);
  const v = users[0]?.volumes.find((x) => x.pv === pv.name);
  if (!v) {
    p.state.nodeResizePending.set(pv.name, requested);
    p.note(
      `no pod on ${p.facts.nodeName} uses ${pv.name} now: if ControllerExpandVolume answered node_expansion_required, csi-resizer marks the claim NodeResizePending, ` +
        "and the kubelet calls NodeExpandVolume when a pod next mounts the volume, right after NodePublishVolume",
    );
    return;
  }
  p.when({ onlyIf: placeholder("nodeExpansionRequired", pv.name) }, () => {
    growOnNode(p, pv, v, users, requested, `ControllerExpandVolume asked for node expansion: pod ${users[0]!.name} has ${pv.name} mounted (online expansion), for the claim's allocated size`);
  });
  p.call({
    method: "NodeGetVolumeStats",
    service: "Node",
    process: "node",
    caller: "kubelet",
    why: "the kubelet's periodic volume metrics",
    request: { volumeId: pv.handle, volumePath: v.target, ...(v.staging ? { stagingTargetPath: v.staging } : {}) },
  });
  if (!v.block) p.check({ type: "size", what: `pod ${users[0]!.name} sees the ${requested} bytes asked for (statfs) in ${pv.name}`, path: v.target, atLeastBytes: Math.floor(requested * 0.9) });
  for (const u of users) {
    const uv = u.volumes.find((x) => x.pv === pv.name)!;
    p.check({ type: "data", what: `pod ${u.name} still finds its data in ${pv.name} after the expansion`, pod: u.name, path: uv.target, block: uv.block, expect: [...p.state.filesOf(pv.handle)] });
  }
}

/**
 * A resize that waited for a pod (NodeResizePending): the kubelet's mount
 * of a volume is MountDevice (NodeStageVolume), SetUp (NodePublishVolume),
 * then expandVolumeDuringMount, which calls NodeExpandVolume for the
 * claim's allocated size while its status.capacity is below the PV's, and records the
 * claim's resize finished when it answers. So the first pod to mount the
 * volume after the resize finishes it, and later pods find nothing to do.
 * A read-only mount is not expanded (the resize stays pending).
 */
function expandPending(p: Planning, pod: PodState, v: PodVolumeState, pv: PvState): void {
  const requested = p.state.nodeResizePending.get(pv.name);
  if (requested === undefined) return;
  if (v.readOnly) {
    return p.note(`pod ${pod.name} mounts ${pv.name} read-only: the kubelet does not expand it, and the claim's resize stays pending for the next pod`);
  }
  p.note(
    `the claim's resize waits for the node if ControllerExpandVolume answered node_expansion_required: ` +
      `the kubelet calls NodeExpandVolume after mounting ${pv.name} for pod ${pod.name}, then marks the resize finished`,
  );
  p.when({ onlyIf: placeholder("nodeExpansionRequired", pv.name) }, () => {
    const why = `the claim's resize waits for the node (NodeResizePending): having mounted ${pv.name} for pod ${pod.name}, the kubelet expands it, for the claim's allocated size`;
    growOnNode(p, pv, v, [...p.state.podsUsing(pv.name), pod], requested, why);
  });
  const size = Math.floor(requested * 0.9);
  if (!v.block) p.check({ type: "size", what: `pod ${pod.name} sees the ${requested} bytes asked for (statfs) in ${pv.name}`, path: v.target, atLeastBytes: size });
  p.state.nodeResizePending.delete(pv.name);
}

/**
 * NodeExpandVolume on a mounted volume. A node plugin that cannot grow a
 * mounted ext4 file system (it lacks CAP_SYS_RESOURCE) says
 * FAILED_PRECONDITION and grows it when the volume is next staged: then
 * the pods that use it are started again, and the kubelet calls
 * NodeExpandVolume once more after mounting, which now finds it grown.
 */
function growOnNode(p: Planning, pv: PvState, v: PodVolumeState, users: PodState[], bytes: number, why: string): void {
  // Learnt from this call's answer only: an earlier expansion's does not decide this one's restart.
  const deferred = `growsWhenStaged:${pv.name}@${p.steps.length}`;
  nodeExpand(p, pv, v, bytes, why, deferred);
  p.when({ onlyIf: `\${${deferred}}` }, () => {
    p.note(`if the node plugin can grow ${pv.name} only when it is staged again, its pods are restarted (deleted and made again by their owner; here at the same paths)`);
    for (const u of users) unpublish(p, u, u.volumes.find((x) => x.pv === pv.name)!, []);
    unstage(p, v, "the last pod on the node is gone", []);
    stage(p, pv, v, "a restarted pod needs the volume: staging grows the file system first");
    for (const u of users) publish(p, u, u.volumes.find((x) => x.pv === pv.name)!, pv, {});
    nodeExpand(p, pv, v, bytes, "the claim's resize is still pending: the kubelet finishes it after mounting", undefined);
  });
}

function nodeExpand(p: Planning, pv: PvState, v: PodVolumeState, bytes: number, why: string, deferKey: string | undefined): void {
  p.call({
    method: "NodeExpandVolume",
    service: "Node",
    process: "node",
    caller: "kubelet",
    why,
    request: { volumeId: pv.handle, volumePath: v.target, capacityRange: { requiredBytes: bytes, limitBytes: 0 }, ...(v.staging ? { stagingTargetPath: v.staging } : {}), volumeCapability: v.capability, secrets: {} },
    ...(deferKey
      ? { or: { code: "FAILED_PRECONDITION", because: "the node plugin cannot grow a mounted ext4 file system (no CAP_SYS_RESOURCE) and grows it when the volume is next staged", learn: deferKey } }
      : {}),
  });
}

function stage(p: Planning, pv: PvState, v: PodVolumeState, why: string): void {
  p.call({
    method: "NodeStageVolume",
    service: "Node",
    process: "node",
    caller: "kubelet",
    why,
    request: { volumeId: pv.handle, publishContext: publishContextOf(p, pv), stagingTargetPath: v.staging!, volumeCapability: v.capability, secrets: {}, volumeContext: pv.context },
    mkdirBefore: [v.staging!],
  });
}

function publish(p: Planning, pod: PodState, v: PodVolumeState, pv: PvState | undefined, inlineAttributes: JsonObject): void {
  const volumeContext: JsonObject = pv
    ? { "...": pv.context, ...podIdentity(p, pod), ...(p.deployment.podInfoOnMount ? { "csi.storage.k8s.io/ephemeral": "false" } : {}) }
    : { ...inlineAttributes, ...podIdentity(p, pod), "csi.storage.k8s.io/ephemeral": "true" };
  p.call({
    method: "NodePublishVolume",
    service: "Node",
    process: "node",
    caller: "kubelet",
    why: pv ? `pod ${pod.name} needs ${pv.name} at its own path` : `pod ${pod.name} declares inline volume ${v.name}: the driver makes it and mounts it for the pod`,
    request: {
      volumeId: v.handle,
      publishContext: pv ? publishContextOf(p, pv) : {},
      ...(v.staging ? { stagingTargetPath: v.staging } : {}),
      targetPath: v.target,
      volumeCapability: v.capability,
      readonly: v.readOnly,
      secrets: {},
      volumeContext,
    },
    mkdirBefore: [path.dirname(v.target)],
  });
}

function unpublish(p: Planning, pod: PodState, v: PodVolumeState, rmdirAfter: string[]): void {
  p.call({
    method: "NodeUnpublishVolume",
    service: "Node",
    process: "node",
    caller: "kubelet",
    why: `pod ${pod.name} is deleted: take ${v.pv ?? v.name} away from it`,
    request: { volumeId: v.handle, targetPath: v.target },
    rmdirAfter,
  });
}

function unstage(p: Planning, v: PodVolumeState, why: string, rmdirAfter: string[]): void {
  p.call({ method: "NodeUnstageVolume", service: "Node", process: "node", caller: "kubelet", why, request: { volumeId: v.handle, stagingTargetPath: v.staging! }, rmdirAfter });
}
