/**
 * A delete's moves on a share, made by the share agent (share-agent.ts).
 *
 * A delete's commit point on a share is a rename of the volume's or
 * snapshot's directory into <share>/.csi-lab/trash, which `clean` empties.
 * What is at a name can be swapped between any check and the rename, by
 * anyone who can rename on the share, on any node; so what was moved is
 * checked in the trash, where nothing else renames, and what is not the
 * volume's goes back — never in place of something that took its name
 * meanwhile, also where the file system has no RENAME_NOREPLACE (a Linux
 * NFS client answers EINVAL to it).
 */
import { randomBytes } from "node:crypto";
import { lstatSync, renameSync } from "node:fs";
import * as path from "node:path";
import { dirIdentity } from "../../storage/dir-identity";
import { PUT_BACK, renameNoReplaceSync } from "../../storage/rename-no-replace";
import { META_DIR } from "./share-layout";
import { AgentError, ensureDirs, inDir } from "./share-walk";

/** The identity a controller proved: {identity} or, for a marker of version 2, {v2}. */
export interface Expected {
  identity?: string;
  v2?: string;
}

/**
 * Move `target` into the share's trash under a fresh name starting with `k`: the commit point of a delete; `clean` empties it.
 * `then` is given where it went, while the trash is still held open, and says what to answer.
 */
export function toTrash(root: string, target: string, k: string, then: (moved: string) => boolean = () => true): boolean {
  ensureDirs(root, `${META_DIR}/trash`, 0o700);
  return inDir(root, `${META_DIR}/trash`, (trash) => {
    const moved = path.join(trash, `${k}.${randomBytes(4).toString("hex")}`);
    renameSync(target, moved);
    return then(moved);
  });
}

/**
 * Move the volume's directory at `target` (through `move`, which says where it went), and only
 * if it is the directory the marker names: `expect` is the identity the controller proved
 * ({identity} or, for a marker of version 2, {v2}; none for a marker that records none). What
 * is at a name can be swapped for another directory between any check and the rename — by a pod
 * that mounts the directory above it, on any node — so the check that counts is made on what
 * was moved, where nothing else renames (`move` hands it to `then`, with its directory still
 * open): not the volume's, it is put back where it was (or, that name taken meanwhile, beside
 * it), out of the trash, never in place of what took the name (renameNoReplaceSync, which
 * keeps that also where the file system has no RENAME_NOREPLACE), and the answer is false.
 */
export function movedIfProven(expect: Expected | undefined, target: string, move: (then: (moved: string) => boolean) => boolean): boolean {
  const proven = (p: string): boolean => {
    if (expect === undefined) return true;
    const st = lstatSync(p, { bigint: true, throwIfNoEntry: false });
    if (!st?.isDirectory()) return false;
    const id = dirIdentity(p, st.ino);
    return expect.identity !== undefined ? id.identity === expect.identity : id.v2 === expect.v2;
  };
  if (!proven(target)) return false;
  return move((moved) => {
    if (proven(moved)) return true;
    const put = (to: string) => renameNoReplaceSync(moved, to) === "renamed";
    if (!put(target) && !put(`${target}${PUT_BACK}${randomBytes(4).toString("hex")}`)) {
      throw new AgentError("EEXIST", `${moved} is not the volume's and could not be put back beside ${target}; it was left there`);
    }
    return false;
  });
}
