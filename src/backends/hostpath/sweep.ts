/**
 * The hostPath store's start-up sweep: what a crash interrupted, finished.
 *
 * Create and delete are small two-phase commits (store.ts), and a kill -9
 * between their steps leaves an entry in .tmp, .trash or data/. The sweep
 * runs once, before the driver answers any call, and settles each: a .tmp
 * directory whose record exists is renamed into place (the create had
 * committed), any other is removed; a data directory without its record is
 * an interrupted delete, and is removed; .trash is emptied. What will not
 * go is noted (remove-tree.ts) and stays for the next start.
 *
 * A dir volume whose record names its directory is deleted the other way
 * round (store.ts: deleteProven): its directory is moved into .trash (the
 * commit point), and only then is its record removed. A crash in between
 * leaves the record and .trash/<id>.delete-<suffix>, and the move may have
 * caught another directory swapped in at the last moment, before the
 * delete could check it. So that entry is settled first, with the record:
 * the volume's directory, the delete is finished; anything else is put
 * back at the volume's name (or beside it, <id>.not-deleted-<suffix>,
 * which no sweep removes) and the volume stays.
 */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { fsyncDir, removeTemporaries } from "../../storage/atomic-file";
import { directoryAt } from "../../storage/dir-identity";
import { readRecordFile } from "../../storage/record-file";
import { removeOrNote, type Leftover } from "../../storage/remove-tree";
import { parseRecord } from "../../storage/volume-record";
import { PROVEN_MOVE, purge, putBack, PUT_BACK, removeContent } from "./content";
import type { QuotaBackend } from "./quota";

/**
 * Finish what a crash interrupted under `root`, whose records are those of `ids` (a volume
 * whose delete is finished here leaves it). Runs once, at start-up.
 */
export async function sweep(root: string, ids: Set<string>, quota: QuotaBackend | undefined): Promise<Leftover[]> {
  const left: Leftover[] = [];
  const settled = new Set<string>(); // .trash entries of proven deletes, settled here first
  for (const entry of await fsp.readdir(path.join(root, ".trash"))) {
    const id = entry.split(PROVEN_MOVE)[0]!;
    if (!entry.includes(PROVEN_MOVE) || !ids.has(id)) continue;
    const p = path.join(root, ".trash", entry);
    settled.add(entry);
    await removeOrNote(left, p, () => finishDelete(root, id, p, ids, left, quota));
  }
  for (const entry of await fsp.readdir(path.join(root, ".tmp"))) {
    const id = entry.split(".")[0]!;
    const target = path.join(root, "data", id);
    const p = path.join(root, ".tmp", entry);
    if (ids.has(id) && !(await exists(target))) await fsp.rename(p, target);
    else await removeOrNote(left, p, () => purge(p, quota));
  }
  for (const entry of await fsp.readdir(path.join(root, "data"))) {
    const p = path.join(root, "data", entry);
    if (!ids.has(entry) && !entry.includes(PUT_BACK)) await removeOrNote(left, p, () => removeContent(root, p, quota));
  }
  for (const entry of await fsp.readdir(path.join(root, ".trash"))) {
    const p = path.join(root, ".trash", entry);
    if (!settled.has(entry)) await removeOrNote(left, p, () => purge(p, quota));
  }
  // Metadata written up to its fsync but never renamed (see atomic-file.ts).
  await removeTemporaries(path.join(root, "volumes"), await fsp.readdir(path.join(root, "volumes")));
  return left;
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.lstat(p);
    return true;
  } catch {
    return false;
  }
}

/** Settle `moved`, what a proven delete of volume `id` moved into .trash before it was cut off (see the top of this file). */
async function finishDelete(root: string, id: string, moved: string, ids: Set<string>, left: Leftover[], quota: QuotaBackend | undefined): Promise<void> {
  const meta = path.join(root, "volumes", `${id}.json`);
  const record = parseRecord(readRecordFile(meta, `volume ${id}`), id);
  const proof = typeof record === "object" ? record.dataIdentity : undefined;
  if (proof === undefined || directoryAt(moved, proof) !== "same") {
    const name = path.join(root, "data", id);
    const back = await putBack(moved, name);
    if (back !== name) left.push({ path: back, problem: `it is not the directory of volume ${id}, whose delete moved it; it was put back beside that volume's` });
    return;
  }
  await fsp.unlink(meta);
  ids.delete(id);
  await fsyncDir(path.join(root, "volumes"));
  await purge(moved, quota);
}
