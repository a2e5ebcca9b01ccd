/**
 * Growing a node-local volume: the part that needs the volume's own disk.
 *
 * A hostPath volume's record, image file and quota are on the node that
 * made it. Where one driver process serves both the controller and the
 * node (--mode all), ControllerExpandVolume grows them. Where the
 * controller runs apart (a Deployment, --mode controller), it holds no
 * node-local volume at all; it answers the resizer from the request alone
 * and leaves the growth to NodeExpandVolume, which the kubelet calls on
 * the volume's own node with the new size. Both call this, so a volume
 * grows by the same rules whichever process does it: whole MiB for image
 * and block layouts, room on the node's file system, and a hold on the
 * space the node has promised so that two growths cannot both take it.
 *
 * The controller's answer is the size the PV records. Without the record
 * it cannot tell an image from a directory, so it answers in whole MiB,
 * as an image grows (sizeOnTheNode). The kubelet then asks the node for
 * the claim's size (its status.allocatedResources, Kubernetes 1.32 on;
 * the PV's before): an image grows to the same whole MiB, so its PV,
 * record and file agree; a directory takes the size asked, up to a MiB
 * less than its PV says.
 */
import { hostPathStore } from "./store";
import { outOfRange } from "../../csi/errors";
import type { Driver } from "../../server/driver";
import { layoutOf, type VolumeRecord } from "../../storage/volume-record";
import { fits, type Range } from "../../controller/capacity";
import { holdSpace, inWholeMiB, sizeFor } from "./placement";

/**
 * The size a volume this controller does not hold will have once its node grows it for `range`:
 * whole MiB, as image and block volumes grow. OUT_OF_RANGE where the range holds none.
 */
export function sizeOnTheNode(range: Range): number {
  const size = inWholeMiB(range.required || range.limit, range);
  if (size === 0 || !fits(size, range)) {
    throw outOfRange(
      "this controller runs apart from the nodes (--mode controller) and cannot tell an image volume from a directory, so it grows " +
        `hostPath volumes in whole MiB, as image volumes grow; none lies in the requested range [${range.required}, ${range.limit || "no limit"}]`,
    );
  }
  return size;
}

/** Grow `record`'s volume so that it satisfies `range` (required > its size); the grown record. */
export async function growHostPathVolume(driver: Driver, record: VolumeRecord, range: Range): Promise<VolumeRecord> {
  const store = hostPathStore(driver);
  const layout = layoutOf(record);
  const current = record.capacityBytes;
  const placement = { layout, withQuota: record.quota !== undefined, fsType: undefined };
  const size = sizeFor(placement, range.required, range);
  const fsTotal = (await store.usage()).totalBytes;
  if (size > fsTotal) throw outOfRange(`a volume of ${size} bytes cannot fit on this node's file system (${fsTotal} bytes in all)`);
  const enforced = layout !== "dir" || record.quota !== undefined;
  const release = enforced ? await holdSpace(driver, size - current, `growing volume ${record.volumeId} to ${size} bytes`) : () => {};
  try {
    return await store.expand(record, size);
  } finally {
    release();
  }
}
