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
import type { SnapshotRecord } from "../storage/snapshot-record";
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

    // The snapshot store's and each backend's own, as one list in ID order.
    const sources: Source[] = [
      { page: (after, n) => driver.snapshots.page(after, n, sourceVolumeId), read: (id) => driver.snapshots.get(id) },
      ...snapshotHomes(driver).map((h): Source => ({ page: (after, n) => h.page(after, n, sourceVolumeId), read: (id) => h.listed(id) })),
    ];
    const limit = maxEntries > 0 ? maxEntries : DEFAULT_PAGE;
    const entries: ListSnapshotsResponse_Entry[] = [];
    let after = token;
    let more = true;
    // Snapshots can vanish between the index and their record, and members
    // of an uncommitted group are hidden: keep reading so a page is not
    // short for that reason.
    while (entries.length < limit && more) {
      const page = mergedPage(sources, after, limit - entries.length);
      more = page.more;
      for (const { id, read } of page.items) {
        after = id;
        const record = await read(id);
        if (record) entries.push({ snapshot: toCsiSnapshot(record) });
      }
      if (page.items.length === 0) break;
    }
    return { entries, nextToken: more ? after : "" };
  },
});

interface Source {
  page(after: string, limit: number): { ids: string[]; more: boolean };
  read(id: string): Promise<SnapshotRecord | undefined>;
}

/** The first `limit` IDs after `after` across sorted sources, each with where to read it. */
function mergedPage(sources: readonly Source[], after: string, limit: number) {
  const pages = sources.map((s) => ({ s, page: s.page(after, limit) }));
  const all = pages.flatMap(({ s, page }) => page.ids.map((id) => ({ id, read: s.read })));
  all.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { items: all.slice(0, limit), more: all.length > limit || pages.some(({ page }) => page.more) };
}
