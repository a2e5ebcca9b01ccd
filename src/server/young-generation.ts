/**
 * Keeping V8's young generation small, without a flag on node's command line.
 *
 * V8 allocates a call's short-lived objects in the young generation (the
 * "new space": two semi-spaces, one in use while the other waits for the
 * next scavenge). Whenever many objects survive a scavenge V8 doubles it,
 * up to 16 MB per semi-space, and it keeps that size while the process
 * works. A driver's calls leave little behind — about 10 MB of its heap is
 * live after a full collection — yet over a few thousand calls its young
 * generation grew to the maximum and its resident size from 61 to
 * 104–121 MB.
 *
 * `--max-semi-space-size` on node's command line caps it, but any V8 flag
 * given at start-up costs 20–25 ms here: the code cache that Node's own
 * modules (net, crypto, …) are shipped with is only valid for V8's
 * default flags, so with another flag they are all compiled from source.
 * V8's growth factor, though, is read each time the young generation would
 * grow, and can be set at run time. bin/csi-lab.js holds it for the driver
 * before anything else: it loads the Node modules the driver needs at start
 * (so they still come from the cache: modules loaded after a change of V8's
 * flags are compiled from source), then sets the factor to 1. The young
 * generation keeps the 1 MB per semi-space it had then, and the driver's own
 * modules load with smaller scavenges: start-up about 11 ms shorter,
 * the resident size 1.3 MB lower at start and about 6 MB lower after
 * thousands of calls, for the same CPU per call (docs/performance.md).
 */
import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8";

/** Node's own modules the driver loads at start (with what they load in turn). */
const NODE_MODULES_AT_START = ["node:net", "node:child_process", "node:crypto", "node:os", "node:readline", "node:timers/promises"];

/** Stop the young generation from growing from now on; returns its size in bytes. */
export function holdYoungGeneration(): number {
  for (const m of NODE_MODULES_AT_START) require(m);
  setFlagsFromString("--semi-space-growth-factor=1");
  return youngGenerationBytes();
}

/** The young generation's size now, in bytes. */
export function youngGenerationBytes(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_size ?? 0;
}
