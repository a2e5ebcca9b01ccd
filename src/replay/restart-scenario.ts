/**
 * The node plugin restarted while its volumes are in use — what happens
 * when its pod is deleted (`kubectl delete pod`), updated, or evicted.
 *
 * Staged and published volumes outlive the plugin: their mounts belong to
 * the node, not to the plugin's container. The new plugin starts in a new
 * mount namespace that inherits those mounts, and must recognise them as
 * its volumes' (by what the kernel says — a mount's device and root, a
 * loop device's backing file's device and inode — never by path strings,
 * which a new container may see differently). The scenario, for one
 * volume layout:
 *
 *   pod A starts: NodeStage, then the plugin restarts, then NodePublish
 *   the plugin restarts; pod B starts on the same claim (NodePublish only)
 *   the plugin restarts; pod A stops (NodeUnpublish), pod B stops
 *   (NodeUnpublish, NodeUnstage); the claim is deleted (DeleteVolume)
 *
 * with each pod finding what the earlier one wrote, and every clean-up
 * succeeding.
 */
import type { K8sObject } from "./k8s-objects";
import type { Scenario } from "./scenario";

export type Layout = "dir" | "quota" | "image" | "block" | "nfs" | "memory";

export const LAYOUTS: readonly Layout[] = ["dir", "quota", "image", "block", "nfs", "memory"];

/** StorageClass parameters that make a volume of `layout` (docs/capacity.md, docs/nfs.md). */
function parameters(layout: Layout, share: string): Record<string, string> {
  switch (layout) {
    case "dir":
      return { backend: "hostpath", capacity: "none" };
    case "quota":
      return { backend: "hostpath", capacity: "quota" };
    case "image":
      return { backend: "hostpath", capacity: "image" };
    case "block":
      return { backend: "hostpath" };
    case "nfs":
      return { backend: "nfs", share };
    case "memory":
      return { backend: "memory" };
  }
}

function pod(name: string, claim: string, block: boolean): K8sObject {
  const container = { name: "app", image: "busybox:1.37.0", ...(block ? { volumeDevices: [{ name: "data", devicePath: "/dev/data" }] } : { volumeMounts: [{ name: "data", mountPath: "/data" }] }) };
  return { apiVersion: "v1", kind: "Pod", metadata: { name }, spec: { containers: [container], volumes: [{ name: "data", persistentVolumeClaim: { claimName: claim } }] } };
}

/**
 * The restart scenario for one layout. `driver` is the StorageClass's
 * provisioner; `share` the nfs share as the driver's container sees it.
 */
export function restartScenario(layout: Layout, opts: { driver: string; share: string; size?: string }): Scenario {
  const shared = layout === "nfs";
  const block = layout === "block";
  const storageClass: K8sObject = {
    apiVersion: "storage.k8s.io/v1",
    kind: "StorageClass",
    metadata: { name: `restart-${layout}` },
    provisioner: opts.driver,
    parameters: parameters(layout, opts.share),
    reclaimPolicy: "Delete",
    volumeBindingMode: shared ? "Immediate" : "WaitForFirstConsumer",
  };
  const claim: K8sObject = {
    apiVersion: "v1",
    kind: "PersistentVolumeClaim",
    metadata: { name: "data" },
    spec: {
      storageClassName: `restart-${layout}`,
      accessModes: [shared ? "ReadWriteMany" : "ReadWriteOnce"],
      ...(block ? { volumeMode: "Block" } : {}),
      resources: { requests: { storage: opts.size ?? "128Mi" } },
    },
  };
  return {
    name: `restart-${layout}`,
    namespace: `csi-lab-restart-${layout}`,
    actions: [
      { type: "apply", objects: [storageClass, claim] },
      { type: "apply", objects: [pod("pod-a", "data", block)], restartBefore: "NodePublishVolume" },
      { type: "restart-node", why: "between pod A's publish and pod B's start" },
      { type: "apply", objects: [pod("pod-b", "data", block)] },
      { type: "restart-node", why: "between the pods' publish and their unpublish" },
      { type: "delete", kind: "Pod", name: "pod-a" },
      { type: "delete", kind: "Pod", name: "pod-b" },
      { type: "delete-namespace" },
    ],
  };
}
