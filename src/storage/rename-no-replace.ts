/**
 * A rename that never replaces what is at the new name.
 *
 * rename(2) puts its source in place of whatever the destination holds — a
 * file, or an empty directory — and that entry is gone, without a word. Where
 * the destination is a name others may write (a volume's name in data/, a
 * share's subDir), checking that it is free first leaves a moment in which it
 * can be taken. renameat2(2) with RENAME_NOREPLACE makes the check and the
 * rename one step: a taken name answers EEXIST and nothing moves (Linux 3.15;
 * ext4, xfs, btrfs and tmpfs have it).
 *
 * A file system without it answers EINVAL (a Linux NFS client does). There
 * the name is taken first, by a call that fails where it is taken, and then
 * the source moved onto what we took: a directory gets an empty directory of
 * ours made at the name (mkdir(2), EEXIST if taken) and is renamed over it —
 * onto an empty directory rename(2) replaces atomically, onto anything else it
 * fails; anything else gets a second link at the name (link(2), EEXIST if
 * taken) and its old name is unlinked. Where the rename onto our directory
 * fails — the source gone meanwhile (ENOENT), or anything else — the empty
 * directory we made is removed again (rmdir(2), which removes only an empty
 * directory), so nothing is left at the name; a link(2) whose source is gone
 * fails and leaves nothing.
 *
 * What stays open there: something that removes our fresh empty directory and
 * makes another, empty too, in the instant before our rename (or our rmdir)
 * has that one replaced (or removed) instead — a directory's identity can only
 * be read after it is made, so no check closes that; no data can be in it. A
 * kill -9 in that instant leaves our empty directory at the name (a retry then
 * finds the name taken), and an rmdir that fails otherwise (EIO, say) is
 * thrown with it there. A file has two names between the link and the unlink:
 * a kill -9 there leaves both (a second name, not a copy), and an unlink that
 * fails (but for ENOENT: then it is at the new name alone) is thrown with both.
 */
import { linkSync, lstatSync, mkdirSync, promises as fsp, renameSync, rmdirSync, unlinkSync } from "node:fs";
import koffi from "koffi";
import { aborted, type CsiError } from "../csi/errors";
import { libc } from "../mount/libc";
import { SyscallError } from "../mount/syscalls";
import { uniqueSuffix } from "./unique-name";
import type { Leftover } from "./remove-tree";

type Renameat2 = {
  (olddirfd: number, oldpath: string, newdirfd: number, newpath: string, flags: number): number;
  async(olddirfd: number, oldpath: string, newdirfd: number, newpath: string, flags: number, cb: (err: unknown, rc: number) => void): void;
};
const renameat2Fn = libc.func("int renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags)") as Renameat2;

const AT_FDCWD = -100;
const RENAME_NOREPLACE = 1;
const EEXIST = 17;
const EINVAL = 22;
let unsupported = false;

/** Rename `from` to `to` unless something is at `to`: then EEXIST (a SyscallError with that code), and nothing moved. */
export async function renameNoReplace(from: string, to: string): Promise<void> {
  if (!unsupported) {
    const errno = await new Promise<number>((resolve, reject) =>
      renameat2Fn.async(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE, (err, rc) => (err ? reject(err) : resolve(rc === 0 ? 0 : koffi.errno()))),
    );
    if (errno === 0) return;
    if (errno !== EINVAL) throw new SyscallError("renameat2", errno, `${from} -> ${to}`);
    unsupported = true;
  }
  if ((await takeNameFirst(from, to)) === "exists") throw new SyscallError("rename", EEXIST, `${from} -> ${to}`);
}

/**
 * The same on the calling thread, for a name the caller reached without a symlink (src/node/made-here.ts,
 * src/backends/nfs/share-trash.ts): "exists" where something is at `to`, and nothing moved.
 */
export function renameNoReplaceSync(from: string, to: string): "renamed" | "exists" {
  if (renameat2Fn(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) === 0) return "renamed";
  const errno = koffi.errno();
  if (errno === EEXIST) return "exists";
  if (errno !== EINVAL) throw new SyscallError("renameat2", errno, `${from} -> ${to}`);
  return takeNameFirstSync(from, to);
}

const isCode = (err: unknown, ...codes: string[]): boolean => codes.includes((err as NodeJS.ErrnoException).code ?? "");
/** What a rename onto our empty directory answers where the name was taken from under it (emptied and another made, or filled). */
const TAKEN_FROM_US = ["EEXIST", "ENOTEMPTY", "ENOTDIR"];
/** What rmdir(2) of our empty directory answers where it is no longer there, or no longer an empty directory: not ours to remove. */
const NOT_OURS = ["ENOENT", "ENOTEMPTY", "EEXIST", "ENOTDIR"];

/** Without RENAME_NOREPLACE: take `to` first (mkdir(2) or link(2)), then move `from` onto what we took (the top of this file). */
async function takeNameFirst(from: string, to: string): Promise<"renamed" | "exists"> {
  const dir = (await fsp.lstat(from)).isDirectory();
  try {
    await (dir ? fsp.mkdir(to, { mode: 0o700 }) : fsp.link(from, to));
  } catch (err) {
    if (isCode(err, "EEXIST")) return "exists";
    throw err; // nothing made: a link(2) whose source is gone fails
  }
  if (!dir) {
    await fsp.unlink(from).catch((err: unknown) => {
      if (!isCode(err, "ENOENT")) throw err; // its old name gone meanwhile: it is at `to` alone
    });
    return "renamed";
  }
  try {
    await fsp.rename(from, to);
    return "renamed";
  } catch (err) {
    // Not moved: what we took goes again (but for what took it from us).
    await fsp.rmdir(to).catch((e: unknown) => {
      if (!isCode(e, ...NOT_OURS)) throw e;
    });
    if (isCode(err, ...TAKEN_FROM_US)) return "exists";
    throw err;
  }
}

/** takeNameFirst, on the calling thread. */
function takeNameFirstSync(from: string, to: string): "renamed" | "exists" {
  const dir = lstatSync(from).isDirectory();
  try {
    if (dir) mkdirSync(to, { mode: 0o700 });
    else linkSync(from, to);
  } catch (err) {
    if (isCode(err, "EEXIST")) return "exists";
    throw err;
  }
  if (!dir) {
    try {
      unlinkSync(from);
    } catch (err) {
      if (!isCode(err, "ENOENT")) throw err;
    }
    return "renamed";
  }
  try {
    renameSync(from, to);
    return "renamed";
  } catch (err) {
    try {
      rmdirSync(to);
    } catch (e) {
      if (!isCode(e, ...NOT_OURS)) throw e;
    }
    if (isCode(err, ...TAKEN_FROM_US)) return "exists";
    throw err;
  }
}

/**
 * What a create answers when the content it made in .tmp is gone at its final rename into place (ENOENT): something
 * other than the driver removed it. The create has undone its commit and kept nothing, so a retry starts afresh.
 */
export function vanished(what: string, staging: string): CsiError {
  return aborted(`the content of new ${what}, made in ${staging}, was removed by something other than this driver before it could be moved into place; nothing was kept: retry`);
}

/**
 * What a start-up sweep does with a create cut off after its commit point, its content still staged: put it in place
 * at `target`; if something took that name meanwhile, it is not replaced, and the content waits where it is, named in
 * `left` as `what`'s (a volume's, a snapshot's).
 */
export async function finishCommittedCreate(staged: string, target: string, what: string, left: Leftover[]): Promise<void> {
  try {
    await renameNoReplace(staged, target);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    left.push({ path: staged, problem: `it is ${what}'s, whose create was committed, but ${target} is taken by something that is not; it stays until that is gone` });
  }
}

/** How a stranger put back beside its name is named there: <name>.not-deleted-<suffix> (never swept: it is not the driver's). */
export const PUT_BACK = ".not-deleted-";

/**
 * Put what a delete moved to `moved` — and found not to be what it meant to
 * delete — back at `name`, or beside it (PUT_BACK) if the name was taken
 * meanwhile: never in place of what took it. Where it went.
 */
export async function putBack(moved: string, name: string): Promise<string> {
  try {
    await renameNoReplace(moved, name);
    return name;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
  }
  const beside = `${name}${PUT_BACK}${uniqueSuffix()}`;
  await renameNoReplace(moved, beside);
  return beside;
}
