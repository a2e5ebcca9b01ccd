/**
 * A rename that never replaces what is at the new name.
 *
 * rename(2) puts its source in place of whatever the destination holds — a
 * file, or an empty directory — and that entry is gone, without a word. Where
 * the destination is a name others may write (a volume's name in data/),
 * checking that it is free first leaves a moment in which it can be taken.
 * renameat2(2) with RENAME_NOREPLACE makes the check and the rename one
 * step: a taken name answers EEXIST and nothing moves (Linux 3.15; ext4,
 * xfs, btrfs and tmpfs have it). A file system without it answers EINVAL;
 * there the name is checked just before a plain rename, as it was.
 */
import { lstatSync, promises as fsp } from "node:fs";
import koffi from "koffi";
import { aborted, type CsiError } from "../csi/errors";
import { libc } from "../mount/libc";
import { SyscallError } from "../mount/syscalls";
import { uniqueSuffix } from "./unique-name";

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
  if (lstatSync(to, { throwIfNoEntry: false })) throw Object.assign(new Error(`EEXIST: ${to} exists, rename '${from}' -> '${to}'`), { code: "EEXIST" });
  await fsp.rename(from, to);
}

/**
 * The same on the calling thread, for a name on the node's own disk that
 * the caller reached without a symlink (src/node/made-here.ts): "exists"
 * where something is at `to`, "unsupported" where the file system has no
 * RENAME_NOREPLACE (the caller then does what it can without it).
 */
export function renameNoReplaceSync(from: string, to: string): "renamed" | "exists" | "unsupported" {
  if (renameat2Fn(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) === 0) return "renamed";
  const errno = koffi.errno();
  if (errno === EEXIST) return "exists";
  if (errno === EINVAL) return "unsupported";
  throw new SyscallError("renameat2", errno, `${from} -> ${to}`);
}

/**
 * What a create answers when the content it made in .tmp is gone at its final rename into place (ENOENT): something
 * other than the driver removed it. The create has undone its commit and kept nothing, so a retry starts afresh.
 */
export function vanished(what: string, staging: string): CsiError {
  return aborted(`the content of new ${what}, made in ${staging}, was removed by something other than this driver before it could be moved into place; nothing was kept: retry`);
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
