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
 * is only published, with an ID the kubelet makes. A raw block volume's
 * device is bound by the kubelet for itself once published, with a loop
 * device of its own on the bind, and both are undone before it is
 * unpublished (kubelet-devices.ts). After a resize, the
 * kubelet calls NodeExpandVolume as resize.ts says: at once where a pod
 * has the volume, else right after a later pod's NodePublishVolume.
 *
 * The "pod" itself is played by the checks: it finds what earlier pods
 * wrote to its volume and writes a file of its own.
 */
import * as path from "node:path";
import type { PodState, PodVolumeState, PvState } from "./cluster-state";
import { publish, stage, unpublish, unstage } from "./kubelet-calls";
import { blockDeviceMapPath, blockStagingPath, blockTargetPath, blockVolumeDir, ephemeralVolumeId, stagingPath, targetPath } from "./kubelet-paths";
import type { Planning } from "./planning";
import { expandOnMount } from "./resize";
import type { FileEntry } from "./steps";
import { at, isObject, list, str, type JsonObject, type K8sObject } from "./k8s-objects";

const BLOCK_SLOT = 4096;

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
        deviceMap: pv.block ? blockDeviceMapPath(p.opts.kubeletDir, pv.name, uid) : undefined,
        readOnly,
        capability,
      });
    } else if (isObject(inline) && inline.driver === p.driverName) {
      const capability = p.capability({ block: false, fsType: str(inline.fsType) ?? "", mountOptions: [], mode: p.accessMode("ReadWriteOnce", "node"), mountGroup: group });
      out.push({ name, pv: undefined, handle: ephemeralVolumeId(uid, name), target: targetPath(p.opts.kubeletDir, uid, name), staging: undefined, block: false, deviceMap: undefined, readOnly: inline.readOnly === true, capability });
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
    const stagedNow = pv !== undefined && v.staging !== undefined && !p.state.stagedAt(pv.name);
    if (stagedNow) {
      maybeRestart("NodeStageVolume");
      stage(p, pv, v, `pod ${pod.name} is the first on ${p.facts.nodeName} to use ${pv.name}: mount it once for the node`);
    }
    maybeRestart("NodePublishVolume");
    publish(p, pod, v, pv, inlineAttributes.get(v.name) ?? {});
    if (pv) expandOnMount(p, pod, v, pv, stagedNow);
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
      // A raw block volume's directory, with the kubelet's binds of its device under dev/, goes with the device.
      const dirs = v.deviceMap ? [v.staging!, path.dirname(v.deviceMap), blockVolumeDir(p.opts.kubeletDir, v.pv!)] : [v.staging!, path.dirname(v.staging!)];
      unstage(p, v, `no other pod on ${p.facts.nodeName} uses ${v.pv}: undo the node's mount`, [...dirs, ...(last ? podDirs : [])]);
      left.push(v.pv!);
    }
  });
  return left;
}
