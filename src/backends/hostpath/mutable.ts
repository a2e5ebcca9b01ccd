/**
 * A hostPath volume's mutable parameters, made real.
 *
 * `mode` is the permission bits of the volume's root: its data directory,
 * or for an image volume the root of the file system inside it, wherever
 * that is mounted read-write on this node — so an image volume takes it
 * when it is staged, and at every stage after (node.ts).
 */
import { failedPrecondition, errnoOf } from "../../csi/errors";
import { mountsOfVolume } from "../../mount/volume-mounts";
import type { Driver } from "../../server/driver";
import { setRootMode } from "../../storage/volume-root";
import { layoutOf, type VolumeRecord } from "../../storage/volume-record";
import { hostPathStore } from "./store";

/**
 * The directories that are the volume's root: its data directory, or for
 * an image the root of its file system wherever it is mounted here
 * (read-write) — none while it is not staged.
 */
function volumeRoots(driver: Driver, record: VolumeRecord): string[] {
  const dataPath = hostPathStore(driver).dataDir(record.volumeId);
  if (layoutOf(record) === "dir") return [dataPath];
  const writable = mountsOfVolume(dataPath, true).mounts.filter((m) => !m.options.includes("ro") && m.root === "/");
  return writable.slice(0, 1).map((m) => m.mountPoint);
}

/**
 * Make the volume match `params` (already checked). Only the keys given
 * are touched: the spec forbids changing anything for an absent key.
 */
export function applyMutableParameters(driver: Driver, record: VolumeRecord, params: Record<string, string>): void {
  try {
    if (params.mode !== undefined) for (const root of volumeRoots(driver, record)) setRootMode(root, parseInt(params.mode, 8));
  } catch (err) {
    // O_NOFOLLOW|O_DIRECTORY: gone, a symlink, or not a directory.
    if (["ENOENT", "ELOOP", "ENOTDIR"].includes(errnoOf(err) ?? "")) {
      throw failedPrecondition(`volume ${record.volumeId} cannot be changed: its directory is missing or is not a directory`);
    }
    throw err;
  }
}
