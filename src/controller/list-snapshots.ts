/**
 * ListSnapshots: page through snapshots, all of them or one volume's.
 *
 * As for ListVolumes, pages are cut in snapshot-ID order and the token is
 * the last ID of the previous page, so paging stays correct while snapshots
 * come and go and a page costs the same however many there are. Listing by
 * source volume walks that volume's own index, not every snapshot. A token
 * that is not a snapshot ID is ABORTED ("start again"). Filtering by an ID
 * or a volume that does not exist is not an error: the list is empty.
 * Shared volumes' snapshots, kept on their shares, are listed from this
 * controller's copies of the records it wrote (the snapshots it took);
 * one asked for by ID is read from its share.
 */
import type { ListSnapshotsRequest, ListSnapshotsResponse, ListSnapshotsResponse_Entry } from "../gen/csi";
import { aborted, invalidArgument } from "../csi/errors";
import { toCsiSnapshot } from "../csi/snapshots";
import { checkMap, checkToken } from "../csi/validate";
import { SnapshotStore } from "../storage/snapshot-store";
import { defineRpc } from "../server/rpc";
import { mergePages } from "../storage/sorted-index";
import { findSnapshot, homeOf, snapshotHomes } from "./snapshot-homes";
import { DEFAULT_PAGE } from "./list-volumes";

export const listSnapshots = defineRpc<ListSnapshotsRequest, ListSnapshotsResponse>({
  async handle(req, { driver }) {
    const maxEntries = req.maxEntries ?? 0;
    if (maxEntries < 0) throw invalidArgument(`max_entries may not be negative (got ${maxEntries})`);
    const token = req.startingToken ?? "";
    if (token !== "" && !SnapshotStore.isSnapshotId(token) && !homeOf(driver, token)) {
      throw aborted(`starting_token ${JSON.stringify(token)} was not issued by this driver; start again without one`);
    }
    const sourceVolumeId = req.sourceVolumeId ? checkToken(req.sourceVolumeId, "source_volume_id") : undefined;
    checkMap(req.secrets, "secrets");

    if (req.snapshotId) {
      const record = await findSnapshot(driver, checkToken(req.snapshotId, "snapshot_id"));
      const match = record && (sourceVolumeId === undefined || record.sourceVolumeId === sourceVolumeId);
      return { entries: match ? [{ snapshot: toCsiSnapshot(record) }] : [], nextToken: "" };
    }

    const limit = maxEntries > 0 ? maxEntries : DEFAULT_PAGE;
    const entries: ListSnapshotsResponse_Entry[] = [];
    let after = token;
    let more = true;
    // Snapshots can vanish between the index and their record, and members
    // of an uncommitted group are hidden: keep reading so a page is not
    // short for that reason.
    while (entries.length < limit && more) {
      // The snapshot store's and each backend's own, as one list in ID order.
      const n = limit - entries.length;
      const page = mergePages([driver.snapshots.page(after, n, sourceVolumeId), ...snapshotHomes(driver).map((h) => h.page(after, n, sourceVolumeId))], n);
      more = page.more;
      for (const id of page.ids) {
        after = id;
        const home = homeOf(driver, id);
        const record = await (home ? home.listed(id) : driver.snapshots.get(id));
        if (record) entries.push({ snapshot: toCsiSnapshot(record) });
      }
      if (page.ids.length === 0) break;
    }
    return { entries, nextToken: more ? after : "" };
  },
});
