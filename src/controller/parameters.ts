/**
 * StorageClass parameters this driver understands.
 *
 * CreateVolume's `parameters` come from the StorageClass. A typo there
 * ("backnd: hostpath") would otherwise be ignored silently and the user
 * would get a volume unlike the one they asked for, so unknown keys are
 * refused. Keys under csi.storage.k8s.io/ are added by the external
 * provisioner (the PVC's name and namespace with --extra-create-metadata)
 * and are accepted as information.
 */
import { invalidArgument } from "../csi/errors";
import { checkMap } from "../csi/validate";
import { CAPACITY_MODES } from "./placement";

export const PROVISIONER_PREFIX = "csi.storage.k8s.io/";

const KNOWN: Record<string, (v: string) => string | undefined> = {
  backend: (v) => (v === "hostpath" ? undefined : `backend ${JSON.stringify(v)} is not available (available: hostpath)`),
  // How the volume's size is enforced (placement.ts, docs/capacity.md).
  capacity: (v) =>
    (CAPACITY_MODES as readonly string[]).includes(v) ? undefined : `capacity ${JSON.stringify(v)} is not a mode (modes: ${CAPACITY_MODES.join(", ")})`,
};

export function checkParameters(params: Record<string, string> | undefined, field = "parameters"): Record<string, string> {
  const p = checkMap(params, field);
  for (const [k, v] of Object.entries(p)) {
    if (k.startsWith(PROVISIONER_PREFIX)) continue;
    const rule = KNOWN[k];
    if (!rule) throw invalidArgument(`unknown ${field} key ${JSON.stringify(k)} (known: ${Object.keys(KNOWN).join(", ")})`);
    const problem = rule(v);
    if (problem) throw invalidArgument(problem);
  }
  return p;
}

/** The parameters that define a volume (provisioner metadata excluded), for comparing two requests. */
export function defining(params: Record<string, string>): string {
  const keys = Object.keys(params).filter((k) => !k.startsWith(PROVISIONER_PREFIX)).sort();
  return JSON.stringify(keys.map((k) => [k, params[k]]));
}
