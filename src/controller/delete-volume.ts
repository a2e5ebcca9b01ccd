/**
 * DeleteVolume: remove a volume and its data.
 *
 * Idempotent: deleting a volume that does not exist (already deleted, or
 * never ours) succeeds, because a CO retrying a delete whose reply was lost
 * must not be told it failed. A volume still mounted somewhere on this node
 * is refused with FAILED_PRECONDITION: removing its files would pull the
 * data out from under a running pod. So is a volume still attached to a
 * node (with --enable-attach): the CO must detach it first.
 * (An image or block volume is in use while a loop device attached to its
 * image is mounted or bound.)
 *
 * What deleting means is the backend's (src/backends): a shared (nfs)
 * volume, for one, is deleted as its StorageClass's onDelete said, and
 * only when the driver's marker on the share proves it made that very
 * directory for that very ID. Mounts on other nodes are out of sight (the
 * CO unpublishes first). An ID of a newer format is INVALID_ARGUMENT, not
 * OK: answering OK would make the CO forget a volume whose data was never
 * touched.
 */
import type { DeleteVolumeRequest, DeleteVolumeResponse } from "../gen/csi";
import { failedPrecondition } from "../csi/errors";
import { checkMap, checkToken } from "../csi/validate";
import { defineRpc } from "../server/rpc";
import { publishedNodeIds } from "./attach";
import { volumeKey } from "./volume-view";

export const deleteVolume = defineRpc<DeleteVolumeRequest, DeleteVolumeResponse>({
  lockKeys: (req) => volumeKey(req.volumeId),

  async handle(req, { driver, log }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    checkMap(req.secrets, "secrets");
    const backend = driver.backends.forId(volumeId);
    if (!backend) return {}; // no backend's ID: never ours, so already gone
    const attached = publishedNodeIds(driver, volumeId);
    if (attached.length > 0) {
      throw failedPrecondition(`volume ${volumeId} is attached to node ${attached.join(", ")}; ControllerUnpublishVolume it first`);
    }
    // The backend refuses a volume still mounted on this node, and one it cannot prove it made.
    log.debug("deleted volume", { done: await backend.delete(driver, volumeId) });
    // Attachment records left from a run with attach on, now off.
    if (driver.attachments.of(volumeId).length > 0) await driver.attachments.forget(volumeId);
    return {};
  },
});
