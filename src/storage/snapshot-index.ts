/**
 * The in-memory index of snapshots a store holds: every ID in order, and
 * each source volume's own, so that ListSnapshots — all of them or one
 * volume's — reads one page of one index whatever the number of
 * snapshots. Built from the records at start, kept by create and delete.
 */
import { SortedIndex } from "./sorted-index";

export class SnapshotIndex {
  private readonly all = new SortedIndex();
  /** Source volume ID → its snapshots. */
  private readonly bySource = new Map<string, SortedIndex>();
  /** Snapshot ID → source volume ID, to keep bySource right on delete. */
  private readonly sourceOf = new Map<string, string>();

  get size(): number {
    return this.all.size;
  }

  add(id: string, sourceVolumeId: string): void {
    this.all.add(id);
    this.sourceOf.set(id, sourceVolumeId);
    let idx = this.bySource.get(sourceVolumeId);
    if (!idx) this.bySource.set(sourceVolumeId, (idx = new SortedIndex()));
    idx.add(id);
  }

  delete(id: string): void {
    this.all.delete(id);
    const source = this.sourceOf.get(id);
    if (source === undefined) return;
    this.sourceOf.delete(id);
    const idx = this.bySource.get(source);
    idx?.delete(id);
    if (idx?.size === 0) this.bySource.delete(source);
  }

  /** A page of IDs after `after`, in ID order; only those of `sourceVolumeId` if given. */
  page(after: string, limit: number, sourceVolumeId?: string): { ids: string[]; more: boolean } {
    const idx = sourceVolumeId === undefined ? this.all : this.bySource.get(sourceVolumeId);
    return idx ? idx.page(after, limit) : { ids: [], more: false };
  }
}
