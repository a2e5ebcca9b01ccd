/**
 * Turn a kustomization directory into the objects `kubectl apply -k`
 * would send.
 *
 * `kubectl kustomize` is used when kubectl is on PATH (it is part of this
 * project's machine image); otherwise the small offline renderer in
 * kustomize-subset.ts. Either way the result is parsed into objects.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { renderSubset } from "./kustomize-subset";
import { parseObjects, type K8sObject } from "./k8s-objects";

export type Renderer = "kubectl" | "subset";

let kubectl: boolean | undefined;

export function kubectlAvailable(): boolean {
  kubectl ??= spawnSync("kubectl", ["version", "--client"], { stdio: "ignore" }).status === 0;
  return kubectl;
}

export function renderWithKubectl(dir: string): K8sObject[] {
  const out = execFileSync("kubectl", ["kustomize", dir], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  return parseObjects(out, `kubectl kustomize ${dir}`);
}

export function render(dir: string, renderer: Renderer = kubectlAvailable() ? "kubectl" : "subset"): K8sObject[] {
  return renderer === "kubectl" ? renderWithKubectl(dir) : renderSubset(dir);
}
