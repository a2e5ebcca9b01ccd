/**
 * File calls on plain descriptors, through libuv's thread pool, as promises.
 *
 * Node's fs.promises answers with FileHandle objects, whose promise and
 * close-on-collect bookkeeping cost more CPU than the system calls
 * themselves on the driver's small files. The callback API does the same
 * calls, one trip to the pool each; these are it, promisified. Calls that
 * may wait for the disk or its journal (create, write, truncate, fsync) go
 * through here; ones that never do (opening an existing directory, closing
 * a synced file, reading what is in the page cache) are made directly by
 * their callers (storage/atomic-file.ts).
 */
import { closeSync, fsync, ftruncate, open, openSync, write } from "node:fs";
import { promisify } from "node:util";

export const openFd = promisify(open);
export const fsyncFd = promisify(fsync);
export const ftruncateFd = promisify(ftruncate);

/** Write all of `bytes` to `fd`, at `position` (null: the file's offset), however many writes it takes. */
export function writeAll(fd: number, bytes: Uint8Array, position: number | null, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const step = (off: number) => {
      if (off >= bytes.length) return resolve();
      write(fd, bytes, off, bytes.length - off, position === null ? null : position + off, (err, n) => {
        if (err) return reject(err);
        if (n === 0) return reject(new Error(`${what}: a write made no progress`));
        step(off + n);
      });
    };
    step(0);
  });
}

/** Open `p` with `flags` (directly: it exists), fsync it on the pool, close it. */
export async function syncPath(p: string, flags: number): Promise<void> {
  const fd = openSync(p, flags);
  try {
    await fsyncFd(fd);
  } catch (err) {
    closeQuietly(fd);
    throw err;
  }
  closeSync(fd);
}

/** Close `fd` on the way out of a failure: the failure is the error to report, not the close's. */
export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // see above
  }
}
