/**
 * The kubelet's node calls as plan items, with what it puts in each: the
 * paths it chose (kubelet-paths.ts), the publish context the attacher got,
 * the pod's identity (podInfoOnMount), the directories it makes before a
 * call and removes after, and for a raw block volume its own bind of the
 * published device (kubelet-devices.ts). When each call is made is
 * kubelet.ts's (pods) and resize.ts's (a claim's growth).
 */
import * as path from "node:path";
import type { PodState, PodVolumeState, PvState } from "./cluster-state";
import type { Planning } from "./planning";
import { placeholder } from "./steps";
import type { Json, JsonObject } from "./k8s-objects";

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

export function stage(p: Planning, pv: PvState, v: PodVolumeState, why: string): void {
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

/** NodePublishVolume; for a raw block volume, the kubelet then binds the device for itself and keeps its path (the volume's device path). */
export function publish(p: Planning, pod: PodState, v: PodVolumeState, pv: PvState | undefined, inlineAttributes: JsonObject): void {
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
    mkdirBefore: [path.dirname(v.target), ...(v.deviceMap ? [path.dirname(v.deviceMap)] : [])],
    ...(v.deviceMap ? { bindAfter: { source: v.target, target: v.deviceMap } } : {}),
  });
  if (pv && v.block) p.state.devicePath.set(pv.name, v.target);
}

export function unpublish(p: Planning, pod: PodState, v: PodVolumeState, rmdirAfter: string[]): void {
  p.call({
    method: "NodeUnpublishVolume",
    service: "Node",
    process: "node",
    caller: "kubelet",
    why: `pod ${pod.name} is deleted: take ${v.pv ?? v.name} away from it`,
    request: { volumeId: v.handle, targetPath: v.target },
    ...(v.deviceMap ? { unbindBefore: v.deviceMap } : {}),
    rmdirAfter,
  });
}

export function unstage(p: Planning, v: PodVolumeState, why: string, rmdirAfter: string[]): void {
  p.call({ method: "NodeUnstageVolume", service: "Node", process: "node", caller: "kubelet", why, request: { volumeId: v.handle, stagingTargetPath: v.staging! }, rmdirAfter });
}

/**
 * Where NodeExpandVolume is pointed (operation_generator.go; csi/expander.go): volume_path is a file
 * system volume's target path, and for a raw block volume the device path the kubelet keeps for it —
 * the target path of the pod it was last mapped for; staging_target_path the staging path, except for
 * a raw block volume expanded as it is mapped for a pod, when that mapping did not stage it (empty).
 */
export interface ExpandPaths {
  volumePath: string;
  stagingTargetPath: string | undefined;
}

/**
 * NodeExpandVolume for `bytes` (a number, or a placeholder for one); `deferKey` learns whether the node answered
 * "when staged again". Its volume_capability is made from the PV alone (csi/expander.go, csi_client.go): the access
 * mode of its first access mode, block, or mount with the PV's fs_type and mount options as mount_flags — never a
 * pod's fsGroup as volume_mount_group, which only NodeStage and NodePublish carry; no limit_bytes.
 */
export function nodeExpand(p: Planning, pv: PvState, at: ExpandPaths, bytes: Json, why: string, deferKey: string | undefined): void {
  const capability = p.capability({ block: pv.block, fsType: pv.fsType, mountOptions: pv.mountOptions, mode: p.accessMode(pv.accessModes[0] ?? "ReadWriteOnce", "node") });
  p.call({
    method: "NodeExpandVolume",
    service: "Node",
    process: "node",
    caller: "kubelet",
    why,
    request: {
      volumeId: pv.handle,
      volumePath: at.volumePath,
      capacityRange: { requiredBytes: bytes, limitBytes: 0 },
      ...(at.stagingTargetPath ? { stagingTargetPath: at.stagingTargetPath } : {}),
      volumeCapability: capability,
      secrets: {},
    },
    ...(deferKey
      ? { or: { code: "FAILED_PRECONDITION", because: "the node plugin cannot grow a mounted ext4 file system (no CAP_SYS_RESOURCE) and grows it when the volume is next staged", learn: deferKey } }
      : {}),
  });
}

/**
 * The kubelet's periodic volume metrics for one pod's volume (csi_metrics.go, csi_client.go): volume_id
 * and volume_path only — the target path, or for a raw block volume the kubelet's own bind of the device
 * (csi_plugin.go gives the block mapper's metrics volumeDevices/<pv>/dev/<pod uid>).
 */
export function volumeStats(p: Planning, pv: PvState, v: PodVolumeState): void {
  p.call({ method: "NodeGetVolumeStats", service: "Node", process: "node", caller: "kubelet", why: "the kubelet's periodic volume metrics", request: { volumeId: pv.handle, volumePath: v.deviceMap ?? v.target } });
}
