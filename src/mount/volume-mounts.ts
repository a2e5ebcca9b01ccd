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
import { locate, mountTable, type FsLocation, type MountEntry, type Mounts } from "./mountinfo";

export interface DirMounts {
  table: Mounts;
  location: FsLocation | undefined;
  /** Mounts of the directory (not including the directory's own path). */
  mounts: MountEntry[];
}

export function mountsOfDir(dir: string): DirMounts {
  const table = mountTable();
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
      return { table, location: undefined, mounts: [] };
    }
  }
  const location = locate(table, real);
  if (!location) return { table, location, mounts: [] };
  const deleted = { device: location.device, root: `${location.root}//deleted` };
  const mounts = [...(gone ? [] : table.of(location)), ...table.of(deleted)].filter((m) => m.mountPoint !== real);
  return { table, location, mounts };
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

/** Where a volume is mounted, whatever its layout. */
export interface VolumeMounts {
  table: Mounts;
  /** Every mount of the volume: where it is staged and where it is published. */
  mounts: MountEntry[];
  /** Image and block volumes: the loop devices attached to the image that are in use. */
  loops: number[];
}

/** The mount on top at `path`, if it is one of the volume's. */
export function volumeMountAt(vm: VolumeMounts, path: string): MountEntry | undefined {
  const m = vm.table.at(path);
  return m && vm.mounts.includes(m) ? m : undefined;
}

/** Mounts of a volume kept as a directory (`image` false) or as an image file. */
export function mountsOfVolume(dataPath: string, image: boolean): VolumeMounts {
  if (!image) return { ...mountsOfDir(dataPath), loops: [] };
  return mountsOfImage(dataPath, mountTable());
}

/**
 * Every mount that shows a loop device attached to the image `file`: file
 * systems mounted from it (image volumes, and their bind mounts) and bind
 * mounts of its device node (block volumes; those show /dev's file system
 * with the node, "/loopN", as their root). Each distinct loop device in
 * the mount table costs one LOOP_GET_STATUS64 (the backing file's device
 * and inode: they name the image in every mount namespace), so the cost
 * follows the number of loop devices mounted on the node (the table's
 * index hands over just their mounts and /dev's), not the number of mounts.
 */
export function mountsOfImage(file: string, table: Mounts): VolumeMounts {
  const id = fileIdentity(file);
  if (!id) return { table, mounts: [], loops: [] };
  const devFs = locate(table, "/dev")?.device;
  const byDevice = new Map<string, number | undefined>();
  const ours = new Map<number, boolean>();
  const isOurs = (n: number): boolean => {
    let v = ours.get(n);
    if (v === undefined) ours.set(n, (v = loopBacks(n, id)));
    return v;
  };
  const mounts: MountEntry[] = [];
  for (const e of [...table.onLoopDevices(), ...(devFs === undefined ? [] : table.onDevice(devFs))]) {
    let n: number | undefined;
    if (e.device.startsWith("7:")) {
      if (!byDevice.has(e.device)) byDevice.set(e.device, loopNumberOfDevice(e.device));
      n = byDevice.get(e.device);
    } else if (e.device === devFs) {
      n = loopNumberOfNode(e.root);
    }
    if (n !== undefined && isOurs(n)) mounts.push(e);
  }
  return { table, mounts, loops: [...ours].filter(([, v]) => v).map(([n]) => n) };
}

/**
 * Is `m` a leftover: a bind mount of a loop device node whose device has
 * been detached since (a stage or publish of a block volume interrupted by
 * a crash)? Such a mount refers to nothing and may be removed.
 */
export function isStaleDeviceBind(table: Mounts, m: MountEntry): boolean {
  if (m.device !== locate(table, "/dev")?.device) return false;
  const n = loopNumberOfNode(m.root);
  return n !== undefined && loopBacking(n) === undefined;
}
