/**
 * The objects of the replay's expansion scenarios: a StorageClass that
 * allows expansion, one claim of it, and pods that use the claim — each
 * scenario names its own, so no two scenarios share an object — with the
 * small helpers their assertions read the calls with.
 */
import type { Json, JsonObject, K8sObject } from "../../src/replay/k8s-objects";
import type { ReplayEvent } from "../../src/replay/run";
import type { Action } from "../../src/replay/scenario";

export interface GrowFixture {
  storageClass(driver: string): K8sObject;
  /** The claim, asking for `storage` (a Kubernetes quantity). */
  claim(storage: string): K8sObject;
  /** A pod that mounts the claim at /data (a raw block claim: its device at /dev/data). */
  pod(name: string): K8sObject;
}

export function growFixture(o: { className: string; claimName: string; parameters: Record<string, string>; block?: boolean }): GrowFixture {
  const use: JsonObject = o.block ? { volumeDevices: [{ name: "data", devicePath: "/dev/data" }] } : { volumeMounts: [{ name: "data", mountPath: "/data" }] };
  return {
    storageClass: (driver) => ({
      apiVersion: "storage.k8s.io/v1",
      kind: "StorageClass",
      metadata: { name: o.className },
      provisioner: driver,
      parameters: o.parameters,
      reclaimPolicy: "Delete",
      volumeBindingMode: "WaitForFirstConsumer",
      allowVolumeExpansion: true,
    }),
    claim: (storage) => ({
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: o.claimName },
      spec: { storageClassName: o.className, ...(o.block ? { volumeMode: "Block" } : {}), accessModes: ["ReadWriteOnce"], resources: { requests: { storage } } },
    }),
    pod: (name) => ({
      apiVersion: "v1",
      kind: "Pod",
      metadata: { name },
      spec: {
        containers: [{ name: "app", image: "busybox:1.37.0", ...use }],
        volumes: [{ name: "data", persistentVolumeClaim: { claimName: o.claimName } }],
      },
    }),
  };
}

export const apply = (...objects: K8sObject[]): Action => ({ type: "apply", objects });
export type Call = Extract<ReplayEvent, { type: "call" }>;
export type Reply = Extract<ReplayEvent, { type: "reply" }>;
/** A request's capacity_range.required_bytes, as the replay's JSON shows it. */
export const requiredBytes = (request: Json): unknown => ((request as JsonObject).capacityRange as JsonObject | undefined)?.requiredBytes;
