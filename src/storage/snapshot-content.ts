/**
 * A snapshot's content, told apart from whatever else is at its name.
 *
 * A snapshot's content is the directory tree or file at snapshots/data/<id>.
 * That is a name, and a name proves nothing: whoever may rename inside the
 * root can put another directory or file there, and the driver would delete
 * it at DeleteSnapshot and copy it into a volume at a restore. So
 * CreateSnapshot records which directory or file it made (its identity,
 * storage/dir-identity.ts: the inode number with the birth time or
 * generation, which a rename keeps and no later file has), taken in .tmp
 * before the commit, and the driver uses the name only while it is that:
 *
 *   - a restore opens the content without following a symlink, proves it,
 *     and copies through the descriptor, never through the name again
 *     (`withProvenContent`);
 *   - a delete moves the content into .trash and checks what it moved
 *     there, where nothing but the driver renames (`moveProvenContent`);
 *     anything else is put back (beside its name, if that was taken
 *     meanwhile: storage/rename-no-replace.ts), and the answer is NOT_FOUND
 *     with nothing deleted, as DeleteVolume answers for a volume's
 *     (backends/hostpath/volume-dir.ts).
 *
 * Records written before identities were recorded have none, and nothing on
 * the content marks it as the driver's: it is taken by its name, as it was
 * (docs/security.md) — still never through a symlink, and only if it is of
 * its layout's kind.
 */
import { closeSync, fstatSync } from "node:fs";
import { errnoOf, failedPrecondition, notFound, type CsiError } from "../csi/errors";
import type { Content, ContentLayout } from "./copy-content";
import { identityAt, isSameData, openData, type DataKind } from "./dir-identity";
import { moveIntoTrash } from "./trash-move";
import type { SnapshotRecord } from "./snapshot-record";

/** What a snapshot of `layout` keeps at its name: a directory tree, or one file (image and block). */
export function contentKind(layout: ContentLayout): DataKind {
  return layout === "dir" ? "dir" : "file";
}

function what(kind: DataKind): [made: string, other: string] {
  return kind === "dir" ? ["the directory", "another directory"] : ["the file", "another file"];
}

/**
 * Run `fn` on the snapshot's content, proven to be what its record names and
 * reached through a descriptor held open meanwhile (a path in /proc that a
 * copier opens as that very directory or file, whatever is at the name by
 * then). FAILED_PRECONDITION, nothing copied, when it is missing, of the
 * wrong kind, or another one.
 */
export async function withProvenContent<T>(p: string, rec: SnapshotRecord, fn: (content: Content) => Promise<T>): Promise<T> {
  const kind = contentKind(rec.layout);
  const unusable = (why: string) => failedPrecondition(`snapshot ${rec.snapshotId} cannot be restored: ${p} ${why}; nothing was copied`);
  let fd: number;
  try {
    fd = openData(p, kind);
  } catch (err) {
    if (["ENOENT", "ELOOP", "ENOTDIR", "ENXIO"].includes(errnoOf(err) ?? "")) throw unusable(`is missing or is not ${kind === "dir" ? "a directory" : "a regular file"}`);
    throw err;
  }
  try {
    const proof = rec.contentIdentity;
    if (proof ? !isSameData(fd, proof, kind, p) : !(kind === "dir" ? fstatSync(fd).isDirectory() : fstatSync(fd).isFile())) {
      const [made] = what(kind);
      throw unusable(proof ? `is not ${made} this driver made for it (another was put in its place)` : `is not ${kind === "dir" ? "a directory" : "a regular file"}`);
    }
    const at = `/proc/${process.pid}/fd/${fd}`; // the copier is another process: /proc/self would be its own
    return await fn({ path: kind === "dir" ? `${at}/.` : at, layout: rec.layout, live: false, pinned: true });
  } finally {
    closeSync(fd);
  }
}

/** What moveProvenContent did. */
export type ContentMove =
  /** Moved into .trash, at `path`: the commit point of the delete. */
  | { kind: "moved"; path: string }
  /** Nothing is at the name: nothing was moved. */
  | { kind: "absent" }
  /** Something else was at the name, before the move (`back` undefined: nothing moved) or as it was moved (put back, at `back`). */
  | { kind: "replaced"; back?: string };

/**
 * Move the content at `target` into `trashDir` as <id>.delete-<suffix>: the
 * commit point of a delete. Where the record names it (`rec.contentIdentity`),
 * it is looked at first, and what was moved is checked in .trash; anything
 * else is put back, never removed. A record without an identity (or none
 * readable: `rec` undefined) takes what is at the name, as it always did.
 */
export async function moveProvenContent(target: string, trashDir: string, rec: SnapshotRecord | undefined): Promise<ContentMove> {
  const proof = rec?.contentIdentity;
  const kind = contentKind(rec?.layout ?? "dir");
  if (proof && identityAt(target, proof, kind) === "other") return { kind: "replaced" };
  return moveIntoTrash(target, trashDir, proof, kind);
}

/**
 * DeleteSnapshot's answer when something else is at the snapshot's name —
 * or was swapped in as its content was moved, and was put back (`back`:
 * where): NOT_FOUND, nothing deleted, the record kept, as DeleteVolume
 * answers for a volume's directory (backends/hostpath/volume-dir.ts).
 */
export function notTheSnapshots(rec: SnapshotRecord, target: string, back?: string): CsiError {
  const [made, other] = what(contentKind(rec.layout));
  if (back === undefined) {
    return notFound(`snapshot ${rec.snapshotId}: ${target} is not ${made} this driver made for it (another was put in its place); nothing was deleted`);
  }
  const where = back === target ? "" : `, at ${back} (its place was taken again)`;
  return notFound(
    `snapshot ${rec.snapshotId}: ${target} was replaced by ${other} while it was being deleted; that one is not the snapshot's and was put back${where}, and nothing was deleted`,
  );
}
