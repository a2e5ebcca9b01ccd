/**
 * Schema validation against the Kubernetes OpenAPI definitions.
 *
 * kubernetes-models compiles the API server's published OpenAPI schemas
 * (of a current release: it has storage.k8s.io/v1 VolumeAttributesClass
 * and resource.k8s.io/v1, so 1.34 or later) into validators, one class per
 * kind; prometheus-operator's CRDs come from its sister package. We look
 * the class up by apiVersion and kind and let it validate. No schema is
 * written here.
 *
 * The VolumeSnapshot CRDs (snapshot.storage.k8s.io) have no published
 * model package; for them only the metadata is validated (ObjectMeta), and
 * the result says so. Any other unknown kind is an error: a typo in
 * apiVersion or kind must not pass as "unvalidated".
 *
 * The packages are ES modules, hence the dynamic import().
 */
import type { K8sObject } from "./objects";

interface Model {
  validate(): void;
}
type ModelClass = new (data: unknown) => Model;
type ModelModule = Record<string, ModelClass | undefined>;

const MODULES: Record<string, string> = {
  "monitoring.coreos.com/v1": "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1",
};
/** Kinds whose only published schema is the CRD itself (not packaged for npm). */
export const METADATA_ONLY = new Set(["snapshot.storage.k8s.io/v1"]);

const cache = new Map<string, Promise<ModelModule | undefined>>();

function load(specifier: string): Promise<ModelModule | undefined> {
  let p = cache.get(specifier);
  if (!p) {
    p = (import(specifier) as Promise<ModelModule>).catch(() => undefined);
    cache.set(specifier, p);
  }
  return p;
}

export interface SchemaResult {
  /** "full": the kind's schema; "metadata": ObjectMeta only (see METADATA_ONLY). */
  coverage: "full" | "metadata";
  /** Empty when valid. */
  errors: string[];
}

export async function validateObject(o: K8sObject): Promise<SchemaResult> {
  if (METADATA_ONLY.has(o.apiVersion)) {
    const meta = await load("@kubernetes-models/apimachinery/apis/meta/v1/ObjectMeta");
    return { coverage: "metadata", errors: run(meta?.ObjectMeta, o.metadata, "metadata") };
  }
  const specifier = MODULES[o.apiVersion] ?? `kubernetes-models/${o.apiVersion}`;
  const mod = await load(specifier);
  const cls = mod?.[o.kind];
  if (!cls) return { coverage: "full", errors: [`no schema for ${o.apiVersion} ${o.kind}: unknown apiVersion or kind`] };
  return { coverage: "full", errors: run(cls, o, "") };
}

function run(cls: ModelClass | undefined, data: unknown, prefix: string): string[] {
  if (!cls) return ["the schema package could not be loaded"];
  try {
    new cls(data).validate();
    return [];
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return message.split(", ").map((m) => (prefix ? m.replace(/^data/, `data/${prefix}`) : m));
  }
}
