/**
 * What a replay plays: a scenario is a list of actions on Kubernetes
 * objects — apply a file, delete an object, restart the node plugin — in
 * the order a person (or deploy/kind/deploy.sh) would do them.
 *
 * An example of deploy/examples is its numbered files applied in order,
 * with the hand-made steps its README describes in between (releasing a
 * claim so that a hand-written PV can adopt its volume: static-pv,
 * lifecycle), and at the end the deletion of its namespace, which is
 * where reclaim policies act.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import { parseObjects, type K8sObject } from "./k8s-objects";

export type Substitution = { handleOfClaim: string } | { nodeName: true };

export type Action =
  /** `kubectl apply -f`; `substitute` fills the file's REPLACE-WITH-… markers; `restartBefore` kills the node plugin just before that kubelet call */
  | { type: "apply"; file?: string; objects: K8sObject[]; substitute?: Record<string, Substitution>; restartBefore?: string }
  | { type: "delete"; kind: string; name: string; why?: string }
  /** delete the (Retain) PersistentVolume a claim was bound to */
  | { type: "delete-pv-of"; claim: string; why?: string }
  | { type: "restart-node"; why: string }
  | { type: "delete-namespace" };

export interface Scenario {
  name: string;
  namespace: string;
  actions: Action[];
}

export interface ExampleFile {
  file: string;
  objects: K8sObject[];
}

export interface Example {
  name: string;
  files: ExampleFile[];
}

/** deploy/examples/<name>/*.yaml, in order. */
export function loadExample(dir: string): Example {
  const files = readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
    .map((f) => ({ file: f, objects: parseObjects(readFileSync(path.join(dir, f), "utf8"), path.join(dir, f)) }));
  return { name: path.basename(dir), files };
}

/** Every example under `root` (deploy/examples). */
export function loadExamples(root: string): Example[] {
  return readdirSync(root)
    .filter((n) => statSync(path.join(root, n)).isDirectory())
    .sort()
    .map((n) => loadExample(path.join(root, n)));
}

/** Release a claim whose volume is retained: its pods, the claim, then its PV (the volume stays). */
function release(claim: string, pods: string[], why: string): Action[] {
  return [
    ...pods.map((name): Action => ({ type: "delete", kind: "Pod", name, why })),
    { type: "delete", kind: "PersistentVolumeClaim", name: claim, why },
    { type: "delete-pv-of", claim, why: "an administrator deletes the Released PV; the volume stays for the hand-written PV to adopt" },
  ];
}

/** The hand-made steps before an example file, as its README (and deploy.sh) does them. */
const BEFORE: Record<string, Record<string, Action[]>> = {
  "static-pv": { "02-": release("origin-data", ["origin-writer"], "static provisioning, step 2: release the volume made in step 1") },
  lifecycle: { "04-": release("lifecycle-data", ["lifecycle-writer", "lifecycle-reader"], "stage 3: release the claim; Retain keeps the volume") },
};

/** The markers hand-written PVs leave for an administrator to fill in. */
const SUBSTITUTE: Record<string, Record<string, Substitution>> = {
  "static-pv": { "REPLACE-WITH-VOLUME-HANDLE": { handleOfClaim: "origin-data" }, "REPLACE-WITH-NODE-NAME": { nodeName: true } },
  lifecycle: { "REPLACE-WITH-VOLUME-HANDLE": { handleOfClaim: "lifecycle-data" } },
};

/** An example as deploy.sh plays it: each file, the hand-made steps between, and the namespace deleted at the end. */
export function exampleScenario(example: Example): Scenario {
  const actions: Action[] = [];
  for (const f of example.files) {
    for (const [prefix, before] of Object.entries(BEFORE[example.name] ?? {})) if (f.file.startsWith(prefix)) actions.push(...before);
    actions.push({ type: "apply", file: f.file, objects: f.objects, ...(SUBSTITUTE[example.name] ? { substitute: SUBSTITUTE[example.name] } : {}) });
  }
  actions.push({ type: "delete-namespace" });
  return { name: example.name, namespace: `csi-lab-ex-${example.name}`, actions };
}
