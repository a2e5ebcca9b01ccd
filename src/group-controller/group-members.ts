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
 * The spec asks a plugin that can tell to refuse snapshot_ids that do not
 * match the group with INVALID_ARGUMENT. An empty list is not checked.
 */
export function checkMatchesGroup(group: GroupSnapshotRecord, ids: readonly string[]): void {
  if (ids.length === 0) return;
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
