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
 *          a directory. New volumes start at 0777, like an emptyDir. For
 *          an image volume the root is that of the file system inside the
 *          image: changed where the volume is staged on this node, and at
 *          every stage after. A block volume has no root: refused. A
 *          shared volume's root is its directory on the share.
 *
 * StorageClass parameters live in parameters.ts; this table is separate so
 * the two can grow without stepping on each other. This file checks them;
 * each backend makes a volume so (Backend.modify).
 */
import { invalidArgument } from "../csi/errors";
import { checkMap } from "../csi/validate";
import type { VolumeLayout } from "../storage/volume-record";

interface MutableRule {
  /** The canonical form of a valid value, or the reason it is invalid. */
  parse(value: string): { value: string } | { problem: string };
  /** Why a volume of this layout cannot take the parameter at all, if so. */
  unfit?(layout: VolumeLayout): string | undefined;
}

const RULES: Record<string, MutableRule> = {
  mode: {
    parse(v) {
      if (!/^[0-7]{3,4}$/.test(v)) return { problem: `mode ${JSON.stringify(v)} must be 3 or 4 octal digits, e.g. "0770"` };
      const bits = parseInt(v, 8);
      if (bits & 0o4000) return { problem: `mode ${v} sets setuid, which means nothing on a directory` };
      return { value: bits.toString(8).padStart(4, "0") };
    },
    unfit: (layout) => (layout === "block" ? "mode does not apply to a block volume (it has no directory)" : undefined),
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

/** Why a volume of `layout` cannot take `params`, or undefined. */
export function unfitProblem(layout: VolumeLayout, params: Record<string, string>): string | undefined {
  for (const k of Object.keys(params)) {
    const why = RULES[k]?.unfit?.(layout);
    if (why) return why;
  }
  return undefined;
}

/** Same keys and canonical values. */
export function sameMutableParameters(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a).sort();
  const kb = Object.keys(b).sort();
  return ka.length === kb.length && ka.every((k, i) => k === kb[i] && a[k] === b[k]);
}
