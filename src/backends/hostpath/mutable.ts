/**
 * A hostPath volume's mutable parameters, made real.
 *
 * `mode` is the permission bits of the volume's root: its data directory,
 * or for an image volume the root of the file system inside it, wherever
 * that is mounted read-write on this node — so an image volume takes it
 * when it is staged, and at every stage after (node.ts).
 *
 * Either is changed through a descriptor proven to be the volume's, never
 * by a name that could meanwhile hold something else: the data directory
 * is the one its record names (volume-dir.ts); an image's root is opened
 * at a mount point the mount table lists and proven to be the root of
 * that very mount (mount/open-mount-root.ts), whose loop device is then,
 * with the file system held open, still backed by the image its record
 * names (volume-dir.ts: imageOfRecord).
 */
import { closeSync } from "node:fs";
import type { FileIdentity } from "../../mount/loop";
import { mountTable, type MountEntry } from "../../mount/mountinfo";
import { openImageRoot } from "../../mount/open-mount-root";
import { mountsOfImage } from "../../mount/volume-mounts";
import type { Driver } from "../../server/driver";
import { setModeOf } from "../../storage/volume-root";
import { layoutOf, type VolumeRecord } from "../../storage/volume-record";
import { hostPathStore } from "./store";
import { imageOfRecord, openVolumeDir } from "./volume-dir";

/**
 * Make the volume match `params` (already checked). Only the keys given
 * are touched: the spec forbids changing anything for an absent key.
 */
export function applyMutableParameters(driver: Driver, record: VolumeRecord, params: Record<string, string>): void {
  if (params.mode === undefined) return;
  const mode = parseInt(params.mode, 8);
  const dataPath = hostPathStore(driver).dataDir(record.volumeId);
  if (layoutOf(record) === "dir") {
    const fd = openVolumeDir(dataPath, record); // FAILED_PRECONDITION: missing, not a directory, or another one
    try {
      setModeOf(fd, mode);
    } finally {
      closeSync(fd);
    }
    return;
  }
  // One file system however many places show it: the first root proven the image's takes the mode.
  // None (not staged here, or every mount gone since the table was read): the next stage applies it.
  // The image is the one the record names, wherever it is, not whatever file is at its name (volume-dir.ts).
  const image = imageOfRecord(dataPath, record.dataIdentity);
  const writable = mountsOfImage(image, mountTable()).mounts.filter((m) => !m.options.includes("ro") && m.root === "/");
  for (const m of writable) if (withImageRoot(image, m, (fd) => setModeOf(fd, mode))) return;
}

/** Run `fn` on the root of the image's file system mounted at `m`, if it is that (see the top of this file); whether it ran. */
function withImageRoot(image: FileIdentity | undefined, m: MountEntry, fn: (fd: number) => void): boolean {
  const fd = openImageRoot(m, image);
  if (fd === undefined) return false;
  try {
    fn(fd);
    return true;
  } finally {
    closeSync(fd);
  }
}
