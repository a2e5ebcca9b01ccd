/**
 * The few Kubernetes objects a replay keeps track of while it plans —
 * claims, PersistentVolumes, pods, snapshots — reduced to what decides the
 * CSI calls: which volume a claim is bound to, where a pod's volume is
 * staged and published, who else on the node still uses it, what the
 * pods have written (so a later pod, a clone or a restore can be checked
 * for it).
 *
 * A volume handle is whatever the PersistentVolume says: a literal ID, or
 * a placeholder for the ID CreateVolume will return (steps.ts).
 */
import type { FileEntry } from "./steps";
import type { JsonObject, K8sObject } from "./k8s-objects";

export interface ClaimState {
  name: string;
  uid: string;
  object: K8sObject;
  storageClass: string;
  sizeBytes: number;
  accessModes: string[];
  block: boolean;
  attributesClass: string | undefined;
  /** the PersistentVolume it is bound to */
  pv: string | undefined;
}

export interface PvState {
  name: string;
  handle: string;
  /** sha256(handle) in hex, or a placeholder for it */
  handleHash: string;
  /** volume_context for node calls: a placeholder for what CreateVolume returned, or the PV's volumeAttributes */
  context: string | JsonObject;
  /**
   * spec.capacity in bytes: a hand-written PV's, or a placeholder for what the driver answered
   * (CreateVolume, then each ControllerExpandVolume), which may be more than the claim asked for
   */
  capacity: number | string;
  accessModes: string[];
  block: boolean;
  fsType: string;
  mountOptions: string[];
  reclaim: "Delete" | "Retain";
  /** "hostpath" (node-local) or "nfs" (shared), from the StorageClass; undefined for a static PV */
  backend: string | undefined;
  labels: Record<string, string>;
  claim: string | undefined;
}

export interface PodVolumeState {
  /** the volume's name in the pod spec */
  name: string;
  pv: string | undefined;
  handle: string;
  target: string;
  staging: string | undefined;
  block: boolean;
  /** a raw block volume's device as the kubelet binds it for itself (volumeDevices/<pv>/dev/<pod uid>) */
  deviceMap: string | undefined;
  readOnly: boolean;
  capability: JsonObject;
}

export interface PodState {
  name: string;
  uid: string;
  volumes: PodVolumeState[];
  fsGroup: number | undefined;
  /** the Deployment that made it */
  owner: string | undefined;
}

export interface SnapshotState {
  name: string;
  uid: string;
  content: string;
  className: string;
  files: FileEntry[];
}

export class ClusterState {
  readonly claims = new Map<string, ClaimState>();
  readonly pvs = new Map<string, PvState>();
  readonly pods = new Map<string, PodState>();
  readonly snapshots = new Map<string, SnapshotState>();
  /** cluster-scoped classes, by "Kind/name" */
  readonly classes = new Map<string, K8sObject>();
  /** Deployments: name → the pod template's digest and its current pods */
  readonly deployments = new Map<string, { template: string; pods: string[] }>();
  /** what pods wrote, by volume handle */
  readonly files = new Map<string, FileEntry[]>();
  /** PersistentVolumes attached to the node (ControllerPublishVolume), when the CSIDriver requires attaching */
  readonly attached = new Set<string>();
  /** a claim's last PersistentVolume, kept after the claim is deleted (static PVs adopt retained volumes by it) */
  readonly formerPv = new Map<string, PvState>();
  /**
   * PersistentVolumes a resize was planned for: from then on their claim's status.capacity may be below
   * their capacity, which the kubelet looks at on each mount (resize.ts); before, the two are equal
   */
  readonly resized = new Set<string>();
  /** PersistentVolumes whose claim may wait for the node's half of a resize (NodeResizePending) until a pod mounts them */
  readonly mayWaitForNode = new Set<string>();
  /** PersistentVolumes whose claim asked for more while it may have waited for the node: csi-resizer acts once the node is done */
  readonly raisedWhileWaiting = new Set<string>();
  /**
   * Raw block PersistentVolumes: the target path of the pod the kubelet mapped the device for last, which it
   * keeps as the volume's device path and sends as volume_path for an online NodeExpandVolume (resize.ts)
   */
  readonly devicePath = new Map<string, string>();

  classNamed(kind: string, name: string): K8sObject | undefined {
    return this.classes.get(`${kind}/${name}`);
  }

  filesOf(handle: string): FileEntry[] {
    let f = this.files.get(handle);
    if (!f) this.files.set(handle, (f = []));
    return f;
  }

  /** Pods on the node that use PersistentVolume `pv`, other than `except`. */
  podsUsing(pv: string, except?: string): PodState[] {
    return [...this.pods.values()].filter((p) => p.name !== except && p.volumes.some((v) => v.pv === pv));
  }

  /** The staged volume of PersistentVolume `pv` on the node, if a pod has it. */
  stagedAt(pv: string): string | undefined {
    for (const p of this.pods.values()) for (const v of p.volumes) if (v.pv === pv && v.staging) return v.staging;
    return undefined;
  }
}
