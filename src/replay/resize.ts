/**
 * A claim asking for another size, as Kubernetes plays it (1.32 on, where
 * RecoverVolumeExpansionFailure is on by default):
 *
 *   the API server  takes a bound claim's new request; a lower one only while
 *                   it stays above the claim's status.capacity, else it
 *                   refuses the update (ValidatePersistentVolumeClaimUpdate,
 *                   pkg/apis/core/validation/validation.go); a higher one
 *                   only where the claim's StorageClass allows volume
 *                   expansion (admission, resizeClaim); an unbound
 *                   claim's request cannot change
 *   csi-resizer     acts when the request is above status.capacity
 *                   (pvcNeedResize, external-resizer pkg/controller/
 *                   controller.go) and the node's half of an earlier resize
 *                   is not still pending (expandAndRecover,
 *                   expand_and_recover.go: it waits for the kubelet); it asks
 *                   ControllerExpandVolume for the request where the PV is
 *                   smaller, else again for the size it asked for last,
 *                   which it keeps in status.allocatedResources. The answer
 *                   becomes the PV's capacity. Without node_expansion_required
 *                   the resize is finished and status.capacity is the answer
 *                   (markOverallExpansionAsFinished, resize_status.go); with
 *                   it the claim waits for the node (NodeResizePending)
 *   the kubelet     calls NodeExpandVolume for the allocated size: at once
 *                   where a pod has the volume (online; not where that
 *                   pod mounts it read-only), else right after the next
 *                   read-write NodePublishVolume of it; and marks the
 *                   resize finished with status.capacity the allocated size
 *                   (MarkFSResizeFinished, pkg/volume/util/resize_util.go).
 *                   On every read-write mount it expands again while
 *                   status.capacity is below the PV's capacity
 *                   (expandVolumeDuringMount, operation_generator.go) — so
 *                   after a driver rounded the size up, each later pod's
 *                   mount repeats it, changing nothing. Once the node is done,
 *                   csi-resizer looks at the claim again: a request raised
 *                   meanwhile is expanded then.
 *
 * What decides each step — status.capacity, the PV's capacity — comes from
 * the driver's answers, known only when the replay runs. So the claim's
 * status is kept as records (steps.ts), and the calls are planned behind
 * tests of it.
 */
import type { ClaimState, PodState, PodVolumeState, PvState } from "./cluster-state";
import { nodeExpand, publish, stage, unpublish, unstage, volumeStats, type ExpandPaths } from "./kubelet-calls";
import { sidecarCall, type Planning } from "./planning";
import { placeholder, type Test } from "./steps";

type StatusKind = "request" | "claimCapacity" | "allocated" | "resizePending";

/** The learnt-value key of a claim's status field, kept under its PV's name. */
const key = (kind: StatusKind, pv: PvState) => `${kind}:${pv.name}`;
const ref = (kind: StatusKind | "capacity" | "nodeExpansionRequired", pv: PvState) => placeholder(kind, pv.name);

/** The PV controller binds a claim to a PV: status.capacity is the PV's capacity. */
export function bindClaim(p: Planning, claim: ClaimState, pv: PvState): void {
  p.record(`claim ${claim.name} is bound to ${pv.name}: its status.capacity is the PV's capacity`, {
    [key("request", pv)]: claim.sizeBytes,
    [key("claimCapacity", pv)]: pv.capacity,
    [key("resizePending", pv)]: false,
  });
}

/**
 * A claim applied with request `size` (and StorageClass `className`): false when the API server refuses it whatever
 * the claim's status — an unbound claim's, or a larger request the PersistentVolumeClaimResize admission plugin
 * forbids (plugin/pkg/admission/storage/persistentvolume/resize): it lets a request grow only where the claim names
 * a StorageClass, the same before and after, that exists and sets allowVolumeExpansion: true.
 */
export function resizeClaim(p: Planning, claim: ClaimState, pv: PvState | undefined, size: number, className: string): boolean {
  if (size === claim.sizeBytes) return true;
  if (!pv) {
    p.note(`the claim asks for ${size} bytes, but it is not bound yet: the API server refuses the update (a claim's request may change only once it is bound)`);
    return false;
  }
  const was = claim.sizeBytes;
  const sc = className !== "" && className === claim.storageClass ? p.state.classNamed("StorageClass", className) : undefined;
  if (size > was && sc?.allowVolumeExpansion !== true) {
    const which = claim.storageClass === "" ? "names no StorageClass" : `is of StorageClass ${claim.storageClass}, which ${sc ? "does not set allowVolumeExpansion: true" : "does not exist"}`;
    p.note(
      `the claim asks for ${size} bytes instead of ${was}, but it ${which}: the API server refuses the update as Forbidden ` +
        "(only a dynamically provisioned claim whose StorageClass allows volume expansion may grow); nothing changes and csi-resizer is not involved",
    );
    return false;
  }
  claim.sizeBytes = size;
  if (size < was) {
    p.note(
      `the claim asks for ${size} bytes, less than the ${was} before: the API server takes that only above the claim's status.capacity ` +
        "(so that a resize not finished yet can be asked for less), and refuses the update otherwise; a volume never shrinks",
    );
  } else {
    p.note(`the claim asks for ${size} bytes instead of ${was}`);
  }
  const accepted: Test = { any: [{ not: { above: [ref("request", pv), size] } }, { above: [size, ref("claimCapacity", pv)] }] };
  p.when({ test: accepted }, () => p.record("the API server takes the claim's new request", { [key("request", pv)]: size }));
  if (p.state.mayWaitForNode.has(pv.name)) p.state.raisedWhileWaiting.add(pv.name);
  resizer(p, claim, pv, true, undefined);
  return true;
}

/** The pods on the node using `pv`, with `mounting`, a pod whose start is being planned. */
function usersOf(p: Planning, pv: PvState, mounting: PodState | undefined): PodState[] {
  return [...p.state.podsUsing(pv.name, mounting?.name), ...(mounting ? [mounting] : [])];
}

/** csi-resizer's look at the claim (expandAndRecover), and what follows its ControllerExpandVolume; `mounting`: a pod being started has it too. */
function resizer(p: Planning, claim: ClaimState, pv: PvState, first: boolean, mounting: PodState | undefined): void {
  if (!p.deployment.routes["csi-resizer"]) return p.note("no csi-resizer is deployed: nothing calls ControllerExpandVolume");
  if (first) {
    p.note(
      "csi-resizer expands the volume if the request is above the claim's status.capacity and no earlier resize still waits for the node; " +
        "it records the answer (capacity_bytes) as the PV's capacity",
    );
  }
  const decided = p.decision("resizes", pv.name);
  const needs: Test = { all: [{ above: [ref("request", pv), ref("claimCapacity", pv)] }, { not: { is: ref("resizePending", pv) } }] };
  p.when({ test: needs }, () => p.record(`csi-resizer finds claim ${claim.name} asking for more than its status.capacity`, { [decided]: true }));
  p.when({ onlyIf: `\${${decided}}` }, () => {
    // The request where the PV is smaller; where the PV already holds it (a driver that rounded up), the size asked for last.
    p.when({ test: { above: [ref("request", pv), ref("capacity", pv)] } }, () => p.record("csi-resizer keeps the request as status.allocatedResources", { [key("allocated", pv)]: ref("request", pv) }));
    const capability = p.capability({ block: pv.block, fsType: pv.fsType, mountOptions: pv.mountOptions, mode: p.accessMode(pv.accessModes[0]!, "controller") });
    const request = { volumeId: pv.handle, capacityRange: { requiredBytes: ref("allocated", pv), limitBytes: 0 }, secrets: {}, volumeCapability: capability };
    sidecarCall(p, "csi-resizer", "ControllerExpandVolume", `claim ${claim.name} asks for more than its status.capacity`, request, { save: { expansion: pv.name } });
    p.state.resized.add(pv.name);
    pv.capacity = placeholder("capacity", pv.name);
    p.when({ unless: ref("nodeExpansionRequired", pv) }, () => p.record("csi-resizer marks the resize finished: status.capacity is the controller's answer", { [key("claimCapacity", pv)]: ref("capacity", pv) }));
    p.when({ onlyIf: ref("nodeExpansionRequired", pv) }, () => {
      p.record("the node must follow: csi-resizer marks the claim NodeResizePending", { [key("resizePending", pv)]: true });
      expandOnline(p, pv, mounting);
    });
    const users = usersOf(p, pv, mounting);
    const v = users[0]?.volumes.find((x) => x.pv === pv.name);
    if (!v) return;
    volumeStats(p, pv, v);
    // A read-only pod's online expansion is skipped: the size shows only where the controller's growth is all there is.
    const size = { type: "size" as const, what: `pod ${users[0]!.name} sees the ${ref("allocated", pv)} bytes asked for (statfs) in ${pv.name}`, path: v.target, askedBytes: ref("allocated", pv) };
    if (!v.block && !v.readOnly) p.check(size);
    if (!v.block && v.readOnly) p.when({ unless: ref("nodeExpansionRequired", pv) }, () => p.check(size));
    for (const u of users) {
      const uv = u.volumes.find((x) => x.pv === pv.name)!;
      p.check({ type: "data", what: `pod ${u.name} still finds its data in ${pv.name} after the expansion`, pod: u.name, path: uv.target, block: uv.block, expect: [...p.state.filesOf(pv.handle)] });
    }
  });
}

/**
 * The node's half at once, where a pod on the node has the volume (online):
 * volume_path is the first pod's target path, or for a raw block volume the
 * device path the kubelet keeps for it (kubelet-calls.ts: ExpandPaths), with
 * the staging path. Where no pod has it, it waits for the next mount; so it
 * does where that pod mounts it read-only (the pod's claim source says
 * readOnly): the kubelet's nodeExpandVolume (operation_generator.go) then
 * answers "done" without calling the driver. The kubelet takes whichever of
 * the volume's pods its maps give it first; the replay takes the pod that
 * started first.
 */
function expandOnline(p: Planning, pv: PvState, mounting: PodState | undefined): void {
  const users = usersOf(p, pv, mounting);
  const v = users[0]?.volumes.find((x) => x.pv === pv.name);
  if (!v) {
    p.state.mayWaitForNode.add(pv.name);
    return p.note(
      `no pod on ${p.facts.nodeName} uses ${pv.name} now: if ControllerExpandVolume answered node_expansion_required, the claim waits (NodeResizePending), ` +
        "and the kubelet calls NodeExpandVolume when a pod next mounts the volume, right after NodePublishVolume",
    );
  }
  if (v.readOnly) {
    p.state.mayWaitForNode.add(pv.name);
    return p.note(
      `pod ${users[0]!.name} has ${pv.name} mounted read-only: the kubelet skips its online expansion ("requested read-only file system", ` +
        "an event, no NodeExpandVolume) and counts the volume as resized on the node, so the claim stays NodeResizePending until a pod mounts it read-write",
    );
  }
  const at = { volumePath: v.block ? p.state.devicePath.get(pv.name)! : v.target, stagingTargetPath: v.staging };
  const why = `ControllerExpandVolume asked for node expansion: pod ${users[0]!.name} has ${pv.name} mounted (online expansion), for the claim's allocated size`;
  growOnNode(p, pv, v, users, at, why);
  finished(p, pv);
}

/**
 * A pod mounts a volume whose claim was resized: while its status.capacity
 * is below the PV's capacity, the kubelet calls NodeExpandVolume right
 * after NodePublishVolume, for the allocated size, and marks a pending
 * resize finished. A read-only mount is not expanded. `stagedNow`: this
 * pod's start staged the volume (a raw block volume's expansion then
 * carries the staging path).
 */
export function expandOnMount(p: Planning, pod: PodState, v: PodVolumeState, pv: PvState, stagedNow: boolean): void {
  if (!p.state.resized.has(pv.name)) return; // status.capacity is the PV's capacity until a resize
  if (v.readOnly) {
    return p.note(`pod ${pod.name} mounts ${pv.name} read-only: the kubelet does not expand it (a resize waiting for the node still waits)`);
  }
  p.note(
    `while the claim's status.capacity is below ${pv.name}'s capacity (a resize waits for the node, or one finished at the size asked, below the controller's answer), ` +
      `the kubelet calls NodeExpandVolume right after mounting it for pod ${pod.name}, for the claim's allocated size`,
  );
  p.state.mayWaitForNode.delete(pv.name);
  // Decided before anything changes the claim's status (finished does).
  const expands = p.decision("expandsOnMount", pv.name);
  p.when({ test: { above: [ref("capacity", pv), ref("claimCapacity", pv)] } }, () =>
    p.record(`the kubelet finds the claim's status.capacity below ${pv.name}'s capacity`, { [expands]: true }),
  );
  p.when({ onlyIf: `\${${expands}}` }, () => {
    const at = { volumePath: v.target, stagingTargetPath: v.block && !stagedNow ? undefined : v.staging };
    growOnNode(p, pv, v, usersOf(p, pv, pod), at, `pod ${pod.name} mounted ${pv.name}, whose claim's status.capacity is below its capacity`);
    p.when({ onlyIf: ref("resizePending", pv) }, () => finished(p, pv));
    if (!v.block) p.check({ type: "size", what: `pod ${pod.name} sees the ${ref("allocated", pv)} bytes asked for (statfs) in ${pv.name}`, path: v.target, askedBytes: ref("allocated", pv) });
    const claim = pv.claim ? p.state.claims.get(pv.claim) : undefined;
    if (claim && p.state.raisedWhileWaiting.delete(pv.name)) {
      p.note("the claim asked for more while its resize waited for the node: once the node is done, csi-resizer looks at it again");
      resizer(p, claim, pv, false, pod);
    }
  });
}

/** The kubelet marks the claim's resize finished (MarkFSResizeFinished). */
function finished(p: Planning, pv: PvState): void {
  p.record("the kubelet marks the claim's resize finished: status.capacity is the allocated size", { [key("claimCapacity", pv)]: ref("allocated", pv), [key("resizePending", pv)]: false });
}

/**
 * NodeExpandVolume on a mounted volume, for the claim's allocated size. A
 * node plugin that cannot grow a mounted ext4 file system (it lacks
 * CAP_SYS_RESOURCE) says FAILED_PRECONDITION and grows it when the volume
 * is next staged: then the pods that use it are started again, and the
 * kubelet calls NodeExpandVolume once more after mounting, which now finds
 * it grown.
 */
function growOnNode(p: Planning, pv: PvState, v: PodVolumeState, users: PodState[], at: ExpandPaths, why: string): void {
  const bytes = ref("allocated", pv);
  // Learnt from this call's answer only: an earlier expansion's does not decide this one's restart.
  const deferred = p.decision("growsWhenStaged", pv.name);
  nodeExpand(p, pv, at, bytes, why, deferred);
  p.when({ onlyIf: `\${${deferred}}` }, () => {
    p.note(`if the node plugin can grow ${pv.name} only when it is staged again, its pods are restarted (deleted and made again by their owner; here at the same paths)`);
    for (const u of users) unpublish(p, u, u.volumes.find((x) => x.pv === pv.name)!, []);
    unstage(p, v, "the last pod on the node is gone", []);
    stage(p, pv, v, "a restarted pod needs the volume: staging grows the file system first");
    for (const u of users) publish(p, u, u.volumes.find((x) => x.pv === pv.name)!, pv, {});
    const last = users[users.length - 1]!.volumes.find((x) => x.pv === pv.name)!;
    nodeExpand(p, pv, { volumePath: last.target, stagingTargetPath: v.staging }, bytes, "the claim's resize is still pending: the kubelet finishes it after mounting", undefined);
  });
}
