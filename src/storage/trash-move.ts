/**
 * A delete's commit point: a move into the trash, then a look at what was moved.
 *
 * A name proves nothing: between a delete's look at a volume's (or a
 * snapshot's) name and its move, whoever may rename in that directory can
 * put something else there. So a delete moves whatever is at the name into
 * its trash directory first — one rename, the commit point — and checks
 * what it moved there, where nothing but the driver renames. What the
 * record names (its identity, dir-identity.ts) is the delete's to finish;
 * anything else goes back where it was, or beside its name if the name was
 * taken meanwhile (rename-no-replace.ts: putBack), never in place of what
 * took it, and is never emptied. Without an identity (a record older than
 * identities) what was at the name is taken, as it always was.
 *
 * The trash entry is named <name>.delete-<suffix>: a start-up sweep that
 * finds one settles it with the record, if the record is still there.
 */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { identityAt, type DataKind, type DirIdentityParts } from "./dir-identity";
import { putBack } from "./rename-no-replace";
import { uniqueSuffix } from "./unique-name";

/** How a delete names its entry in the trash: <name>.delete-<suffix>. */
const DELETE_MOVE = ".delete-";

/** The name (a volume's or snapshot's ID) whose delete moved trash entry `entry`; undefined for any other entry. */
export function deletedBy(entry: string): string | undefined {
  const at = entry.indexOf(DELETE_MOVE);
  return at < 0 ? undefined : entry.slice(0, at);
}

export type TrashMove =
  /** Moved into the trash, at `path`. */
  | { kind: "moved"; path: string }
  /** Nothing is at the name: nothing was moved. */
  | { kind: "absent" }
  /** Something else was at the name as it was moved: moved back, to `back`. */
  | { kind: "replaced"; back: string };

/** Move what is at `target` into `trashDir`, then prove it is what `proof` names (of `kind`); see the top of this file. */
export async function moveIntoTrash(target: string, trashDir: string, proof: DirIdentityParts | undefined, kind: DataKind): Promise<TrashMove> {
  const moved = path.join(trashDir, `${path.basename(target)}${DELETE_MOVE}${uniqueSuffix()}`);
  try {
    await fsp.rename(target, moved);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { kind: "absent" };
    throw err;
  }
  if (proof && identityAt(moved, proof, kind) !== "same") return { kind: "replaced", back: await putBack(moved, target) };
  return { kind: "moved", path: moved };
}
