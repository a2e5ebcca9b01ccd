/**
 * Kubernetes objects as plain data: parsed YAML, with a few typed
 * accessors so code that reads manifests reads like the manifests.
 *
 * A manifest file holds one or more YAML documents, each one object with
 * apiVersion, kind and metadata. Nothing here knows any schema (the
 * offline deploy checks validate against kubernetes-models); the replay
 * and the deploy checks both read objects through this module.
 */
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

export interface K8sObject extends JsonObject {
  apiVersion: string;
  kind: string;
  metadata: JsonObject;
}

/** Parse a multi-document YAML text; empty documents are skipped. */
export function parseObjects(text: string, source: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`${source}: ${doc.errors[0]!.message}`);
    const value = doc.toJS() as Json;
    if (value === null) continue;
    if (!isObject(value) || typeof value.apiVersion !== "string" || typeof value.kind !== "string" || !isObject(value.metadata)) {
      throw new Error(`${source}: a document is not a Kubernetes object (apiVersion, kind, metadata)`);
    }
    out.push(value as K8sObject);
  }
  return out;
}

export function readObjects(file: string): K8sObject[] {
  return parseObjects(readFileSync(file, "utf8"), file);
}

export function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Follow a path of keys/indexes; undefined if any step is missing. */
export function at(v: Json | undefined, ...path: (string | number)[]): Json | undefined {
  let cur = v;
  for (const p of path) {
    if (typeof p === "number") cur = Array.isArray(cur) ? cur[p] : undefined;
    else cur = isObject(cur) ? cur[p] : undefined;
    if (cur === undefined) return undefined;
  }
  return cur;
}

export function str(v: Json | undefined): string | undefined {
  return typeof v === "string" ? v : undefined;
}

export function list(v: Json | undefined): Json[] {
  return Array.isArray(v) ? v : [];
}

export function nameOf(o: K8sObject): string {
  return str(o.metadata.name) ?? "(unnamed)";
}

export function namespaceOf(o: K8sObject): string | undefined {
  return str(o.metadata.namespace);
}

/** "Kind/namespace/name" or "Kind/name", for messages. */
export function describe(o: K8sObject): string {
  const ns = namespaceOf(o);
  return `${o.kind}/${ns ? ns + "/" : ""}${nameOf(o)}`;
}

export function ofKind(objects: readonly K8sObject[], kind: string): K8sObject[] {
  return objects.filter((o) => o.kind === kind);
}

/** The pod template of a workload, or the pod itself. */
export function podSpecOf(o: K8sObject): JsonObject | undefined {
  const spec = o.kind === "Pod" ? at(o, "spec") : at(o, "spec", "template", "spec");
  return isObject(spec) ? spec : undefined;
}

export function containersOf(o: K8sObject): JsonObject[] {
  return list(at(podSpecOf(o), "containers")).filter(isObject);
}

export function argsOf(container: JsonObject): string[] {
  return list(container.args).filter((a): a is string => typeof a === "string");
}
