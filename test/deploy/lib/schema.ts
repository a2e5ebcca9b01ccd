/**
 * Schema validation against the Kubernetes OpenAPI definitions.
 *
 * kubernetes-models compiles the API server's published OpenAPI schemas
 * into validators, one class per kind; prometheus-operator's CRDs come
 * from its sister package. We look the class up by apiVersion and kind and
 * let it validate. No schema is written here.
 *
 * Which release: the 4.x line, Kubernetes 1.33's schemas — the newest
 * that installs on the Node.js this project supports (package.json's
 * engines, ≥ 20.19); kubernetes-models 5 (Kubernetes 1.34) requires Node
 * 22. The one kind that costs: storage.k8s.io/v1 VolumeAttributesClass,
 * new in 1.34.
 *
 * So two kinds have no model here: the VolumeSnapshot CRDs
 * (snapshot.storage.k8s.io, never packaged) and VolumeAttributesClass.
 * For them only the metadata is validated (ObjectMeta), and the result
 * says so; a VolumeAttributesClass's driverName is checked against the
 * CSIDriver by check-cluster.ts. Any other unknown kind is an error: a typo
 * in apiVersion or kind must not pass as "unvalidated".
 *
 * import() loads the packages' ES module builds.
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
/**
 * Kinds with no model in the packages above: every kind of an apiVersion
 * ("group/version"), or one kind ("group/version Kind").
 */
export const METADATA_ONLY = new Set([
  "snapshot.storage.k8s.io/v1", // CRDs: their only published schema is the CRD itself
  "storage.k8s.io/v1 VolumeAttributesClass", // Kubernetes 1.34, after kubernetes-models 4.x
]);

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
  if (METADATA_ONLY.has(o.apiVersion) || METADATA_ONLY.has(`${o.apiVersion} ${o.kind}`)) {
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
