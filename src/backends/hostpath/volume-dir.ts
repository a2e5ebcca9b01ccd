/**
 * A hostPath volume's own directory (or image file), told apart from any other.
 *
 * A dir volume is the directory at <root>/data/<id>. That is a name, and a
 * name proves nothing: whoever may rename inside the root, or bind a
 * directory over that name, can put another directory there, and the
 * driver would empty it at DeleteVolume, bind it into a pod at
 * NodeStageVolume, chmod it for a `mode`. So CreateVolume records which
 * directory it made — its identity (storage/dir-identity.ts: the inode
 * number with the birth time or generation, which a rename keeps and no
 * later directory has) — and the driver uses data/<id> only while it is
 * that directory:
 *
 *   - a look (the volume's condition, DeleteVolume's check before its
 *     commit point) compares what is at the name: another directory makes
 *     the volume abnormal, and every call that needs it FAILED_PRECONDITION;
 *   - an act (a bind, a chmod, a copy) goes through a descriptor opened on
 *     the name without following a symlink and checked, never through the
 *     name again (`openVolumeDir`), so a swap after the check changes
 *     nothing the act reaches;
 *   - DeleteVolume moves the directory into .trash and checks what it
 *     moved there, where nothing but the driver renames (content.ts:
 *     moveProven); anything else is put back, and the answer is NOT_FOUND
 *     with nothing deleted, as for a shared volume whose directory is not
 *     the one its marker names (backends/nfs/store.ts);
 *   - its mounts are known by the identity of their root, not by the name
 *     (node.ts: recogniser; `mountsOfDirOfRecord` where the mount table is
 *     asked, as the controller's "still mounted here" asks it).
 *
 * An image or block volume's image file gets an identity the same way
 * (taken on the descriptor it was made through), and is looked at, and
 * deleted, the same way. A loop device is attached to a descriptor proven
 * to be that file (`withVolumeImage`), and a loop device is the volume's
 * when it is attached to the recorded inode on data/'s device, wherever
 * that file is now (`imageOfRecord`).
 *
 * Records written before identities were recorded have none, and nothing
 * on the directory itself tells the driver's from another (no mark was
 * made): their directory is still taken by its name (docs/security.md).
 * What no record names at all is never the driver's (store.ts): a create
 * of that ID refuses it (`occupied`), the start-up sweep leaves it.
 */
import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, readlinkSync, realpathSync } from "node:fs";
import * as path from "node:path";
import { alreadyExists, errnoOf, failedPrecondition, notFound, type CsiError } from "../../csi/errors";
import { fileIdentity, loopFileMode, type FileIdentity } from "../../mount/loop";
import { mountTable } from "../../mount/mountinfo";
import { mountsOfDir, mountsOfVolume, type VolumeMounts } from "../../mount/volume-mounts";
import { identityAt, identityParts, isSameData, isSameDirectory, type DataKind, type DirIdentityParts } from "../../storage/dir-identity";
import type { VolumeLayout, VolumeRecord } from "../../storage/volume-record";

/** O_PATH (Linux): a descriptor that names a file without opening it for I/O (Node has no constant for it). */
const O_PATH = 0o10000000;
const OPEN_DIR = fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK;

/** The identity of the directory (or image file) the driver just made at `p` (its own, in .tmp), for the record. */
export function identityOfMade(p: string, kind: DataKind = "dir"): DirIdentityParts {
  const fd = openSync(p, kind === "dir" ? OPEN_DIR : fsc.O_RDONLY | fsc.O_NOFOLLOW);
  try {
    return identityParts(fd, p);
  } finally {
    closeSync(fd);
  }
}

/** What a volume of `layout` keeps at data/<id>: a directory, or an image file (image and block volumes). */
export function dataKindOf(layout: VolumeLayout): DataKind {
  return layout === "dir" ? "dir" : "file";
}

/**
 * Open the volume's directory at `dataDir` (no symlink followed) and prove
 * it is the one its record names; the descriptor is the caller's to close.
 * FAILED_PRECONDITION when it is missing, not a directory, or another one.
 */
export function openVolumeDir(dataDir: string, record: VolumeRecord): number {
  let fd: number;
  try {
    fd = openSync(dataDir, OPEN_DIR);
  } catch (err) {
    if (["ENOENT", "ELOOP", "ENOTDIR"].includes(errnoOf(err) ?? "")) {
      throw failedPrecondition(`volume ${record.volumeId} cannot be used: its directory is missing or is not a directory`);
    }
    throw err;
  }
  try {
    if (record.dataIdentity && !isSameDirectory(fd, record.dataIdentity, dataDir)) throw failedPrecondition(replacedProblem(record.volumeId, dataDir));
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  return fd;
}

/**
 * Run `fn` on the volume's directory, proven (openVolumeDir), reached
 * through its descriptor: `at` names that very directory whatever is at
 * `dataDir` meanwhile (a bind mount's source, a path to chmod or copy).
 */
export async function withVolumeDir<T>(dataDir: string, record: VolumeRecord, fn: (at: string, fd: number) => T | Promise<T>): Promise<T> {
  const fd = openVolumeDir(dataDir, record);
  try {
    return await fn(throughDescriptor(fd), fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Open the volume's image file at `dataPath` for a loop device (no symlink
 * followed; a FIFO or device node put there is never opened) and prove it is the one its
 * record names (statx on the descriptor); run `fn` on the descriptor, then
 * close it. FAILED_PRECONDITION, with nothing done, when it is missing, not
 * a regular file, or another one.
 */
export async function withVolumeImage<T>(
  dataPath: string,
  record: VolumeRecord,
  readOnly: boolean,
  fn: (fd: number) => T | Promise<T>,
): Promise<T> {
  const notRegular = () => failedPrecondition(`volume ${record.volumeId} cannot be used: its image file is missing or is not a regular file`);
  // Looked at before it is opened: a device node or a FIFO put at the name is never opened (an open can act:
  // a FIFO's waiting reader goes on, a tape rewinds). O_PATH names the file without opening it for I/O; the
  // same file is then opened through that descriptor's /proc link, never by the name again.
  let at: number;
  try {
    at = openSync(dataPath, O_PATH | fsc.O_NOFOLLOW);
  } catch (err) {
    if (["ENOENT", "ELOOP"].includes(errnoOf(err) ?? "")) throw notRegular();
    throw err;
  }
  let fd: number;
  try {
    if (!fstatSync(at).isFile()) throw notRegular();
    fd = openSync(`/proc/self/fd/${at}`, loopFileMode(readOnly) | fsc.O_NOCTTY);
  } finally {
    closeSync(at);
  }
  try {
    const proven = record.dataIdentity ? isSameData(fd, record.dataIdentity, "file", dataPath) : fstatSync(fd).isFile();
    if (!proven) throw failedPrecondition(replacedProblem(record.volumeId, dataPath, "file"));
    return await fn(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Which file the volume's loop devices are attached to (loop.ts:
 * FileIdentity, compared with LOOP_GET_STATUS64's lo_device and lo_inode):
 * the image its record names — the recorded inode number on the device of
 * data/ — wherever that file is now, not whatever is at data/<id>. An old
 * record without an identity: the file at the name, as before.
 *
 * The kernel tells a loop device's file by those two numbers only, no
 * birth time or generation. They name the recorded file for as long as it
 * exists: no two files of one file system have the same inode number at
 * once, and a loop device holds its file, so the number is not given to
 * another while the volume's image is attached. They could name another
 * file only once the volume's image has been deleted (behind the driver,
 * which deletes it only with its record) and its number given to a new
 * file. Where that shows — data/<id> holds the recorded number, on that
 * device, with another birth time or generation — nothing is the volume's.
 */
export function imageOfRecord(dataPath: string, parts: DirIdentityParts | undefined): FileIdentity | undefined {
  if (!parts) return fileIdentity(dataPath);
  const dev = deviceOfData(path.dirname(dataPath));
  if (dev === undefined) return undefined;
  if (identityAt(dataPath, parts, "file") !== "same") {
    const st = lstatSync(dataPath, { bigint: true, throwIfNoEntry: false });
    if (st && st.dev === dev && String(st.ino) === parts.ino) return undefined; // the recorded number, reused: the image is gone
  }
  return { dev, ino: BigInt(parts.ino) };
}

/**
 * Where a dir volume's directory is mounted on this node (a bind shows, in
 * mountinfo, the device and the path inside it of the directory it shows:
 * its "root"), known by the directory its record names wherever it is now,
 * as the node's recogniser knows them (node.ts): never the binds of another
 * directory put at data/<id>, and still the volume's own while its
 * directory is elsewhere. An old record without an identity: by name.
 *
 * Usually data/<id> is the volume's directory: it is opened (no symlink
 * followed) and proven, and its binds are the mounts of the path the
 * kernel gives that descriptor — the cost of a look by name. Otherwise
 * (another directory or nothing at the name) each directory that a mount of
 * data/'s file system shows is looked at where it is now, through the
 * mount that shows data/, and is the volume's when it has the recorded
 * identity; one look per directory shown, and only then. A directory moved
 * out of what that mount shows, or removed under its mounts, is not found so.
 */
export function mountsOfDirOfRecord(dataDir: string, parts: DirIdentityParts | undefined): VolumeMounts {
  if (!parts) return mountsOfVolume(dataDir, false);
  const here = provenPath(dataDir, parts);
  if (here !== undefined) return { ...mountsOfDir(here), loops: [] };
  const table = mountTable();
  const none = { table, mounts: [], loops: [] };
  let data: string;
  try {
    data = realpathSync.native(path.dirname(dataDir));
  } catch {
    return none;
  }
  const holder = table.containing(data);
  if (!holder) return none;
  const judged = new Map<string, string | undefined>(); // a mount's root → the path of the recorded directory, if it is that one
  const recordedAt = (root: string): string | undefined => {
    if (judged.has(root)) return judged.get(root);
    const at = throughMount(holder, root);
    const own = at !== undefined && identityAt(at, parts, "dir") === "same" ? at : undefined;
    judged.set(root, own);
    return own;
  };
  const mounts = table.onDevice(holder.device).filter((m) => {
    const at = recordedAt(m.root);
    return at !== undefined && m.mountPoint !== at;
  });
  return { table, mounts, loops: [] };
}

/** The path (the kernel's, from its descriptor) of the volume's directory at `dataDir`, if that is the one `parts` name; else undefined. */
function provenPath(dataDir: string, parts: DirIdentityParts): string | undefined {
  let fd: number;
  try {
    fd = openSync(dataDir, OPEN_DIR);
  } catch (err) {
    if (["ENOENT", "ELOOP", "ENOTDIR"].includes(errnoOf(err) ?? "")) return undefined;
    throw err;
  }
  try {
    return isSameDirectory(fd, parts, dataDir) ? readlinkSync(`/proc/self/fd/${fd}`) : undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * Where the directory a mount shows (its root: a path inside its file
 * system) is seen through `holder`, a mount of that file system; undefined
 * when `holder` does not show it, or the directory was removed (the kernel
 * names it by its old path with "//deleted" after it).
 */
function throughMount(holder: { mountPoint: string; root: string }, root: string): string | undefined {
  if (root.endsWith("//deleted")) return undefined;
  const base = holder.root === "/" ? "" : holder.root;
  if (root !== base && !root.startsWith(base + "/")) return undefined;
  const rel = root.slice(base.length);
  return holder.mountPoint === "/" ? rel || "/" : holder.mountPoint + rel;
}

/** The device (st_dev) of data/, asked once per root: it holds every image the driver makes. */
const dataDevices = new Map<string, bigint>();
function deviceOfData(data: string): bigint | undefined {
  const known = dataDevices.get(data);
  if (known !== undefined) return known;
  const st = lstatSync(data, { bigint: true, throwIfNoEntry: false });
  if (!st?.isDirectory()) return undefined;
  dataDevices.set(data, st.dev);
  return st.dev;
}

/** A path to the directory open at `fd`: the link is resolved, then "." — so O_NOFOLLOW opens of it succeed. */
export function throughDescriptor(fd: number): string {
  return `/proc/self/fd/${fd}/.`;
}

export function replacedProblem(volumeId: string, dataDir: string, kind: DataKind = "dir"): string {
  const made = kind === "dir" ? "the directory" : "the image file";
  return `volume ${volumeId} cannot be used: ${dataDir} is not ${made} this driver made for it (another was put in its place)`;
}

/**
 * DeleteVolume's answer when another directory (or file, `kind`) is at the
 * volume's name — or was swapped in as the volume's was moved, and was put
 * back (`back`: where) — NOT_FOUND, as a shared volume's delete answers for
 * a directory its marker does not prove: the CO keeps the volume, and the
 * message says why (docs/security.md).
 */
export function notTheVolumes(volumeId: string, dataDir: string, back?: string, kind: DataKind = "dir"): CsiError {
  const [made, other] = kind === "dir" ? ["the directory", "another directory"] : ["the image file", "another file"];
  if (back === undefined) {
    return notFound(`volume ${volumeId}: ${dataDir} is not ${made} this driver made for it (another was put in its place); nothing was deleted`);
  }
  const where = back === dataDir ? "" : `, at ${back} (its place was taken again)`;
  return notFound(
    `volume ${volumeId}: ${dataDir} was replaced by ${other} while it was being deleted; that one is not the volume's and was put back${where}, and nothing was deleted`,
  );
}

/**
 * CreateVolume's answer when something is at data/<id> and no record names it: ALREADY_EXISTS,
 * as a shared volume's CreateVolume answers for a directory at its place that its marker does not
 * prove. Nothing this driver does leaves data there without its record (a delete moves it away
 * first), so it is not the driver's to remove nor to adopt: someone else's, or what an older
 * version's cut-off delete left. The spec's code for "a volume of this name exists, and is not
 * the one asked for"; it stays until a person removes it, and the name then works again.
 */
export function occupied(volumeId: string, dataDir: string): CsiError {
  return alreadyExists(
    `volume ${volumeId} cannot be made: ${dataDir} already holds something that no volume record names — not made by this driver, ` +
      "or left by an older version's unfinished delete; it was left as it is (remove it if nothing needs it, and retry)",
  );
}
