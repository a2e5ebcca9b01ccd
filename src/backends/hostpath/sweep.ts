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
 */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { removeTemporaries } from "../../storage/atomic-file";
import { removeOrNote, type Leftover } from "../../storage/remove-tree";
import { purge, removeContent } from "./content";
import type { QuotaBackend } from "./quota";

/** Finish what a crash interrupted under `root`, whose records are those of `ids`. Runs once, at start-up. */
export async function sweep(root: string, ids: ReadonlySet<string>, quota: QuotaBackend | undefined): Promise<Leftover[]> {
  const left: Leftover[] = [];
  for (const entry of await fsp.readdir(path.join(root, ".tmp"))) {
    const id = entry.split(".")[0]!;
    const target = path.join(root, "data", id);
    const p = path.join(root, ".tmp", entry);
    if (ids.has(id) && !(await exists(target))) await fsp.rename(p, target);
    else await removeOrNote(left, p, () => purge(p, quota));
  }
  for (const entry of await fsp.readdir(path.join(root, "data"))) {
    const p = path.join(root, "data", entry);
    if (!ids.has(entry)) await removeOrNote(left, p, () => removeContent(root, p, quota));
  }
  for (const entry of await fsp.readdir(path.join(root, ".trash"))) {
    const p = path.join(root, ".trash", entry);
    await removeOrNote(left, p, () => purge(p, quota));
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
