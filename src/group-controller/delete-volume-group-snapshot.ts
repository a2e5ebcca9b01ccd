/**
 * DeleteVolumeGroupSnapshot: remove a group snapshot and all its members.
 *
 * Idempotent: a group that does not exist is deleted successfully. The
 * group's record goes first — that is the commit point, after which its
 * members are invisible — and the members follow. If a crash comes in
 * between, the retry removes the members it names, and the start-up sweep
 * removes any member whose group is gone.
 */
import type { DeleteVolumeGroupSnapshotRequest, DeleteVolumeGroupSnapshotResponse } from "../gen/csi";
import { groupSnapshotKey, snapshotKey } from "../csi/snapshots";
import { checkMap, checkToken } from "../csi/validate";
import { defineRpc } from "../server/rpc";
import { checkMatchesGroup, checkSnapshotIds } from "./group-members";

export const deleteVolumeGroupSnapshot = defineRpc<DeleteVolumeGroupSnapshotRequest, DeleteVolumeGroupSnapshotResponse>({
  // The members are locked too, so no restore copies one while it goes. snapshot_ids
  // names them; where a CO sends none, the group's record does.
  lockKeys: (req, driver) => {
    const named = req.snapshotIds ?? [];
    const members = named.length > 0 ? named : driver.snapshots.groupMembers(req.groupSnapshotId ?? "");
    return [...groupSnapshotKey(req.groupSnapshotId), ...members.flatMap((id) => snapshotKey(id))];
  },

  async handle(req, { driver, log }) {
    const groupSnapshotId = checkToken(req.groupSnapshotId, "group_snapshot_id");
    const snapshotIds = checkSnapshotIds(req.snapshotIds);
    checkMap(req.secrets, "secrets");
    const store = driver.snapshots;

    const group = await store.getGroup(groupSnapshotId);
    if (group) {
      checkMatchesGroup(group, snapshotIds);
      await store.uncommitGroup(groupSnapshotId); // the commit point
      for (const id of group.snapshotIds) await store.delete(id);
      return {};
    }
    // Gone already — or a delete was interrupted after the commit point.
    for (const id of snapshotIds) {
      if ((await store.read(id))?.groupSnapshotId === groupSnapshotId) await store.delete(id);
    }
    log.debug("delete of a group snapshot that does not exist: nothing left to do");
    return {};
  },
});
