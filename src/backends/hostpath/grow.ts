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
 */
import { hostPathStore } from "./store";
import { outOfRange } from "../../csi/errors";
import type { Driver } from "../../server/driver";
import { layoutOf, type VolumeRecord } from "../../storage/volume-record";
import type { Range } from "../../controller/capacity";
import { holdSpace, sizeFor } from "./placement";

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
