/**
 * The snapshot store's start-up sweep: what a crash interrupted, finished —
 * and nothing else touched.
 *
 * CreateSnapshot and DeleteSnapshot are two-phase commits (snapshot-store.ts):
 * the content waits in .tmp until its record is written, and goes through
 * .trash on its way out. A kill -9 between the steps leaves an entry in one
 * of the two, the driver's own directories; the sweep runs once, before the
 * driver answers any call, and settles each by asking the record which side
 * of the commit point the call had reached:
 *
 *   - .trash/<id>.delete-<suffix> with the snapshot's record: a delete cut
 *     off after its move. What the record names (proven by its content
 *     identity: snapshot-content.ts) is deleted with the record; anything
 *     else is put back at the snapshot's name, and the snapshot stays.
 *   - .tmp/<id>.<suffix> that the record names (a record without an
 *     identity: if the name is free): a create cut off after its commit;
 *     it is renamed into place, never over what took the name. Any other
 *     entry of .tmp never committed, and is removed.
 *   - a member whose group has no record: a group that never committed, or
 *     whose delete was cut off; deleted as DeleteSnapshot deletes.
 *   - everything else in .trash had committed its delete, and is removed.
 *
 * What is in data/ without a record is not the driver's: left, and named.
 * Then the index is built. Every record is read once: start-up is
 * O(snapshots), calls are not.
 */
import { lstatSync, promises as fsp } from "node:fs";
import { fsyncDir, removeTemporaries } from "./atomic-file";
import { identityAt } from "./dir-identity";
import { removeOrNote, removeTree, type Leftover } from "./remove-tree";
import { finishCommittedCreate, putBack, PUT_BACK } from "./rename-no-replace";
import { contentKind } from "./snapshot-content";
import type { SnapshotRecord } from "./snapshot-record";
import { deletedBy } from "./trash-move";

/** What the sweep needs of the snapshot store it settles. */
export interface SnapshotSweepStore {
  /** A path under the store's directory (snapshots/). */
  sub(...parts: string[]): string;
  /** Whether `id` has the shape of a snapshot ID. */
  isSnapshotId(id: string): boolean;
  /** Where snapshot `id`'s record is. */
  metaFile(id: string): string;
  /** Where snapshot `id`'s content is. */
  contentPath(id: string): string;
  /** A snapshot's record on disk, visible or not. */
  read(id: string): Promise<SnapshotRecord | undefined>;
  /** Delete a snapshot and its content, as DeleteSnapshot does. */
  delete(id: string): Promise<boolean>;
  /** Whether group `id` has its record: committed, and not deleted. */
  groupExists(id: string): boolean;
  /** Put a snapshot whose record stays in the index. */
  index(id: string, sourceVolumeId: string): void;
  /** Drop the notes of pending groups, whose members are gone by then (group-pending.ts). */
  clearPendingGroups(): Promise<void>;
}

/** What the sweep found: records it could not read, what it could not remove (the next start tries again), and what is not its to remove. */
export interface SnapshotSweepResult {
  unreadable: { snapshotId: string; problem: string }[];
  left: Leftover[];
  foreign: Leftover[];
}

/** Finish what a crash interrupted in the store, and nothing else (see the top of this file); build its index. Runs once, at start-up. */
export async function sweepSnapshots(store: SnapshotSweepStore): Promise<SnapshotSweepResult> {
  const result: SnapshotSweepResult = { unreadable: [], left: [], foreign: [] };
  const metaEntries = await fsp.readdir(store.sub("meta"));
  await removeTemporaries(store.sub("meta"), metaEntries); // records a crash left half-written
  await removeTemporaries(store.sub("groups"), await fsp.readdir(store.sub("groups")));
  const ids = new Set(metaEntries.filter((n) => n.endsWith(".json") && store.isSnapshotId(n.slice(0, -5))).map((n) => n.slice(0, -5)));
  const records = new Map<string, SnapshotRecord | undefined>();
  for (const id of ids) {
    // An unreadable record keeps its content and stays out of the index;
    // GetSnapshot of it says what is wrong instead of the driver not starting,
    // and so does a warning at start (unreadableAtStart).
    records.set(
      id,
      await store.read(id).catch((err: unknown) => {
        result.unreadable.push({ snapshotId: id, problem: err instanceof Error ? err.message : String(err) });
        return undefined;
      }),
    );
  }
  const settled = new Set<string>(); // .trash entries of cut-off deletes, settled with their record first
  for (const entry of await fsp.readdir(store.sub(".trash"))) {
    const id = deletedBy(entry);
    if (id === undefined || !ids.has(id)) continue;
    settled.add(entry);
    const moved = store.sub(".trash", entry);
    await removeOrNote(result.left, moved, () => finishDelete(store, id, records.get(id), moved, ids));
  }
  for (const entry of await fsp.readdir(store.sub(".tmp"))) {
    const id = entry.split(".")[0]!;
    const staged = store.sub(".tmp", entry);
    const proof = records.get(id)?.contentIdentity;
    const committed = ids.has(id) && (proof ? identityAt(staged, proof, contentKind(records.get(id)!.layout)) === "same" : !taken(store, id));
    if (committed) await removeOrNote(result.left, staged, () => finishCommittedCreate(staged, store.contentPath(id), `snapshot ${id}`, result.left));
    else await removeAtStart(result.left, staged);
  }
  for (const id of ids) {
    const rec = records.get(id);
    if (rec?.groupSnapshotId !== undefined && !store.groupExists(rec.groupSnapshotId)) {
      // Deleted as DeleteSnapshot deletes: what is at its name goes only if it is the member's.
      await removeOrNote(result.left, store.metaFile(id), async () => void ((await store.delete(id)) && ids.delete(id)));
    } else if (rec) store.index(id, rec.sourceVolumeId);
  }
  for (const entry of await fsp.readdir(store.sub("data"))) {
    if (ids.has(entry)) continue;
    const problem = entry.includes(PUT_BACK)
      ? "a delete caught it in place of a snapshot's own content, and put it back here: it is not the snapshot's"
      : "no snapshot record names it: this driver did not make it, or an older version's delete was cut off after it had removed the record";
    result.foreign.push({ path: store.sub("data", entry), problem });
  }
  for (const entry of await fsp.readdir(store.sub(".trash"))) {
    if (!settled.has(entry)) await removeAtStart(result.left, store.sub(".trash", entry));
  }
  await store.clearPendingGroups();
  return result;
}

function removeAtStart(left: Leftover[], p: string): Promise<void> {
  return removeOrNote(left, p, () => removeTree(p));
}

function taken(store: SnapshotSweepStore, id: string): boolean {
  return lstatSync(store.contentPath(id), { throwIfNoEntry: false }) !== undefined;
}


/** Settle `moved`, what a delete of snapshot `id` (record `rec`, undefined if unreadable) moved into .trash before it was cut off. */
async function finishDelete(store: SnapshotSweepStore, id: string, rec: SnapshotRecord | undefined, moved: string, ids: Set<string>): Promise<void> {
  const proof = rec?.contentIdentity;
  if (proof && identityAt(moved, proof, contentKind(rec!.layout)) !== "same") {
    await putBack(moved, store.contentPath(id)); // beside the name, if taken: then named with data/ in the sweep
    return;
  }
  await fsp.unlink(store.metaFile(id));
  ids.delete(id);
  await fsyncDir(store.sub("meta"));
  await removeTree(moved);
}
