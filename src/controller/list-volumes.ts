/**
 * ListVolumes: page through every volume.
 *
 * Pages are cut in volume-ID order and the token is the last ID of the
 * previous page, so paging stays correct while volumes are created and
 * deleted in between, and a page costs the same however many volumes
 * there are. A token that is not a volume ID of ours is ABORTED, which the
 * spec defines as "start again from the beginning".
 *
 * Both backends are listed, hostPath volumes first ("hp-…" sorts before
 * "nfs1:…"): the shared volumes are those this controller's records name
 * (storage/shared/shared-store.ts), each with a bounded probe of its
 * directory as its condition.
 */
import type { ListVolumesRequest, ListVolumesResponse, ListVolumesResponse_Entry } from "../gen/csi";
import { aborted, invalidArgument } from "../csi/errors";
import { isEphemeralRecord } from "../storage/ephemeral-volumes";
import { HostPathStore } from "../storage/hostpath-store";
import { parseSharedId } from "../storage/shared/volume-id";
import { conditionOf, getVolume } from "../storage/volumes";
import type { Driver } from "../server/driver";
import { defineRpc } from "../server/rpc";
import { publishedNodeIds } from "./attach";
import { toCsiVolume } from "./volume-view";

/** Page size when the CO leaves max_entries at 0 ("as many as you like"). */
export const DEFAULT_PAGE = 500;

export const listVolumes = defineRpc<ListVolumesRequest, ListVolumesResponse>({
  async handle(req, { driver }) {
    const maxEntries = req.maxEntries ?? 0;
    if (maxEntries < 0) throw invalidArgument(`max_entries may not be negative (got ${maxEntries})`);
    const token = req.startingToken ?? "";
    if (token !== "" && !isOurId(token)) {
      throw aborted(`starting_token ${JSON.stringify(token)} was not issued by this driver; start again without one`);
    }
    const limit = maxEntries > 0 ? maxEntries : DEFAULT_PAGE;
    const entries: ListVolumesResponse_Entry[] = [];
    let after = token;
    let more = true;
    // A volume can vanish between reading the index and its metadata; keep
    // reading so a page is not short for that reason.
    while (entries.length < limit && more) {
      const page = pageAll(driver, after, limit - entries.length);
      more = page.more;
      for (const id of page.ids) {
        after = id;
        const record = await getVolume(driver, id);
        if (!record || isEphemeralRecord(record)) continue; // inline volumes belong to their pod, not to the CO
        const volumeCondition = await conditionOf(driver, record);
        entries.push({ volume: toCsiVolume(record), status: { publishedNodeIds: publishedNodeIds(driver, id), volumeCondition } });
      }
      if (page.ids.length === 0) break;
    }
    return { entries, nextToken: more ? after : "" };
  },
});

function isOurId(token: string): boolean {
  if (HostPathStore.isVolumeId(token)) return true;
  try {
    return parseSharedId(token) !== undefined;
  } catch {
    return false;
  }
}

/** One page over both backends' indexes, in ID order (every hostPath ID sorts before every shared one). */
function pageAll(driver: Driver, after: string, limit: number): { ids: string[]; more: boolean } {
  const a = HostPathStore.isVolumeId(after) || after === "" ? driver.hostpath.page(after, limit) : { ids: [], more: false };
  if (a.ids.length === limit) return { ids: a.ids, more: a.more || driver.shared.count > 0 };
  const b = driver.shared.page(HostPathStore.isVolumeId(after) ? "" : after, limit - a.ids.length);
  return { ids: [...a.ids, ...b.ids], more: b.more };
}
