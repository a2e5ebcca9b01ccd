/**
 * DeleteVolumeGroupSnapshot: remove a group snapshot and all its members.
 *
 * Idempotent: a group that does not exist is deleted successfully. The
 * group's record goes first — renamed to the note of a deletion under way
 * (storage/group-pending.ts): the commit point, after which the group and
 * its members are invisible — then the members, then the note. If a member
 * cannot be removed (its content will not go), the call fails and the note
 * stays: a retry finishes the removal (the group is gone by then, so it
 * needs no snapshot_ids), and so does a CreateVolumeGroupSnapshot of the
 * name or the start-up sweep. The snapshot_ids of a group that exists must
 * be its members, all of them (group-members.ts).
 */
import type { DeleteVolumeGroupSnapshotRequest, DeleteVolumeGroupSnapshotResponse } from "../gen/csi";
import { groupSnapshotKey, snapshotKey } from "../csi/snapshots";
import { checkMap, checkToken } from "../csi/validate";
import { defineRpc } from "../server/rpc";
import { checkMatchesGroup, checkSnapshotIds } from "./group-members";

export const deleteVolumeGroupSnapshot = defineRpc<DeleteVolumeGroupSnapshotRequest, DeleteVolumeGroupSnapshotResponse>({
  // The members are locked too, so no restore copies one while it goes. snapshot_ids names them; where none
  // are sent, the note of a delete left unfinished does. A group that exists, named with no members, is
  // refused INVALID_ARGUMENT without waiting for its members' locks: nothing of them is touched.
  lockKeys: (req, driver) => {
    const named = req.snapshotIds ?? [];
    const members = named.length > 0 ? named : driver.snapshots.membersLeft(req.groupSnapshotId ?? "");
    return [...groupSnapshotKey(req.groupSnapshotId), ...members.flatMap((id) => snapshotKey(id))];
  },

  async handle(req, { driver, log }) {
    const groupSnapshotId = checkToken(req.groupSnapshotId, "group_snapshot_id");
    const snapshotIds = checkSnapshotIds(req.snapshotIds);
    checkMap(req.secrets, "secrets");
    const store = driver.snapshots;

    const group = await store.getGroup(groupSnapshotId);
    if (group) checkMatchesGroup(group, snapshotIds);
    // The commit point, then the members: or, for a group gone already, what an earlier try left.
    if (await store.deleteGroup(groupSnapshotId)) return {};
    // Gone already: members named that still say they are this group's go too (the start-up sweep would remove them).
    for (const id of snapshotIds) {
      if ((await store.read(id))?.groupSnapshotId === groupSnapshotId) await store.delete(id);
    }
    log.debug("delete of a group snapshot that does not exist: nothing left to do");
    return {};
  },
});
