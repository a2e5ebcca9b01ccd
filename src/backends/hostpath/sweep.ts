/**
 * The hostPath store's start-up sweep: what a crash interrupted, finished —
 * and nothing else touched.
 *
 * Create and delete are small two-phase commits (store.ts), and a kill -9
 * between their steps leaves an entry in .tmp or .trash, the driver's own
 * directories. The sweep runs once, before the driver answers any call,
 * and settles each:
 *
 *   - .trash/<id>.delete-<suffix> with the volume's record: a delete cut off
 *     after its commit point (the move of the volume's directory or image
 *     file into .trash) and before its record went. The move may have
 *     caught something else swapped in at the last moment, before the
 *     delete could check it, so it is settled with the record: what the
 *     record names (or anything, for a record without an identity, which
 *     goes by name as it always did) is deleted with the record; anything
 *     else is put back at the volume's name (or beside it,
 *     <id>.not-deleted-<suffix>) and the volume stays.
 *   - .tmp/<id>.<suffix> with the volume's record: a create cut off after
 *     its commit point; it is renamed into place — never over something
 *     that took the name meanwhile (then it stays, and is named). Any other
 *     entry of .tmp is a create that never committed, and is removed.
 *   - everything else in .trash is a delete that had committed, and is removed.
 *
 * data/ is not the driver's alone: whoever may write the root can put
 * things there. Nothing this driver does leaves data there without its
 * record — a create commits its record before its data arrives, a delete
 * moves the data away before the record goes — so an entry of data/ that
 * no record names is not an interrupted call of ours: it is someone else's,
 * or what an older version's cut-off delete left (those removed the record
 * first). It is left as it is and reported (`foreign`), never removed.
 *
 * What will not go is noted (remove-tree.ts) and stays for the next start.
 */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { fsyncDir, removeTemporaries } from "../../storage/atomic-file";
import { identityAt } from "../../storage/dir-identity";
import { readRecordFile } from "../../storage/record-file";
import { removeOrNote, type Leftover } from "../../storage/remove-tree";
import { finishCommittedCreate, putBack, PUT_BACK } from "../../storage/rename-no-replace";
import { layoutOf, parseRecord, type VolumeRecord } from "../../storage/volume-record";
import { purge } from "./content";
import { deletedBy } from "../../storage/trash-move";
import type { QuotaBackend } from "./quota";
import { dataKindOf } from "./volume-dir";

/** What the sweep left: what it could not remove (the next start tries again), and what is not its to remove. */
export interface SweepResult {
  left: Leftover[];
  foreign: Leftover[];
}

/**
 * Finish what a crash interrupted under `root`, whose records are those of `ids` (a volume
 * whose delete is finished here leaves it). Runs once, at start-up.
 */
export async function sweep(root: string, ids: Set<string>, quota: QuotaBackend | undefined): Promise<SweepResult> {
  const left: Leftover[] = [];
  const foreign: Leftover[] = [];
  const settled = new Set<string>(); // .trash entries of cut-off deletes, settled here first
  for (const entry of await fsp.readdir(path.join(root, ".trash"))) {
    const id = deletedBy(entry);
    if (id === undefined || !ids.has(id)) continue;
    const p = path.join(root, ".trash", entry);
    settled.add(entry);
    await removeOrNote(left, p, () => finishDelete(root, id, p, ids, quota));
  }
  for (const entry of await fsp.readdir(path.join(root, ".tmp"))) {
    const id = entry.split(".")[0]!;
    const p = path.join(root, ".tmp", entry);
    if (ids.has(id) && isCommitted(root, id, p)) await removeOrNote(left, p, () => finishCommittedCreate(p, path.join(root, "data", id), `volume ${id}`, left));
    else await removeOrNote(left, p, () => purge(p, quota));
  }
  for (const entry of await fsp.readdir(path.join(root, "data"))) {
    if (ids.has(entry)) continue;
    const p = path.join(root, "data", entry);
    const problem = entry.includes(PUT_BACK)
      ? "a delete caught it in place of the volume's own, and put it back here: it is not the volume's"
      : "no volume record names it: this driver did not make it, or an older version's delete was cut off after it had removed the record";
    foreign.push({ path: p, problem });
  }
  for (const entry of await fsp.readdir(path.join(root, ".trash"))) {
    const p = path.join(root, ".trash", entry);
    if (!settled.has(entry)) await removeOrNote(left, p, () => purge(p, quota));
  }
  // Metadata written up to its fsync but never renamed (see atomic-file.ts).
  await removeTemporaries(path.join(root, "volumes"), await fsp.readdir(path.join(root, "volumes")));
  return { left, foreign };
}

/** The record of volume `id`, or undefined where it cannot be read. */
function recordOf(root: string, id: string): VolumeRecord | undefined {
  try {
    const record = parseRecord(readRecordFile(path.join(root, "volumes", `${id}.json`), `volume ${id}`), id);
    return typeof record === "object" ? record : undefined;
  } catch {
    return undefined;
  }
}

/** Is `staged`, in .tmp, what the committed record of volume `id` names? (A record without an identity takes it by name.) */
function isCommitted(root: string, id: string, staged: string): boolean {
  const record = recordOf(root, id);
  const proof = record?.dataIdentity;
  return proof === undefined || identityAt(staged, proof, dataKindOf(layoutOf(record!))) === "same";
}


/** Settle `moved`, what a delete of volume `id` moved into .trash before it was cut off (see the top of this file). */
async function finishDelete(root: string, id: string, moved: string, ids: Set<string>, quota: QuotaBackend | undefined): Promise<void> {
  const meta = path.join(root, "volumes", `${id}.json`);
  const record = recordOf(root, id);
  const proof = record?.dataIdentity;
  if (proof !== undefined && identityAt(moved, proof, dataKindOf(layoutOf(record!))) !== "same") {
    await putBack(moved, path.join(root, "data", id)); // beside the name, if taken: then reported with data/ below
    return;
  }
  await fsp.unlink(meta);
  ids.delete(id);
  await fsyncDir(path.join(root, "volumes"));
  await purge(moved, quota);
}
