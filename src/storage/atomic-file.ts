/**
 * Crash-safe small files.
 *
 * A file rewritten in place can be caught half-written by a crash or a
 * kill -9: the old contents are gone and the new ones are not all there.
 * The classic cure is to write a temporary file next to the target, fsync
 * it so its bytes are on disk, rename it over the target — rename(2) is
 * atomic within a file system, so a reader sees the old file or the new one,
 * never a mix — and then fsync the directory so the rename itself survives
 * a power cut.
 */
import { closeSync, lstatSync, openSync, promises as fsp, readFileSync, constants as fsc } from "node:fs";
import * as path from "node:path";
import { closeQuietly, fsyncFd, openFd, syncPath, writeAll } from "./fd-calls";
import { uniqueSuffix } from "./unique-name";

/*
 * The writes go through the thread pool, reads (below) do not: on a busy
 * disk even creating or renaming a small file can wait hundreds of
 * microseconds for the journal, and that wait must not stall other calls.
 * Opening a directory to sync it, and closing a file already synced, change
 * nothing on disk and wait for nothing, so they are made directly: each
 * trip to the pool costs some 25 µs of CPU, more than either call.
 */

/**
 * The first half of an atomic write: `data` in a temporary file next to
 * `file`, on disk. Returns the temporary's path for commitFile. Split so a
 * caller can make other things durable meanwhile.
 */
export async function prepareFile(file: string, data: string | Uint8Array, mode = 0o644): Promise<string> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${uniqueSuffix()}.tmp`);
  const bytes = typeof data === "string" ? Buffer.from(data) : data;
  const fd = await openFd(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, mode);
  try {
    await writeAll(fd, bytes, null, tmp);
    await fsyncFd(fd);
  } catch (err) {
    closeQuietly(fd);
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  return tmp;
}

/** The second half: rename the prepared temporary over `file` (the atomic step), and make that durable. */
export async function commitFile(tmp: string, file: string): Promise<void> {
  try {
    await fsp.rename(tmp, file);
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
  await fsyncDir(path.dirname(file));
}

/** Is `entry` a temporary prepareFile made (`.<name>.<suffix>.tmp`), as a crash before its rename leaves it? */
export function isTemporaryName(entry: string): boolean {
  return entry.startsWith(".") && entry.endsWith(".tmp");
}

/**
 * Remove the temporaries a crash left among `entries`, the names in `dir`:
 * for a store's start-up sweep, when none of its writes can be under way.
 */
export async function removeTemporaries(dir: string, entries: readonly string[]): Promise<void> {
  for (const entry of entries) if (isTemporaryName(entry)) await fsp.rm(path.join(dir, entry), { force: true });
}

/** Write `data` to `file` atomically and durably. */
export async function writeFileAtomic(file: string, data: string | Uint8Array, mode = 0o644): Promise<void> {
  await commitFile(await prepareFile(file, data, mode), file);
}

/** Make a directory entry change (create, rename, unlink) durable. */
export function fsyncDir(dir: string): Promise<void> {
  return syncPath(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
}

/**
 * Read a small JSON file without following a symlink at its last component.
 *
 * Synchronous on purpose: a metadata file of a few hundred bytes on the
 * node's own disk comes from the page cache in about 5 µs, while the
 * promise API spends some 130 µs of CPU on the same read (four trips to the
 * thread pool). Never use this on a network file system, where a read can
 * hang and would stall every call.
 */
export function readJsonNoFollow(file: string): unknown {
  const fd = openSync(file, fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    return JSON.parse(readFileSync(fd, "utf8"));
  } finally {
    closeSync(fd);
  }
}

/**
 * readJsonNoFollow, or undefined where there is no such file.
 *
 * A failed open throws, and the error's stack trace costs more than the read
 * itself (20 µs warm, 100 µs and more in code not yet optimized). Where the
 * file is probably absent (`likely` false: the record of a name CreateVolume
 * has not seen), an lstat that throws nothing asks first. The hint only
 * orders the questions: the disk answers either way.
 */
export function readJsonIfPresent(file: string, likely: boolean): unknown {
  if (!likely && lstatSync(file, { throwIfNoEntry: false }) === undefined) return undefined;
  try {
    return readJsonNoFollow(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}
