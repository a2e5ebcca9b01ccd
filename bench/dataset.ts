/**
 * The benchmark data set: "a 1 GiB volume with 10,000 small files".
 *
 * 10,000 regular files of 107,374 bytes each (1 GiB in all) spread over 100
 * directories, filled with pseudo-random bytes so that no file system can
 * compress or deduplicate them, plus a few things a faithful copy must keep:
 * a symlink, a hard link pair and a file with an unusual mode. The same seed
 * gives the same bytes, so runs are comparable.
 */
import { createCipheriv } from "node:crypto";
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { spawnSync } from "node:child_process";

export const FILES = 10_000;
export const DIRS = 100;
export const TOTAL_BYTES = 1024 ** 3;
export const FILE_BYTES = Math.floor(TOTAL_BYTES / FILES);

/** Write the data set into `dir` (which must exist and be empty). */
export async function fillDataset(dir: string, files = FILES, fileBytes = FILE_BYTES): Promise<void> {
  // AES-CTR over zeros is a fast, seedable stream of incompressible bytes.
  const stream = createCipheriv("aes-128-ctr", Buffer.alloc(16, 7), Buffer.alloc(16, 0));
  const zeros = Buffer.alloc(fileBytes);
  const perDir = Math.ceil(files / DIRS);
  for (let d = 0; d < DIRS && d * perDir < files; d++) {
    const sub = path.join(dir, `d${String(d).padStart(3, "0")}`);
    await fsp.mkdir(sub);
    const batch: Promise<void>[] = [];
    for (let i = d * perDir; i < Math.min(files, (d + 1) * perDir); i++) {
      batch.push(fsp.writeFile(path.join(sub, `f${String(i).padStart(5, "0")}`), stream.update(zeros)));
    }
    await Promise.all(batch);
  }
  await fsp.symlink("d000/f00000", path.join(dir, "link-to-first"));
  await fsp.link(path.join(dir, "d000", "f00001"), path.join(dir, "hardlink-to-second"));
  await fsp.chmod(path.join(dir, "d000", "f00002"), 0o4750);
}

/** Bytes of disk a directory tree occupies, as du(1) counts them (shared reflinked extents are counted once per file). */
export function duBytes(dir: string): number {
  const r = spawnSync("du", ["-s", "-B1", dir], { encoding: "utf8" });
  return Number(r.stdout.split(/\s/)[0]);
}

/** Bytes used on the file system holding `dir` (df's "Used"), after a sync so delayed allocation is counted. */
export async function fsUsedBytes(dir: string): Promise<number> {
  spawnSync("sync", ["-f", dir]);
  const s = await fsp.statfs(dir);
  return (s.blocks - s.bfree) * s.bsize;
}

/** The file system type of `dir` (ext4, xfs, btrfs, …). */
export function fsType(dir: string): string {
  return spawnSync("findmnt", ["-n", "-o", "FSTYPE", "-T", dir], { encoding: "utf8" }).stdout.trim();
}

export function gib(bytes: number): string {
  return (bytes / 1024 ** 3).toFixed(2);
}

export function mib(bytes: number): string {
  return String(Math.round(bytes / 1024 ** 2));
}
