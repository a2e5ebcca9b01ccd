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
 * modules (http2, net, crypto, …) are shipped with is only valid for V8's
 * default flags, so with another flag they are all compiled from source.
 * V8's growth factor, though, is read each time the young generation would
 * grow. Set to 1 once the driver serves, the young generation keeps the
 * size start-up left it at (4 MB per semi-space here). Modules Node loads after
 * that change are compiled without the cache too; by then the driver has
 * loaded what it needs.
 */
import { getHeapSpaceStatistics, setFlagsFromString } from "node:v8";

/** Stop the young generation from growing from now on; returns its size in bytes. */
export function holdYoungGeneration(): number {
  setFlagsFromString("--semi-space-growth-factor=1");
  return getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_size ?? 0;
}
