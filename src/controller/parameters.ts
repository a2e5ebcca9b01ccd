/**
 * StorageClass parameters this driver understands.
 *
 * CreateVolume's `parameters` come from the StorageClass. A typo there
 * ("backnd: hostpath") would otherwise be ignored silently and the user
 * would get a volume unlike the one they asked for, so unknown keys are
 * refused, and so are keys of the other backend (capacity on an nfs
 * class, share on a hostpath one). Keys under csi.storage.k8s.io/ are
 * added by the external provisioner (the PVC's name and namespace with
 * --extra-create-metadata) and are accepted as information.
 *
 *   backend   hostpath (default): a directory on the node's disk
 *             nfs: a subdirectory of a shared export (shared-parameters.ts)
 */
import { invalidArgument } from "../csi/errors";
import { checkMap } from "../csi/validate";
import { CAPACITY_MODES } from "./placement";
import { SHARED_RULES } from "./shared-parameters";

export const PROVISIONER_PREFIX = "csi.storage.k8s.io/";

export type Backend = "hostpath" | "nfs";
export const BACKENDS: readonly Backend[] = ["hostpath", "nfs"];

type Rule = (v: string) => string | undefined;

const HOSTPATH_RULES: Record<string, Rule> = {
  // How the volume's size is enforced (placement.ts, docs/capacity.md).
  capacity: (v) =>
    (CAPACITY_MODES as readonly string[]).includes(v) ? undefined : `capacity ${JSON.stringify(v)} is not a mode (modes: ${CAPACITY_MODES.join(", ")})`,
};

const RULES_BY_BACKEND: Record<Backend, Record<string, Rule>> = { hostpath: HOSTPATH_RULES, nfs: SHARED_RULES };

/** The backend a StorageClass names (hostpath when it names none). */
export function backendOf(params: Record<string, string>): Backend {
  return (params.backend as Backend | undefined) ?? "hostpath";
}

export function checkParameters(params: Record<string, string> | undefined, field = "parameters"): Record<string, string> {
  const p = checkMap(params, field);
  const backend = p.backend ?? "hostpath";
  if (!(BACKENDS as readonly string[]).includes(backend)) {
    throw invalidArgument(`backend ${JSON.stringify(backend)} is not available (available: ${BACKENDS.join(", ")})`);
  }
  const rules = RULES_BY_BACKEND[backend as Backend];
  for (const [k, v] of Object.entries(p)) {
    if (k.startsWith(PROVISIONER_PREFIX) || k === "backend") continue;
    const rule = rules[k];
    if (!rule) {
      const other = BACKENDS.find((b) => b !== backend && RULES_BY_BACKEND[b][k]);
      if (other) throw invalidArgument(`${field} key ${JSON.stringify(k)} applies to backend ${other}, not ${backend}`);
      throw invalidArgument(`unknown ${field} key ${JSON.stringify(k)} (known for backend ${backend}: backend, ${Object.keys(rules).join(", ")})`);
    }
    const problem = rule(v);
    if (problem) throw invalidArgument(problem);
  }
  if (backend === "nfs" && p.share === undefined) throw invalidArgument("backend nfs needs the parameter share (the export's path, or a local path mounted on every node)");
  return p;
}

/** The parameters that define a volume (provisioner metadata excluded), for comparing two requests. */
export function defining(params: Record<string, string>): string {
  const keys = Object.keys(params).filter((k) => !k.startsWith(PROVISIONER_PREFIX)).sort();
  return JSON.stringify(keys.map((k) => [k, params[k]]));
}
