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
 *     (node.ts: recogniser).
 *
 * An image or block volume's image file gets an identity the same way
 * (taken on the descriptor it was made through), and is looked at, and
 * deleted, the same way.
 *
 * Records written before identities were recorded have none, and nothing
 * on the directory itself tells the driver's from another (no mark was
 * made): their directory is still taken by its name (docs/security.md).
 * What no record names at all is never the driver's (store.ts): a create
 * of that ID refuses it (`occupied`), the start-up sweep leaves it.
 */
import { closeSync, constants as fsc, openSync } from "node:fs";
import { alreadyExists, errnoOf, failedPrecondition, notFound, type CsiError } from "../../csi/errors";
import { identityParts, isSameDirectory, type DataKind, type DirIdentityParts } from "../../storage/dir-identity";
import type { VolumeLayout, VolumeRecord } from "../../storage/volume-record";

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

/** A path to the directory open at `fd`: the link is resolved, then "." — so O_NOFOLLOW opens of it succeed. */
export function throughDescriptor(fd: number): string {
  return `/proc/self/fd/${fd}/.`;
}

export function replacedProblem(volumeId: string, dataDir: string): string {
  return `volume ${volumeId} cannot be used: ${dataDir} is not the directory this driver made for it (another was put in its place)`;
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
