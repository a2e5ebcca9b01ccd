/**
 * A sorted set of IDs, for paging through volumes.
 *
 * ListVolumes hands out a page and a token; the next call continues after
 * the token. If the token is simply "the last ID returned" and the order is
 * sorted by ID, a page costs O(log n + page) and stays correct while
 * volumes come and go between pages: a deleted token still marks a place,
 * and new IDs appear where they sort. The index is rebuilt from the
 * directory listing at start-up; the directories stay the truth.
 */
export class SortedIndex {
  private ids: string[] = [];

  static from(ids: Iterable<string>): SortedIndex {
    const idx = new SortedIndex();
    idx.ids = [...new Set(ids)].sort(compare);
    return idx;
  }

  get size(): number {
    return this.ids.length;
  }

  has(id: string): boolean {
    const i = this.lowerBound(id);
    return this.ids[i] === id;
  }

  add(id: string): void {
    const i = this.lowerBound(id);
    if (this.ids[i] !== id) this.ids.splice(i, 0, id);
  }

  delete(id: string): void {
    const i = this.lowerBound(id);
    if (this.ids[i] === id) this.ids.splice(i, 1);
  }

  /** Up to `limit` IDs strictly after `after` ("" = from the start). */
  page(after: string, limit: number): { ids: string[]; more: boolean } {
    let i = after === "" ? 0 : this.lowerBound(after);
    if (after !== "" && this.ids[i] === after) i++;
    const ids = this.ids.slice(i, i + limit);
    return { ids, more: i + limit < this.ids.length };
  }

  private lowerBound(id: string): number {
    let lo = 0;
    let hi = this.ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (compare(this.ids[mid]!, id) < 0) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** A page of IDs from several indexes, as one list in ID order: the first `limit` of their pages (each asked for `limit` after the same place). */
export function mergePages(pages: readonly { ids: string[]; more: boolean }[], limit: number): { ids: string[]; more: boolean } {
  const ids = pages.flatMap((p) => p.ids).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return { ids: ids.slice(0, limit), more: ids.length > limit || pages.some((p) => p.more) };
}
