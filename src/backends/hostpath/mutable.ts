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
 * with the file system held open, still backed by the volume's image.
 */
import { closeSync } from "node:fs";
import { fileIdentity, loopBacks, loopNumberOfDevice } from "../../mount/loop";
import type { MountEntry } from "../../mount/mountinfo";
import { openMountRoot } from "../../mount/open-mount-root";
import { mountsOfVolume } from "../../mount/volume-mounts";
import type { Driver } from "../../server/driver";
import { setModeOf } from "../../storage/volume-root";
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
  // One file system however many places show it: the first root proven the image's takes the mode.
  // None (not staged here, or every mount gone since the table was read): the next stage applies it.
  const writable = mountsOfVolume(dataPath, true).mounts.filter((m) => !m.options.includes("ro") && m.root === "/");
  for (const m of writable) if (withImageRoot(dataPath, m, (fd) => setModeOf(fd, mode))) return;
}

/** Run `fn` on the root of the image's file system mounted at `m`, if it is that (see the top of this file); whether it ran. */
function withImageRoot(image: string, m: MountEntry, fn: (fd: number) => void): boolean {
  const fd = openMountRoot(m);
  if (fd === undefined) return false;
  try {
    const n = loopNumberOfDevice(m.device);
    const file = fileIdentity(image);
    if (n === undefined || file === undefined || !loopBacks(n, file)) return false;
    fn(fd);
    return true;
  } finally {
    closeSync(fd);
  }
}
