/**
 * A deliberately small kustomize, for machines without kubectl.
 *
 * The manifests are checked after kustomize has assembled them. The real
 * tool is `kubectl kustomize` (render.ts uses it when present: it ships in
 * this project's machine image, but no Debian or npm package provides a
 * current kustomize). This fallback understands only the features our
 * kustomizations use — resources, components, JSON 6902 patches with a
 * target, and images — and refuses any other field rather than guess.
 * When kubectl is present, a test checks that both give the same objects.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import * as path from "node:path";
import { parse } from "yaml";
import { at, containersOf, isObject, list, podSpecOf, readObjects, str, type Json, type JsonObject, type K8sObject } from "./k8s-objects";

const KNOWN_FIELDS = new Set(["apiVersion", "kind", "resources", "components", "patches", "images"]);

export function renderSubset(dir: string): K8sObject[] {
  return build(dir, "Kustomization");
}

function build(dir: string, expectKind: "Kustomization" | "Component", into: K8sObject[] = []): K8sObject[] {
  const file = ["kustomization.yaml", "kustomization.yml"].map((f) => path.join(dir, f)).find((f) => existsSync(f));
  if (!file) throw new Error(`${dir}: no kustomization.yaml`);
  const k = parse(readFileSync(file, "utf8")) as Json;
  if (!isObject(k)) throw new Error(`${file}: not a mapping`);
  for (const key of Object.keys(k)) {
    if (!KNOWN_FIELDS.has(key)) throw new Error(`${file}: field "${key}" is not supported by the offline renderer; install kubectl`);
  }
  const kind = str(k.kind) ?? "Kustomization";
  if (kind !== expectKind) throw new Error(`${file}: expected a ${expectKind}, found ${kind}`);

  const objects = into;
  for (const r of list(k.resources)) {
    const p = path.resolve(dir, String(r));
    if (statSync(p).isDirectory()) objects.push(...build(p, "Kustomization"));
    else objects.push(...readObjects(p));
  }
  for (const c of list(k.components)) build(path.resolve(dir, String(c)), "Component", objects);
  for (const p of list(k.patches)) applyPatch(objects, p, dir, file);
  for (const img of list(k.images)) setImage(objects, img, file);
  return objects;
}

function applyPatch(objects: K8sObject[], spec: Json, dir: string, file: string): void {
  if (!isObject(spec) || !isObject(spec.target)) throw new Error(`${file}: a patch without a target is not supported offline`);
  const text = typeof spec.path === "string" ? readFileSync(path.resolve(dir, spec.path), "utf8") : str(spec.patch);
  if (text === undefined) throw new Error(`${file}: a patch needs path or patch`);
  const ops = parse(text) as Json;
  if (!Array.isArray(ops)) throw new Error(`${file}: only JSON 6902 patches (a list of operations) are supported offline`);
  const t = spec.target;
  const matches = objects.filter((o) => {
    const [group, version] = o.apiVersion.includes("/") ? o.apiVersion.split("/") : ["", o.apiVersion];
    return (
      (t.kind === undefined || t.kind === o.kind) &&
      (t.name === undefined || t.name === o.metadata.name) &&
      (t.namespace === undefined || t.namespace === o.metadata.namespace) &&
      (t.group === undefined || t.group === group) &&
      (t.version === undefined || t.version === version)
    );
  });
  if (matches.length === 0) throw new Error(`${file}: patch target ${JSON.stringify(t)} matches no object`);
  for (const o of matches) for (const op of ops) applyOp(o, op, file);
}

function pointer(p: string): string[] {
  if (p === "") return [];
  if (!p.startsWith("/")) throw new Error(`bad JSON pointer ${p}`);
  return p.slice(1).split("/").map((s) => s.replace(/~1/g, "/").replace(/~0/g, "~"));
}

function applyOp(target: JsonObject, op: Json, file: string): void {
  if (!isObject(op) || typeof op.op !== "string" || typeof op.path !== "string") throw new Error(`${file}: malformed patch operation`);
  const keys = pointer(op.path);
  const last = keys.pop();
  if (last === undefined) throw new Error(`${file}: cannot patch the whole object`);
  let parent: Json | undefined = target;
  for (const k of keys) parent = Array.isArray(parent) ? parent[Number(k)] : isObject(parent) ? parent[k] : undefined;
  const fail = (why: string) => new Error(`${file}: ${op.op} ${op.path}: ${why}`);
  if (Array.isArray(parent)) {
    const i = last === "-" ? parent.length : Number(last);
    if (!Number.isInteger(i) || i < 0 || i > parent.length) throw fail("index out of range");
    if (op.op === "add") parent.splice(i, 0, structuredClone(op.value ?? null));
    else if (i >= parent.length) throw fail("no such element");
    else if (op.op === "replace") parent[i] = structuredClone(op.value ?? null);
    else if (op.op === "remove") parent.splice(i, 1);
    else if (op.op === "test") {
      if (JSON.stringify(parent[i]) !== JSON.stringify(op.value)) throw fail("test failed");
    } else throw fail("operation not supported offline");
  } else if (isObject(parent)) {
    const has = last in parent;
    if (op.op === "add") parent[last] = structuredClone(op.value ?? null);
    else if (!has) throw fail("no such member");
    else if (op.op === "replace") parent[last] = structuredClone(op.value ?? null);
    else if (op.op === "remove") delete parent[last];
    else if (op.op === "test") {
      if (JSON.stringify(parent[last]) !== JSON.stringify(op.value)) throw fail("test failed");
    } else throw fail("operation not supported offline");
  } else throw fail("parent does not exist");
}

function setImage(objects: K8sObject[], spec: Json, file: string): void {
  if (!isObject(spec) || typeof spec.name !== "string") throw new Error(`${file}: an images entry needs a name`);
  for (const o of objects) {
    const pod = podSpecOf(o);
    if (!pod) continue;
    const containers = [...containersOf(o), ...list(at(pod, "initContainers")).filter(isObject)];
    for (const c of containers) {
      const image = str(c.image);
      if (!image) continue;
      const m = /^(.*?)(?::([^:/@]+))?(?:@(sha256:[0-9a-f]+))?$/.exec(image)!;
      if (m[1] !== spec.name) continue;
      const name = str(spec.newName) ?? m[1];
      const digest = str(spec.digest);
      const tag = str(spec.newTag) ?? m[2];
      c.image = digest ? `${name}@${digest}` : tag ? `${name}:${tag}` : name;
    }
  }
}
