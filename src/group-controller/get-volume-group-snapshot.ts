/**
 * GetVolumeGroupSnapshot: a group snapshot's current description, with
 * every member snapshot. An ID that is not a group snapshot of ours is
 * NOT_FOUND; for one that is, snapshot_ids (REQUIRED) must name every
 * member, or the answer is INVALID_ARGUMENT (group-members.ts).
 */
import type { GetVolumeGroupSnapshotRequest, GetVolumeGroupSnapshotResponse } from "../gen/csi";
import { notFound } from "../csi/errors";
import { toCsiGroupSnapshot } from "../csi/snapshots";
import { checkMap, checkToken } from "../csi/validate";
import { defineRpc } from "../server/rpc";
import { checkMatchesGroup, checkSnapshotIds, readMembers } from "./group-members";

export const getVolumeGroupSnapshot = defineRpc<GetVolumeGroupSnapshotRequest, GetVolumeGroupSnapshotResponse>({
  async handle(req, { driver }) {
    const groupSnapshotId = checkToken(req.groupSnapshotId, "group_snapshot_id");
    const snapshotIds = checkSnapshotIds(req.snapshotIds);
    checkMap(req.secrets, "secrets");
    const group = await driver.snapshots.getGroup(groupSnapshotId);
    if (!group) throw notFound(`group snapshot ${groupSnapshotId} does not exist`);
    checkMatchesGroup(group, snapshotIds);
    return { groupSnapshot: toCsiGroupSnapshot(group, await readMembers(driver.snapshots, group)) };
  },
});
