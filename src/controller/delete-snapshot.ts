/**
 * DeleteSnapshot: remove a snapshot and its content.
 *
 * Idempotent: a snapshot that does not exist (already deleted, or never
 * ours) is deleted successfully. A member of a group snapshot cannot be
 * deleted alone — the group was cut as one — so that is INVALID_ARGUMENT,
 * as the spec asks, pointing at DeleteVolumeGroupSnapshot. Volumes
 * restored from a snapshot own their copy, so a snapshot is never in use.
 * A shared volume's snapshot is deleted from its share, by whichever node
 * is asked (backends/nfs/share-snapshots.ts). The content is moved into
 * the store's trash first and checked there to be what the record names
 * (storage/snapshot-content.ts); something else at its name is put back,
 * nothing is deleted, and the answer is NOT_FOUND, as DeleteVolume answers
 * for a volume's directory. Then the record goes, then the content: if the
 * content will not go, the call fails, and its retry (which finds no
 * record) removes what is left in the trash.
 */
import type { DeleteSnapshotRequest, DeleteSnapshotResponse } from "../gen/csi";
import { invalidArgument } from "../csi/errors";
import { snapshotKey } from "../csi/snapshots";
import { checkMap, checkToken } from "../csi/validate";
import { defineRpc } from "../server/rpc";
import { homeOf } from "./snapshot-homes";

export const deleteSnapshot = defineRpc<DeleteSnapshotRequest, DeleteSnapshotResponse>({
  lockKeys: (req) => snapshotKey(req.snapshotId),

  async handle(req, { driver, log }) {
    const snapshotId = checkToken(req.snapshotId, "snapshot_id");
    checkMap(req.secrets, "secrets");
    const home = homeOf(driver, snapshotId);
    if (home) {
      if (!(await home.delete(snapshotId))) log.debug("delete of a snapshot that does not exist: nothing to do");
      return {};
    }
    const record = await driver.snapshots.get(snapshotId);
    if (!record) {
      // The record goes first: what an earlier delete of it could not remove is removed by its retry.
      await driver.snapshots.emptyTrashOf(snapshotId);
      log.debug("delete of a snapshot that does not exist: nothing to do");
      return {};
    }
    if (record.groupSnapshotId) {
      throw invalidArgument(
        `snapshot ${snapshotId} is part of group snapshot ${record.groupSnapshotId} and cannot be deleted alone; delete the group with DeleteVolumeGroupSnapshot`,
      );
    }
    await driver.snapshots.delete(snapshotId);
    return {};
  },
});
