/**
 * A mark on what the driver makes at a staging or target path.
 *
 * NodePublishVolume makes the target directory (or, for a block volume, the
 * file a device is bound onto) when the CO has not, and the spec asks
 * NodeUnpublishVolume to remove it again. But an empty directory at a
 * target proves nothing: the CO may have made it, or another program. So
 * the driver marks what it makes with an extended attribute in the
 * "trusted" namespace — only a process with CAP_SYS_ADMIN can set or forge
 * one — naming the volume it was made for, and removes only what carries
 * the mark of the volume a request names. The mark lives on the directory
 * itself, so it survives a driver restart and needs no record elsewhere;
 * a file system without extended attributes simply gets no mark, and what
 * the driver made there is left for the CO to remove.
 *
 * Making and marking are two system calls, and a kill -9 between them would
 * leave an unmarked place that no later call could tell from the CO's. So
 * what the driver makes appears at the place already marked: it is made and
 * marked under a placeholder name beside the place — a name no one else
 * uses — and renamed into place with RENAME_NOREPLACE (makeMarked). What a
 * kill -9 leaves at the placeholder, empty, the next call at the place
 * removes.
 */
import { createHash } from "node:crypto";
import { closeSync, constants as fsc, lstatSync, mkdirSync, openSync, rmdirSync, unlinkSync } from "node:fs";
import * as path from "node:path";
import { failedPrecondition } from "../csi/errors";
import { libc } from "../mount/libc";
import { renameNoReplaceSync } from "../storage/rename-no-replace";

const lsetxattr = libc.func("int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)") as (
  path: string,
  name: string,
  value: Buffer,
  size: number,
  flags: number,
) => number;
const lgetxattr = libc.func("long lgetxattr(const char *path, const char *name, _Out_ void *value, size_t size)") as (
  path: string,
  name: string,
  value: Buffer,
  size: number,
) => number;

const NAME = "trusted.csi-lab.made-for";

/** Mark `p` (not following a symlink) as made for `volumeId`; false where the file system cannot hold the mark. */
export function markMadeFor(p: string, volumeId: string): boolean {
  const value = Buffer.from(volumeId);
  return lsetxattr(p, NAME, value, value.length, 0) === 0;
}

/** The volume `p` was made for, if the driver marked it. */
export function madeFor(p: string): string | undefined {
  const buf = Buffer.alloc(256);
  const n = lgetxattr(p, NAME, buf, buf.length);
  return n > 0 ? buf.subarray(0, n).toString() : undefined;
}


/**
 * Make `at` — a directory, or an empty file — with the mark for `volumeId`
 * on it from the moment it is there: made and marked at the placeholder,
 * then renamed into place, replacing nothing. What a kill -9 left at the
 * placeholder is removed first. Something that appeared at `at` meanwhile
 * stays (the caller judges it as any occupant). `what` names the place in
 * messages. Where the file system has no RENAME_NOREPLACE, the rename takes
 * the name first (src/storage/rename-no-replace.ts): a directory has an empty
 * one of ours, not marked, at `at` for that instant, which a kill -9 then
 * leaves (for the CO to remove, as any unmarked one); a file is marked there
 * from its first moment (a second link to the placeholder's).
 */
export function makeMarked(at: string, kind: "dir" | "file", volumeId: string, what: string): void {
  const temp = placeholderFor(at);
  try {
    makeAt(temp, kind);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    if (!removePlaceholder(at)) throw failedPrecondition(`${what}: ${path.basename(temp)} beside it is not what the driver leaves there; nothing was done`);
    makeAt(temp, kind);
  }
  markMadeFor(temp, volumeId);
  if (renameNoReplaceSync(temp, at) === "exists") removePlaceholder(at);
}

function makeAt(at: string, kind: "dir" | "file"): void {
  if (kind === "dir") {
    // The mode kubelet-made target directories have.
    mkdirSync(at, { mode: 0o750 });
  } else {
    closeSync(openSync(at, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600));
  }
}

/**
 * Remove what a killed call left at the placeholder of `at`: an empty
 * directory or an empty file. False when something else is there (not the
 * driver's: it stays).
 */
export function removePlaceholder(at: string): boolean {
  const temp = placeholderFor(at);
  const st = lstatSync(temp, { throwIfNoEntry: false });
  try {
    if (st?.isDirectory()) rmdirSync(temp);
    else if (st?.isFile() && st.size === 0) unlinkSync(temp);
    else if (st) return false;
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOTEMPTY") return false;
    if (code === "ENOENT") return true;
    throw err;
  }
}

function placeholderFor(p: string): string {
  return path.join(path.dirname(p), placeholderName(path.basename(p)));
}

/** The placeholder's name for a place named `name`: one no one else uses, from `name` (whatever its length). */
export function placeholderName(name: string): string {
  return `.csi-lab-making-${createHash("sha256").update(name).digest("hex").slice(0, 16)}`;
}

