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
import {
  backingTest,
  fileIdentity,
  loopBacking,
  loopIsDetached,
  loopNumberOfDevice,
  loopNumberOfNode,
  type FileIdentity,
  type LoopBacking,
} from "./loop";
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
  const mounts = [...(gone ? [] : table.of(location)), ...table.of(deletedLocation(location))].filter((m) => m.mountPoint !== real);
  return { table, location, mounts };
}

/**
 * Every mount at `p` or anywhere below it (its real path), in the table's
 * order: what a recursive removal of `p` would walk into. GNU rm -rf goes
 * down into a file system mounted inside the tree it removes, empties it,
 * and only then fails on the mount point; --one-file-system would stop it
 * there, but also at a btrfs subvolume that is the tree's own. Nothing
 * when `p` does not exist.
 */
export function mountsInside(p: string): MountEntry[] {
  let real: string;
  try {
    real = realpathSync.native(p);
  } catch {
    return [];
  }
  return mountTable().inside(real);
}

/**
 * Where the mounts of a directory removed while mounted show: the kernel
 * names their root by the directory's old path with "//deleted" after it.
 * They are still that directory's mounts.
 */
export function deletedLocation(loc: FsLocation): FsLocation {
  return { device: loc.device, root: `${loc.root}//deleted` };
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
 * with the node, "/loopN", as their root). A loop device is named to the
 * image by LOOP_GET_STATUS64 (the backing file's device and inode: they
 * name the image in every mount namespace). For a file system mounted
 * from one, the answer is remembered with the mount (`loopOfMount`); each
 * bind of a device node is asked every time, so the cost follows the
 * number of block volumes published on the node, not the number of mounts
 * or of image volumes.
 */
export function mountsOfImage(file: string | FileIdentity | undefined, table: Mounts): VolumeMounts {
  const test = imageMountTest(file, table);
  const devFs = locate(table, "/dev")?.device;
  const candidates = [...table.onLoopDevices(), ...(devFs === undefined ? [] : table.onDevice(devFs))];
  return { table, mounts: candidates.filter((m) => test.shows(m)), loops: test.loops() };
}

/** Whether a mount shows an image, one mount at a time; and the image's loop devices seen so far. */
export interface ImageMountTest {
  shows(m: MountEntry): boolean;
  /** The loop devices found attached to the image among the mounts tested. */
  loops(): number[];
}

/**
 * The test mountsOfImage applies to each mount, for a caller that has one
 * mount to judge ("is what is mounted here the volume's?") and need not
 * list every mount of the image. Each loop device is asked once per test.
 * The image is a path (the file there now) or the identity of a file
 * wherever it is (a record's: src/backends/hostpath/volume-dir.ts).
 */
export function imageMountTest(file: string | FileIdentity | undefined, table: Mounts): ImageMountTest {
  const id = typeof file === "string" ? fileIdentity(file) : file;
  if (!id) return { shows: () => false, loops: () => [] }; // no image: nothing shows it
  const isImage = backingTest(id);
  const devFs = locate(table, "/dev")?.device;
  const ours = new Map<number, boolean>();
  const loopOf = (m: MountEntry): number | undefined => {
    if (m.device.startsWith("7:")) {
      const loop = loopOfMount(m);
      if (loop !== undefined && !ours.has(loop.n)) ours.set(loop.n, isImage(loop.backing));
      return loop?.n;
    }
    if (m.device !== devFs) return undefined;
    const n = loopNumberOfNode(m.root);
    if (n !== undefined && !ours.has(n)) {
      const b = loopBacking(n);
      ours.set(n, b !== undefined && isImage(b));
    }
    return n;
  };
  return {
    shows: (m) => {
      const n = loopOf(m);
      return n !== undefined && ours.get(n) === true;
    },
    loops: () => [...ours].filter(([, v]) => v).map(([n]) => n),
  };
}

/**
 * The loop device a mount's file system is on, and what it is attached
 * to, remembered for as long as that mount is in the table. A mounted loop
 * device is held open by its file system, and the kernel neither detaches
 * nor re-attaches a loop device that is open (LOOP_CLR_FD then only marks
 * it to detach at its last close); LOOP_CHANGE_FD alone swaps the file of
 * a device in use, and only of a read-only one, so those are asked every
 * time, as is anything that could not be asked (an error may pass). The
 * key is the table's entry, one object for as long as its mount exists
 * where the table is kept by mount events; a table read as text makes new
 * entries at each read, so there this saves nothing.
 */
const loopsOfMounts = new WeakMap<MountEntry, { n: number; backing: LoopBacking }>();

function loopOfMount(e: MountEntry): { n: number; backing: LoopBacking } | undefined {
  const known = loopsOfMounts.get(e);
  if (known) return known;
  const n = loopNumberOfDevice(e.device);
  const backing = n === undefined ? undefined : loopBacking(n);
  if (n === undefined || backing === undefined) return undefined;
  const loop = { n, backing };
  if (!backing.readOnly) loopsOfMounts.set(e, loop);
  return loop;
}

/**
 * Is `m` a leftover: a bind mount of a loop device node whose device has
 * been detached since (a stage or publish of a block volume interrupted by
 * a crash)? Such a mount refers to nothing and may be removed. Only a
 * device the kernel says is detached counts (loopIsDetached): not a bind of
 * whatever else stands at /dev/loopN, nor one whose device cannot be asked.
 */
export function isStaleDeviceBind(table: Mounts, m: MountEntry): boolean {
  if (m.device !== locate(table, "/dev")?.device) return false;
  const n = loopNumberOfNode(m.root);
  return n !== undefined && loopIsDetached(n);
}
