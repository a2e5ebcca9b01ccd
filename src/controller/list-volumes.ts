/**
 * ListVolumes: page through every volume.
 *
 * Pages are cut in volume-ID order and the token is the last ID of the
 * previous page, so paging stays correct while volumes are created and
 * deleted in between, and a page costs the same however many volumes
 * there are. A token that is not a volume ID of ours is ABORTED, which the
 * spec defines as "start again from the beginning".
 *
 * Every backend's volumes are listed, merged in ID order from each
 * backend's index (Backends.page); each one's condition is its backend's
 * (for a shared volume, a bounded probe of its directory). Shared volumes
 * are those this controller holds records of. A volume whose record cannot
 * be read is listed with an abnormal condition saying so, not left out and
 * not allowed to fail the whole page.
 */
import type { ListVolumesRequest, ListVolumesResponse, ListVolumesResponse_Entry } from "../gen/csi";
import { aborted, CsiError, invalidArgument } from "../csi/errors";
import type { Driver } from "../server/driver";
import { defineRpc } from "../server/rpc";
import { publishedNodeIds } from "./attach";
import { lookUp, toCsiVolume } from "./volume-view";

/** Page size when the CO leaves max_entries at 0 ("as many as you like"). */
export const DEFAULT_PAGE = 500;

export const listVolumes = defineRpc<ListVolumesRequest, ListVolumesResponse>({
  async handle(req, { driver, log }) {
    const maxEntries = req.maxEntries ?? 0;
    if (maxEntries < 0) throw invalidArgument(`max_entries may not be negative (got ${maxEntries})`);
    const token = req.startingToken ?? "";
    if (token !== "" && !isOurId(driver, token)) {
      throw aborted(`starting_token ${JSON.stringify(token)} was not issued by this driver; start again without one`);
    }
    const limit = maxEntries > 0 ? maxEntries : DEFAULT_PAGE;
    const entries: ListVolumesResponse_Entry[] = [];
    let after = token;
    let more = true;
    // A volume can vanish between reading the index and its metadata; keep
    // reading so a page is not short for that reason.
    while (entries.length < limit && more) {
      const page = driver.backends.page(after, limit - entries.length);
      more = page.more;
      for (const id of page.ids) {
        after = id;
        let found: Awaited<ReturnType<typeof lookUp>>;
        try {
          found = await lookUp(driver, id);
        } catch (err) {
          // One unreadable record must not hide every other volume: it is listed as abnormal,
          // and what is wrong goes to the log and to the CO (a health monitor reports it on the PV).
          const message = `the driver's record of this volume cannot be read: ${CsiError.from(err).message}`;
          log.error("ListVolumes: a volume's record cannot be read", { volumeId: id, error: message, cause: err instanceof Error ? err.message : String(err) });
          entries.push({ volume: { volumeId: id, capacityBytes: 0 }, status: { publishedNodeIds: [], volumeCondition: { abnormal: true, message } } });
          continue;
        }
        const { backend, record } = found;
        if (!backend || !record || !backend.listed(record)) continue; // inline volumes belong to their pod, not to the CO
        const volumeCondition = await backend.condition(record);
        entries.push({ volume: toCsiVolume(driver, backend, record), status: { publishedNodeIds: publishedNodeIds(driver, id), volumeCondition } });
      }
      if (page.ids.length === 0) break;
    }
    return { entries, nextToken: more ? after : "" };
  },
});

/** A token is the last ID of a page: it must be an ID one of the backends could hold (and well formed for it). */
function isOurId(driver: Driver, token: string): boolean {
  try {
    return driver.backends.forId(token) !== undefined;
  } catch {
    return false;
  }
}
