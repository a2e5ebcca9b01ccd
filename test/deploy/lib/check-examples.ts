/**
 * Cross-checks for the examples: everything an example refers to exists,
 * in the example itself or in the deployment it runs against.
 *
 *  - StorageClasses, VolumeSnapshotClasses and VolumeAttributesClasses it names
 *  - claims its pods mount, claims and snapshots its dataSources name,
 *    the PV a claim binds to by volumeName
 *  - a PodMonitor selects the driver's pods and a port they declare
 *  - drivers it names are ours (checkDriverNames), and its nfs StorageClasses'
 *    shares are ones the deployment's drivers may use (checkAllowedShares)
 */
import { checkAllowedShares, checkDriverNames } from "./check-cluster";
import { driverInstances } from "./check-pods";
import { at, describe, isObject, list, nameOf, ofKind, str, type K8sObject } from "./objects";
import { workloadsOf } from "./workloads";

export function checkExample(example: readonly K8sObject[], deployment: readonly K8sObject[]): string[] {
  const problems: string[] = [];
  const all = [...deployment, ...example];
  const names = (kind: string) => new Set(ofKind(all, kind).map(nameOf));
  const storageClasses = names("StorageClass");
  const snapshotClasses = names("VolumeSnapshotClass");
  const attributeClasses = names("VolumeAttributesClass");
  const claims = new Set(ofKind(example, "PersistentVolumeClaim").map(nameOf));
  const snapshots = new Set(ofKind(example, "VolumeSnapshot").map(nameOf));
  const volumes = ofKind(example, "PersistentVolume");
  const driverName = ofKind(deployment, "CSIDriver")[0];
  problems.push(...checkDriverNames(example, driverName ? nameOf(driverName) : undefined));
  problems.push(...checkAllowedShares(example, driverInstances(deployment)));

  for (const pvc of ofKind(example, "PersistentVolumeClaim")) {
    const sc = str(at(pvc, "spec", "storageClassName"));
    if (sc === undefined) problems.push(`${describe(pvc)}: name a storageClassName; the cluster's default class may not be csi-lab`);
    else if (sc !== "" && !storageClasses.has(sc)) problems.push(`${describe(pvc)}: StorageClass ${sc} does not exist`);
    const vac = str(at(pvc, "spec", "volumeAttributesClassName"));
    if (vac && !attributeClasses.has(vac)) problems.push(`${describe(pvc)}: VolumeAttributesClass ${vac} does not exist`);
    const source = at(pvc, "spec", "dataSource");
    if (isObject(source)) {
      const known = source.kind === "VolumeSnapshot" ? snapshots : source.kind === "PersistentVolumeClaim" ? claims : undefined;
      if (!known?.has(String(source.name))) problems.push(`${describe(pvc)}: dataSource ${String(source.kind)}/${String(source.name)} is not in the example`);
    }
    const pvName = str(at(pvc, "spec", "volumeName"));
    if (pvName) {
      const pv = volumes.find((v) => nameOf(v) === pvName);
      if (!pv) problems.push(`${describe(pvc)}: volumeName ${pvName} is not a PersistentVolume of the example`);
      else if ((str(at(pv, "spec", "storageClassName")) ?? "") !== (sc ?? "")) problems.push(`${describe(pvc)}: its storageClassName differs from PV ${pvName}'s, so it cannot bind`);
    }
  }
  // A static PV of a node-local volume is pinned by the driver's topology key.
  const topologyKey = driverName ? `${nameOf(driverName)}/node` : undefined;
  for (const pv of volumes) {
    for (const term of list(at(pv, "spec", "nodeAffinity", "required", "nodeSelectorTerms")).filter(isObject)) {
      for (const e of list(term.matchExpressions).filter(isObject)) {
        if (e.key !== topologyKey) problems.push(`${describe(pv)}: nodeAffinity key ${String(e.key)} is not the driver's topology key ${topologyKey}`);
      }
    }
  }
  for (const snap of ofKind(example, "VolumeSnapshot")) {
    const cls = str(at(snap, "spec", "volumeSnapshotClassName"));
    if (!cls || !snapshotClasses.has(cls)) problems.push(`${describe(snap)}: VolumeSnapshotClass ${cls} does not exist (components/snapshots)`);
    const src = str(at(snap, "spec", "source", "persistentVolumeClaimName"));
    if (src && !claims.has(src)) problems.push(`${describe(snap)}: source claim ${src} is not in the example`);
  }
  for (const w of workloadsOf(example)) {
    for (const v of list(w.pod.volumes).filter(isObject)) {
      const claim = str(at(v, "persistentVolumeClaim", "claimName"));
      if (claim && !claims.has(claim)) problems.push(`${w.label}: mounts claim ${claim}, which is not in the example`);
    }
  }
  for (const pm of ofKind(example, "PodMonitor")) problems.push(...checkPodMonitor(pm, deployment));
  return problems;
}

function checkPodMonitor(pm: K8sObject, deployment: readonly K8sObject[]): string[] {
  const selector = at(pm, "spec", "selector", "matchLabels");
  const namespaces = list(at(pm, "spec", "namespaceSelector", "matchNames"));
  const selected = workloadsOf(deployment).filter((w) => {
    const labels = at(w.object, "spec", "template", "metadata", "labels");
    return (
      isObject(selector) &&
      isObject(labels) &&
      Object.entries(selector).every(([k, v]) => labels[k] === v) &&
      (namespaces.length === 0 || namespaces.includes(w.namespace))
    );
  });
  if (selected.length === 0) return [`${describe(pm)}: selects none of the driver's pods`];
  const problems: string[] = [];
  for (const ep of list(at(pm, "spec", "podMetricsEndpoints")).filter(isObject)) {
    for (const w of selected) {
      const has = w.containers.some((c) => list(c.spec.ports).some((p) => isObject(p) && p.name === ep.port));
      if (!has) problems.push(`${describe(pm)}: port ${String(ep.port)} is not declared by ${w.label}`);
    }
  }
  return problems;
}
