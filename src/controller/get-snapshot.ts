/**
 * GetSnapshot: one snapshot's current description.
 *
 * The external-snapshotter uses it to refresh a VolumeSnapshotContent, in
 * particular for the members of a group snapshot, which it learns about
 * only by ID.
 */
import type { GetSnapshotRequest, GetSnapshotResponse } from "../gen/csi";
import { notFound } from "../csi/errors";
import { toCsiSnapshot } from "../csi/snapshots";
import { checkMap, checkToken } from "../csi/validate";
import { defineRpc } from "../server/rpc";
import { findSnapshot } from "./snapshot-homes";

export const getSnapshot = defineRpc<GetSnapshotRequest, GetSnapshotResponse>({
  async handle(req, { driver }) {
    const snapshotId = checkToken(req.snapshotId, "snapshot_id");
    checkMap(req.secrets, "secrets");
    const record = await findSnapshot(driver, snapshotId);
    if (!record) throw notFound(`snapshot ${snapshotId} does not exist`);
    return { snapshot: toCsiSnapshot(record) };
  },
});
