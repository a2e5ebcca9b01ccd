/**
 * Where a volume is mounted, asked of the kernel.
 *
 * A bind mount of directory D shows up in mountinfo with D's device and
 * D's path inside that device's file system as its "root", whatever path
 * it is mounted at. So "every mount whose (device, root) is D's" is the
 * complete list of places D is staged or published — including mounts
 * made before a restart, or by hand. An image volume is found through the
 * loop devices attached to its file (mountsOfImage).
 */
import { realpathSync } from "node:fs";
import * as path from "node:path";
import { fileIdentity, loopBacking, loopBacks, loopNumberOfDevice, loopNumberOfNode } from "./loop";
import { checkNoSymlinks } from "./open-no-symlinks";
import { locate, mountAt, mountsOf, readMountInfo, type FsLocation, type MountEntry } from "./mountinfo";

export interface DirMounts {
  entries: readonly MountEntry[];
  location: FsLocation | undefined;
  /** Mounts of the directory (not including the directory's own path). */
  mounts: MountEntry[];
}

export function mountsOfDir(dir: string): DirMounts {
  const entries = readMountInfo();
  let real: string;
  let gone = false;
  try {
    real = resolvedDir(dir);
  } catch {
    // Removed while mounted: its mounts show its old path with "//deleted" after it.
    try {
      real = path.join(realpathSync.native(path.dirname(dir)), path.basename(dir));
      gone = true;
    } catch {
      return { entries, location: undefined, mounts: [] };
    }
  }
  const location = locate(entries, real);
  if (!location) return { entries, location, mounts: [] };
  const deleted = { device: location.device, root: `${location.root}//deleted` };
  const mounts = [...(gone ? [] : mountsOf(entries, location)), ...mountsOf(entries, deleted)].filter((m) => m.mountPoint !== real);
  return { entries, location, mounts };
}

/**
 * `dir` with symlinks resolved. A path with no symlink on it is its own
 * resolution, and one openat2 proves that (the usual case: the driver's
 * own directories); realpath(3) costs a readlink per component.
 */
function resolvedDir(dir: string): string {
  const clean = path.isAbsolute(dir) && path.normalize(dir) === dir;
  return clean && checkNoSymlinks(dir) === "symlink-free" ? dir : realpathSync.native(dir);
}

/** Is the top mount at `path` a mount of the directory at `location`? */
export function isMountOf(entries: readonly MountEntry[], path: string, location: FsLocation | undefined): MountEntry | undefined {
  const m = mountAt(entries, path);
  if (!m || !location) return undefined;
  return m.device === location.device && m.root === location.root ? m : undefined;
}

/** Where a volume is mounted, whatever its layout. */
export interface VolumeMounts {
  entries: readonly MountEntry[];
  /** Every mount of the volume: where it is staged and where it is published. */
  mounts: MountEntry[];
  /** Image and block volumes: the loop devices attached to the image that are in use. */
  loops: number[];
}

/** The mount on top at `path`, if it is one of the volume's. */
export function volumeMountAt(vm: VolumeMounts, path: string): MountEntry | undefined {
  const m = mountAt(vm.entries, path);
  return m && vm.mounts.includes(m) ? m : undefined;
}

/** Mounts of a volume kept as a directory (`image` false) or as an image file. */
export function mountsOfVolume(dataPath: string, image: boolean): VolumeMounts {
  if (!image) return { ...mountsOfDir(dataPath), loops: [] };
  return mountsOfImage(dataPath, readMountInfo());
}

/**
 * Every mount that shows a loop device attached to the image `file`: file
 * systems mounted from it (image volumes, and their bind mounts) and bind
 * mounts of its device node (block volumes; those show /dev's file system
 * with the node, "/loopN", as their root). Each distinct loop device in
 * the mount table costs one LOOP_GET_STATUS64 (the backing file's device
 * and inode: they name the image in every mount namespace), so the cost
 * follows the number of loop devices mounted on the node, as reading
 * mountinfo follows the number of mounts.
 */
export function mountsOfImage(file: string, entries: readonly MountEntry[]): VolumeMounts {
  const id = fileIdentity(file);
  if (!id) return { entries, mounts: [], loops: [] };
  const devFs = locate(entries, "/dev")?.device;
  const byDevice = new Map<string, number | undefined>();
  const ours = new Map<number, boolean>();
  const isOurs = (n: number): boolean => {
    let v = ours.get(n);
    if (v === undefined) ours.set(n, (v = loopBacks(n, id)));
    return v;
  };
  const mounts: MountEntry[] = [];
  for (const e of entries) {
    let n: number | undefined;
    if (e.device.startsWith("7:")) {
      if (!byDevice.has(e.device)) byDevice.set(e.device, loopNumberOfDevice(e.device));
      n = byDevice.get(e.device);
    } else if (e.device === devFs) {
      n = loopNumberOfNode(e.root);
    }
    if (n !== undefined && isOurs(n)) mounts.push(e);
  }
  return { entries, mounts, loops: [...ours].filter(([, v]) => v).map(([n]) => n) };
}

/**
 * Is `m` a leftover: a bind mount of a loop device node whose device has
 * been detached since (a stage or publish of a block volume interrupted by
 * a crash)? Such a mount refers to nothing and may be removed.
 */
export function isStaleDeviceBind(entries: readonly MountEntry[], m: MountEntry): boolean {
  if (m.device !== locate(entries, "/dev")?.device) return false;
  const n = loopNumberOfNode(m.root);
  return n !== undefined && loopBacking(n) === undefined;
}
