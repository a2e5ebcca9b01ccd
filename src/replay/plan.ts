/**
 * From Kubernetes object changes to CSI calls: the planner plays the
 * controllers that watch the objects of an example and call the driver.
 *
 *   a claim of a csi-lab class        csi-provisioner: CreateVolume (at once
 *                                     for Immediate binding, when the first
 *                                     pod is scheduled for WaitForFirstConsumer)
 *   a pod                             kubelet: NodeStage, NodePublish (kubelet.ts)
 *   a claim asking for more than      csi-resizer: ControllerExpandVolume, then
 *   its status.capacity               the kubelet: NodeExpandVolume (resize.ts)
 *   a claim naming another            csi-resizer: ControllerModifyVolume
 *   VolumeAttributesClass
 *   a VolumeSnapshot                  snapshot-controller makes the content,
 *                                     csi-snapshotter: CreateSnapshot
 *   deleting a pod / claim / snapshot NodeUnpublish+NodeUnstage / DeleteVolume
 *                                     (reclaimPolicy Delete) / DeleteSnapshot
 *
 * The sidecars' calls are in sidecars.ts, the kubelet's in kubelet.ts;
 * each goes to the process the manifests put its sidecar beside
 * (deployment.ts). The whole replay runs on one node. The result is a
 * list of steps (steps.ts) that run.ts plays against a driver.
 */
import { podVolumes, startPod, stopPod } from "./kubelet";
import { sha256, uidFor } from "./kubelet-paths";
import { at, isObject, list, nameOf, str, type K8sObject } from "./k8s-objects";
import { Planning, type DriverFacts, type PlanOptions } from "./planning";
import type { Action, Scenario } from "./scenario";
import { addStaticPv, attach, createClaim, createSnapshot, deleteClaim, deleteSnapshot, detach, provision, pvOf, updateClaim } from "./sidecars";
import type { Step } from "./steps";
import type { Deployment } from "./deployment";

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
    deleteSnapshot(p, name);
  }
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

