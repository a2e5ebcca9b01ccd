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
 * A shared (nfs) volume is deleted from its ID alone — no record, no
 * secrets — as its StorageClass's onDelete said: the directory removed,
 * renamed to archived-<name>-<time>, or left in place (retain). Mounts of
 * it on this node refuse the delete as for any volume; those on other
 * nodes are out of sight (the CO unpublishes first).
 * An ID of a newer format is INVALID_ARGUMENT, not OK: answering OK would
 * make the CO forget a volume whose data was never touched.
 */
import type { DeleteVolumeRequest, DeleteVolumeResponse } from "../gen/csi";
import { failedPrecondition } from "../csi/errors";
import { checkMap, checkToken } from "../csi/validate";
import { mountsOfVolume } from "../mount/volume-mounts";
import { sharedVolumeMounts } from "../storage/shared/volume-mounts";
import { volumeRef } from "../storage/volumes";
import { layoutOf } from "../storage/volume-record";
import { defineRpc } from "../server/rpc";
import { publishedNodeIds } from "./attach";
import { volumeKey } from "./volume-view";

export const deleteVolume = defineRpc<DeleteVolumeRequest, DeleteVolumeResponse>({
  lockKeys: (req) => volumeKey(req.volumeId),

  async handle(req, { driver, log }) {
    const volumeId = checkToken(req.volumeId, "volume_id");
    checkMap(req.secrets, "secrets");
    const ref = volumeRef(volumeId);
    if (ref.backend === undefined) return {};
    const attached = publishedNodeIds(driver, volumeId);
    if (attached.length > 0) {
      throw failedPrecondition(`volume ${volumeId} is attached to node ${attached.join(", ")}; ControllerUnpublishVolume it first`);
    }
    if (ref.backend === "nfs") {
      const loc = await driver.shared.locate(ref.id);
      const here = loc && (await sharedVolumeMounts(driver.shared.io, loc));
      if (here && here.length > 0) {
        throw failedPrecondition(
          `volume ${volumeId} is still mounted at ${here.map((m) => m.mountPoint).join(", ")}; unpublish and unstage it first`,
        );
      }
      log.debug("deleted shared volume", { done: await driver.shared.delete(volumeId, ref.id) });
      if (driver.attachments.of(volumeId).length > 0) await driver.attachments.forget(volumeId);
      return {};
    }
    const record = await driver.hostpath.get(volumeId);
    const image = record !== undefined && layoutOf(record) !== "dir";
    const { mounts } = mountsOfVolume(driver.hostpath.dataDir(volumeId), image);
    if (mounts.length > 0) {
      throw failedPrecondition(
        `volume ${volumeId} is still mounted at ${mounts.map((m) => m.mountPoint).join(", ")}; unpublish and unstage it first`,
      );
    }
    const existed = await driver.hostpath.delete(volumeId);
    if (!existed) log.debug("delete of a volume that does not exist: nothing to do");
    // Attachment records left from a run with attach on, now off.
    if (driver.attachments.of(volumeId).length > 0) await driver.attachments.forget(volumeId);
    return {};
  },
});
