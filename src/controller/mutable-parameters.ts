/**
 * Mutable parameters: what a VolumeAttributesClass may change.
 *
 * Kubernetes' VolumeAttributesClass carries "mutable parameters": set at
 * CreateVolume (`mutable_parameters`) and changed later with
 * ControllerModifyVolume when a PVC switches class. Each key here changes
 * something real on the volume, and is recorded in its metadata. As with
 * StorageClass parameters, an unknown key or a bad value is refused with
 * INVALID_ARGUMENT before anything is touched — the spec requires that a
 * refused modify changed nothing.
 *
 *   mode   the permission bits of the volume's root directory, in octal
 *          ("0770", "2775", "755"); setuid is refused, it means nothing on
 *          a directory. New volumes start at 0777, like an emptyDir.
 *
 * StorageClass parameters live in parameters.ts; this table is separate so
 * the two can grow without stepping on each other.
 */
import { errnoOf, failedPrecondition, invalidArgument } from "../csi/errors";
import { checkMap } from "../csi/validate";
import type { Driver } from "../server/driver";
import { setRootMode } from "../storage/volume-root";

interface MutableRule {
  /** The canonical form of a valid value, or the reason it is invalid. */
  parse(value: string): { value: string } | { problem: string };
  /** Make the volume so. */
  apply(driver: Driver, volumeId: string, value: string): void;
}

const RULES: Record<string, MutableRule> = {
  mode: {
    parse(v) {
      if (!/^[0-7]{3,4}$/.test(v)) return { problem: `mode ${JSON.stringify(v)} must be 3 or 4 octal digits, e.g. "0770"` };
      const bits = parseInt(v, 8);
      if (bits & 0o4000) return { problem: `mode ${v} sets setuid, which means nothing on a directory` };
      return { value: bits.toString(8).padStart(4, "0") };
    },
    apply(driver, volumeId, v) {
      setRootMode(driver.hostpath.dataDir(volumeId), parseInt(v, 8));
    },
  },
};

export const MUTABLE_KEYS: readonly string[] = Object.keys(RULES);

/** Why `params` cannot be applied, or undefined. */
export function mutableParametersProblem(params: Record<string, string>, field = "mutable_parameters"): string | undefined {
  for (const [k, v] of Object.entries(params)) {
    const rule = RULES[k];
    if (!rule) return `unknown ${field} key ${JSON.stringify(k)} (known: ${MUTABLE_KEYS.join(", ")})`;
    const parsed = rule.parse(v);
    if ("problem" in parsed) return parsed.problem;
  }
  return undefined;
}

/**
 * Check mutable parameters and return them in canonical form ("770" and
 * "0770" are the same mode). INVALID_ARGUMENT for anything unknown or bad.
 */
export function checkMutableParameters(params: Record<string, string> | undefined, field = "mutable_parameters"): Record<string, string> {
  const p = checkMap(params, field);
  const problem = mutableParametersProblem(p, field);
  if (problem) throw invalidArgument(problem);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(p)) {
    const parsed = RULES[k]!.parse(v);
    if ("value" in parsed) out[k] = parsed.value;
  }
  return out;
}

/**
 * Make the volume match `params` (already checked). Only the keys given
 * are touched: the spec forbids changing anything for an absent key.
 */
export function applyMutableParameters(driver: Driver, volumeId: string, params: Record<string, string>): void {
  try {
    for (const [k, v] of Object.entries(params)) RULES[k]?.apply(driver, volumeId, v);
  } catch (err) {
    // O_NOFOLLOW|O_DIRECTORY: gone, a symlink, or not a directory.
    if (["ENOENT", "ELOOP", "ENOTDIR"].includes(errnoOf(err) ?? "")) {
      throw failedPrecondition(`volume ${volumeId} cannot be changed: its directory is missing or is not a directory`);
    }
    throw err;
  }
}

/** Same keys and canonical values. */
export function sameMutableParameters(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
}
