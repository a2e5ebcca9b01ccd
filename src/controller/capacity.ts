/**
 * Turning a CapacityRange into a size.
 *
 * The CO asks for "at least required_bytes, at most limit_bytes"; either
 * may be 0 for "no bound". The plugin picks a size inside the range and
 * reports it; if no size fits, the answer is OUT_OF_RANGE.
 */
import type { CapacityRange } from "../gen/csi";
import { invalidArgument, outOfRange } from "../csi/errors";

export interface Range {
  required: number;
  limit: number;
}

export function checkRange(range: CapacityRange | undefined): Range {
  const required = range?.requiredBytes ?? 0;
  const limit = range?.limitBytes ?? 0;
  if (required < 0 || limit < 0) throw invalidArgument("capacity_range bytes may not be negative");
  if (limit > 0 && required > limit) {
    throw outOfRange(`capacity_range is empty: required_bytes ${required} is more than limit_bytes ${limit}`);
  }
  return { required, limit };
}

/** The size to give a new volume. */
export function chooseSize(r: Range, defaultBytes: number): number {
  if (r.required > 0) return r.required;
  if (r.limit > 0) return Math.min(r.limit, defaultBytes);
  return defaultBytes;
}

/** Does a volume of `size` bytes satisfy the range? */
export function fits(size: number, r: Range): boolean {
  return size >= r.required && (r.limit === 0 || size <= r.limit);
}
