/**
 * StorageClass parameters this driver understands.
 *
 * CreateVolume's `parameters` come from the StorageClass. A typo there
 * ("backnd: hostpath") would otherwise be ignored silently and the user
 * would get a volume unlike the one they asked for, so unknown keys are
 * refused, and so are keys of another backend (capacity on an nfs class,
 * share on a hostpath one). Keys under csi.storage.k8s.io/ are
 * added by the external provisioner (the PVC's name and namespace with
 * --extra-create-metadata) and are accepted as information.
 *
 *   backend   which backend holds the volume (src/backends/index.ts; the
 *             first there when a StorageClass names none); every other key
 *             is that backend's (Backend.parameterRules).
 */
import { invalidArgument } from "../csi/errors";
import { checkMap } from "../csi/validate";
import type { Driver } from "../server/driver";

export const PROVISIONER_PREFIX = "csi.storage.k8s.io/";

/**
 * Check StorageClass parameters against the rules of the backend they
 * name (src/backends: each backend lists its own keys). INVALID_ARGUMENT
 * names the key and, for a key of another backend, that backend.
 */
export function checkParameters(driver: Pick<Driver, "backends">, params: Record<string, string> | undefined, field = "parameters"): Record<string, string> {
  const p = checkMap(params, field);
  const backend = driver.backends.forParameters(p);
  const rules = backend.parameterRules;
  for (const [k, v] of Object.entries(p)) {
    if (k.startsWith(PROVISIONER_PREFIX) || k === "backend") continue;
    const rule = rules[k];
    if (!rule) {
      const other = driver.backends.all.find((b) => b !== backend && b.parameterRules[k]);
      if (other) throw invalidArgument(`${field} key ${JSON.stringify(k)} applies to backend ${other.name}, not ${backend.name}`);
      throw invalidArgument(`unknown ${field} key ${JSON.stringify(k)} (known for backend ${backend.name}: ${["backend", ...Object.keys(rules)].join(", ")})`);
    }
    const problem = rule(v);
    if (problem) throw invalidArgument(problem);
  }
  backend.checkParameters(p);
  return p;
}

/** The parameters that define a volume (provisioner metadata excluded), for comparing two requests. */
export function defining(params: Record<string, string>): string {
  const keys = Object.keys(params).filter((k) => !k.startsWith(PROVISIONER_PREFIX)).sort();
  return JSON.stringify(keys.map((k) => [k, params[k]]));
}
