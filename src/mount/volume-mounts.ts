/**
 * Where a volume is mounted, asked of the kernel.
 *
 * A bind mount of directory D shows up in mountinfo with D's device and
 * D's path inside that device's file system as its "root", whatever path
 * it is mounted at. So "every mount whose (device, root) is D's" is the
 * complete list of places D is staged or published — including mounts
 * made before a restart, or by hand.
 */
import { realpathSync } from "node:fs";
import { locate, mountAt, mountsOf, readMountInfo, type FsLocation, type MountEntry } from "./mountinfo";

export interface DirMounts {
  entries: MountEntry[];
  location: FsLocation | undefined;
  /** Mounts of the directory (not including the directory's own path). */
  mounts: MountEntry[];
}

export function mountsOfDir(dir: string): DirMounts {
  const entries = readMountInfo();
  let real: string;
  try {
    real = realpathSync(dir);
  } catch {
    return { entries, location: undefined, mounts: [] };
  }
  const location = locate(entries, real);
  const mounts = location ? mountsOf(entries, location).filter((m) => m.mountPoint !== real) : [];
  return { entries, location, mounts };
}

/** Is the top mount at `path` a mount of the directory at `location`? */
export function isMountOf(entries: readonly MountEntry[], path: string, location: FsLocation | undefined): MountEntry | undefined {
  const m = mountAt(entries, path);
  if (!m || !location) return undefined;
  return m.device === location.device && m.root === location.root ? m : undefined;
}
