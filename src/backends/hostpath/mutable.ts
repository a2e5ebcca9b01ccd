/**
 * A hostPath volume's mutable parameters, made real.
 *
 * `mode` is the permission bits of the volume's root: its data directory,
 * or for an image volume the root of the file system inside it, wherever
 * that is mounted read-write on this node — so an image volume takes it
 * when it is staged, and at every stage after (node.ts). A data directory
 * is changed through a descriptor proven to be the one its record names
 * (volume-dir.ts), never by its name.
 */
import { closeSync } from "node:fs";
import { errnoOf, failedPrecondition } from "../../csi/errors";
import { mountsOfVolume } from "../../mount/volume-mounts";
import type { Driver } from "../../server/driver";
import { setModeOf, setRootMode } from "../../storage/volume-root";
import { layoutOf, type VolumeRecord } from "../../storage/volume-record";
import { hostPathStore } from "./store";
import { openVolumeDir } from "./volume-dir";

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
  // The image's file system wherever it is mounted here read-write: one file system, however many places show it.
  const writable = mountsOfVolume(dataPath, true).mounts.filter((m) => !m.options.includes("ro") && m.root === "/");
  try {
    for (const m of writable.slice(0, 1)) setRootMode(m.mountPoint, mode);
  } catch (err) {
    // O_NOFOLLOW|O_DIRECTORY: gone, a symlink, or not a directory.
    if (["ENOENT", "ELOOP", "ENOTDIR"].includes(errnoOf(err) ?? "")) {
      throw failedPrecondition(`volume ${record.volumeId} cannot be changed: its directory is missing or is not a directory`);
    }
    throw err;
  }
}
