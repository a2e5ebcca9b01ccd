/**
 * Rules the group snapshot RPCs share: reading a group's members and
 * checking the snapshot_ids a CO sends along with a group ID.
 */
import { internal, invalidArgument } from "../csi/errors";
import { checkToken } from "../csi/validate";
import type { GroupSnapshotRecord, SnapshotRecord } from "../storage/snapshot-record";
import type { SnapshotStore } from "../storage/snapshot-store";

/** The snapshot_ids field: each a valid token. */
export function checkSnapshotIds(ids: string[] | undefined): string[] {
  return (ids ?? []).map((id, i) => checkToken(id, `snapshot_ids[${i}]`));
}

/**
 * The snapshot_ids a CO sends with the ID of a group that exists, against
 * its members. CSI v1.12 marks the field REQUIRED in both
 * GetVolumeGroupSnapshot and DeleteVolumeGroupSnapshot, and a repeated
 * field that is REQUIRED "MUST contain at least 1 element"; a plugin that
 * can detect a mismatch with the group SHOULD report it (MUST, where it
 * relies on the list). This driver knows its groups' members, so an empty
 * list, like one that is not exactly the members, is INVALID_ARGUMENT.
 *
 * Only where the group exists: of one that does not, Get answers NOT_FOUND
 * and Delete succeeds (the spec's idempotency) whatever the list. That is
 * what csi-sanity (v5.4.0) asks, sending an unknown ID with no snapshot_ids;
 * the external-snapshotter never sends an empty list (it refuses to make
 * either call without one). A Delete retry of a group gone already, whose
 * members a failure left, needs no list either: the group's note names them.
 */
export function checkMatchesGroup(group: GroupSnapshotRecord, ids: readonly string[]): void {
  if (ids.length === 0) {
    throw invalidArgument(
      `snapshot_ids is required: name the member snapshots of group snapshot ${group.groupSnapshotId} [${group.snapshotIds.join(", ")}]`,
    );
  }
  const want = new Set(group.snapshotIds);
  const given = new Set(ids);
  if (want.size !== given.size || [...given].some((id) => !want.has(id))) {
    throw invalidArgument(
      `snapshot_ids [${ids.join(", ")}] do not match the members of group snapshot ${group.groupSnapshotId} [${group.snapshotIds.join(", ")}]`,
    );
  }
}

export async function readMembers(store: SnapshotStore, group: GroupSnapshotRecord): Promise<SnapshotRecord[]> {
  const members: SnapshotRecord[] = [];
  for (const id of group.snapshotIds) {
    const rec = await store.read(id);
    if (!rec) throw internal(`group snapshot ${group.groupSnapshotId} lists snapshot ${id}, which is missing from the store`);
    members.push(rec);
  }
  return members;
}
