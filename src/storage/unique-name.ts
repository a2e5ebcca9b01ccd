/**
 * Names for temporary entries that never collide.
 *
 * A temporary file or directory is made next to where it will be renamed
 * (atomic-file.ts, the stores' .tmp and .trash), and its name only has to
 * differ from every other such name in that directory: from the other
 * calls of this process, and from whatever an earlier process left behind
 * for the start-up sweep. A random tag drawn once per process, followed by
 * a counter, does both; a fresh random number per name would too, but
 * costs a call into the crypto library each time, on every CreateVolume
 * and DeleteVolume. The names need not be secret: they are made only in
 * directories no one but the driver writes to, and created with O_EXCL.
 */
import { randomBytes } from "node:crypto";

const processTag = randomBytes(4).toString("hex");
let counter = 0;

/** A suffix no other call of this process, nor any earlier process (with near certainty), has had. */
export function uniqueSuffix(): string {
  counter += 1;
  return `${processTag}${counter.toString(36)}`;
}
