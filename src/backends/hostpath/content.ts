/**
 * What data/<id> is, for each layout, and how it is made, grown, measured
 * and removed.
 *
 *   dir     a directory; with a quota, limited to the volume's size
 *   image   a sparse file of exactly the volume's size holding an ext4 or
 *           XFS file system: the volume cannot outgrow it, and what it
 *           holds counts against the node's disk only as it is written.
 *           It is a clone of a template formatted once per file-system
 *           type and size (templates.ts), not formatted anew.
 *   block   a sparse file of exactly the volume's size, no file system
 *
 * Everything here is made inside the root's .tmp and only then committed
 * (store.ts), so a crash while formatting or setting a quota
 * leaves an entry in .tmp that the start-up sweep removes — `purge` below
 * also drops the quota such an entry carries.
 */
import { closeSync, constants as fsc, fstatSync, lstatSync, openSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { exclusiveBytes } from "../../storage/exclusive-bytes";
import { fsyncFd, ftruncateFd } from "../../storage/fd-calls";
import { makeSparseFile, syncFile } from "../../storage/sparse-file";
import { failedPrecondition } from "../../csi/errors";
import { mountedInside, removeTree } from "../../storage/remove-tree";
import type { FsType } from "../../mount/filesystem";
import type { TemplateStore } from "./templates";
import type { UsageProbe } from "./capacity-ledger";
import type { QuotaBackend, QuotaInfo } from "./quota";
import { type Condition, layoutOf, type VolumeLayout, type VolumeRecord } from "../../storage/volume-record";
import { identityParts, lookAtData, type DataKind, type DirIdentityParts } from "../../storage/dir-identity";
import { moveIntoTrash } from "../../storage/trash-move";
import { dataKindOf, identityOfMade, withVolumeImage } from "./volume-dir";

export interface ContentSpec {
  volumeId: string;
  layout: VolumeLayout;
  capacityBytes: number;
  fsType?: FsType;
  /** "dir" layout: enforce the size with the root's quotas. */
  withQuota: boolean;
}

export interface ContentOptions {
  quota: QuotaBackend | undefined;
  /** The root is on btrfs: image files are made no-copy-on-write. */
  btrfs: boolean;
  /** Where image volumes' file systems come from. */
  templates: TemplateStore;
}

/** What makeContent made. */
export interface MadeContent {
  /** What the record must keep: the quota, and which directory or image file it is (volume-dir.ts). */
  keep: Pick<VolumeRecord, "quota" | "dataIdentity">;
  /**
   * What is still to be flushed before the commit point may name the
   * contents — left to the caller, to run beside the record's own write.
   */
  flush?: () => Promise<void>;
}

/**
 * Make the contents at `p` (a fresh path in .tmp), and note which directory
 * or file they are (their identity, for the record): an image's is read on
 * the descriptor it was made through, without opening it again.
 */
export async function makeContent(p: string, spec: ContentSpec, opts: ContentOptions): Promise<MadeContent> {
  let dataIdentity: DirIdentityParts | undefined;
  const identify = (fd: number) => void (dataIdentity = identityParts(fd, p));
  switch (spec.layout) {
    case "dir":
      if (spec.withQuota) {
        if (!opts.quota) throw new Error("no quota mechanism on this root");
        const quota = await opts.quota.makeDirectory(p, spec.capacityBytes, spec.volumeId);
        return { keep: { quota, dataIdentity: identityOfMade(p, "dir") } };
      }
      await fsp.mkdir(p, { mode: 0o755 });
      // Pods run as any user id; like a fresh emptyDir the volume's root
      // is writable by all until a pod's fsGroup narrows it. mkdir's mode
      // is filtered by the umask, hence the explicit chmod.
      await fsp.chmod(p, 0o777);
      return { keep: { dataIdentity: identityOfMade(p, "dir") } };
    case "image":
      await opts.templates.makeImage(p, spec.fsType ?? "ext4", spec.capacityBytes, identify);
      return { keep: { dataIdentity: dataIdentity! }, flush: () => syncFile(p) };
    case "block":
      await makeSparseFile(p, spec.capacityBytes, opts.btrfs, identify);
      return { keep: { dataIdentity: dataIdentity! } };
  }
}

/**
 * Give the volume's contents at `p` room for `bytes` (never shrinks). A
 * directory's room is its quota, set by the quota's recorded id on the
 * root, never through the name. An image or block file is opened once and
 * proven to be the one the record names before it is extended through that
 * descriptor (volume-dir.ts: withVolumeImage): a file put at data/<id> is
 * someone else's, left at its size (FAILED_PRECONDITION).
 */
export async function growContent(p: string, record: VolumeRecord, bytes: number, quota: QuotaBackend | undefined): Promise<void> {
  const layout = layoutOf(record);
  if (layout === "dir") {
    if (record.quota) requireQuota(quota).setLimit(record.quota, bytes);
    return;
  }
  await withVolumeImage(p, record, false, (fd) => growFile(fd, bytes));
}

/**
 * Grow the image or block file the driver just filled at `p` (its own, in
 * .tmp: a restore or a clone) to `bytes`, and take its identity, for the
 * record, on the descriptor it was grown through: what the record names is
 * what was grown.
 */
export async function growFilled(p: string, bytes: number): Promise<DirIdentityParts> {
  const fd = openSync(p, fsc.O_RDWR | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY);
  try {
    if (!fstatSync(fd).isFile()) throw new Error(`${p} is not the regular file the copy made`);
    await growFile(fd, bytes);
    return identityParts(fd, p);
  } finally {
    closeSync(fd);
  }
}

/** Extend the file open at `fd` to `bytes`, durably, if it is smaller. */
async function growFile(fd: number, bytes: number): Promise<void> {
  if (fstatSync(fd).size >= bytes) return;
  await ftruncateFd(fd, bytes);
  await fsyncFd(fd);
}

function requireQuota(quota: QuotaBackend | undefined): QuotaBackend {
  if (!quota) throw new Error("this volume has a quota, but the root no longer offers quotas");
  return quota;
}

/**
 * How to measure the space a volume uses on the node's disk, for the
 * capacity ledger; undefined for volumes whose size is not enforced.
 *
 * What counts is what the volume owns alone. Where the root shares extents
 * between files (`sharesExtents`: XFS, btrfs), a snapshot or a clone made
 * by reflink shares the volume's blocks, and the volume may still rewrite
 * each of them into a new block: those are not used up, they are still
 * owed. An image's own bytes are read from its extent map
 * (storage/exclusive-bytes.ts), a btrfs quota's from its exclusive counter.
 * An XFS project quota counts shared blocks in full and has no such
 * counter, so there a dir volume's shared blocks still count as used
 * (docs/capacity.md).
 */
export function usageProbe(p: string, record: VolumeRecord, quota: QuotaBackend | undefined, sharesExtents: boolean): UsageProbe | undefined {
  const layout = layoutOf(record);
  if (layout !== "dir") return { measure: sharesExtents ? () => exclusiveBytes(p) : () => lstatSync(p).blocks * 512 };
  const info = record.quota;
  if (!info) return undefined;
  return {
    measure: () => {
      const u = requireQuota(quota).usage(info);
      return u.exclusiveBytes ?? u.usedBytes;
    },
  };
}

/**
 * Is data/<id> what its layout says it should be — and, where the record
 * names it, the very directory or image file the driver made? One look
 * (statx) where the record names it; an old record's, by lstat.
 */
export function contentCondition(p: string, record: VolumeRecord | undefined, quota: QuotaBackend | undefined): Condition {
  const layout = record ? layoutOf(record) : "dir";
  const what = layout === "dir" ? "data directory" : "image file";
  try {
    let size: number;
    if (record?.dataIdentity) {
      const seen = lookAtData(p, record.dataIdentity, dataKindOf(layout));
      if (seen.verdict === "absent") return { abnormal: true, message: `the volume's ${what} is missing` };
      if (seen.verdict === "other") {
        // What is there instead, for the message (a look by name, on this path alone).
        const there = lstatSync(p, { throwIfNoEntry: false });
        const by = there?.isSymbolicLink()
          ? "a symlink"
          : layout === "dir"
            ? there?.isDirectory() ? "another directory" : "something that is not a directory"
            : there?.isFile() ? "another file" : "something that is not a regular file";
        return { abnormal: true, message: `the volume's ${what} has been replaced by ${by}, which the driver does not use` };
      }
      size = seen.size!;
    } else {
      const st = lstatSync(p);
      if (st.isSymbolicLink()) return { abnormal: true, message: `the volume's ${what} has been replaced by a symlink` };
      if (layout === "dir" && !st.isDirectory()) return { abnormal: true, message: "the volume's data directory is not a directory" };
      if (layout !== "dir" && !st.isFile()) return { abnormal: true, message: "the volume's image file is not a regular file" };
      size = st.size;
    }
    if (layout !== "dir" && record && size < record.capacityBytes) return { abnormal: true, message: "the volume's image file is smaller than the volume" };
    if (record?.quota && !quota) {
      return { abnormal: true, usable: true, message: "the volume's size limit is no longer enforced: the root has no quotas any more" };
    }
    return { abnormal: false, message: layout === "dir" ? "volume directory is present" : "volume image is present" };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { abnormal: true, message: `the volume's ${what} is missing` };
    return { abnormal: true, message: `the volume's ${what} cannot be inspected: ${(err as Error).message}` };
  }
}

/** What moveProven did. */
export type ProvenMove =
  /** Moved into .trash, at `path`: the commit point of the delete; `proven`: checked there to be what the record names. */
  | { kind: "moved"; path: string; quota?: QuotaInfo; proven: boolean }
  /** Nothing is at the name: nothing was moved. */
  | { kind: "absent" }
  /** Another directory or file was at the name as it was moved; moved back, to `back`. */
  | { kind: "replaced"; back: string };

/**
 * Move a volume's directory or image file at `target` into .trash: the
 * commit point of its delete (store.ts). Where the record names it
 * (`proof`, volume-dir.ts), what was moved is checked there, in .trash,
 * where nothing but the driver renames: whoever may rename in data/ can
 * swap something else in between the caller's look at the name and the
 * move, and that is put back where it was (beside it if the name was taken
 * meanwhile), never emptied. A record without an identity (written before
 * there were any) takes what is at the name, as it always did. Not while
 * anything is mounted in it (FAILED_PRECONDITION): it stays.
 */
export async function moveProven(
  root: string,
  target: string,
  proof: DirIdentityParts | undefined,
  kind: DataKind,
  quota: QuotaBackend | undefined,
): Promise<ProvenMove> {
  // Left where it is, and named, rather than moved to .trash with what is mounted in it (storage/remove-tree.ts).
  const inside = mountedInside(target);
  if (inside) {
    throw failedPrecondition(`volume ${path.basename(target)} was not deleted: ${inside}, inside the volume, and deleting it would empty that; unmount it first`);
  }
  const m = await moveIntoTrash(target, path.join(root, ".trash"), proof, kind);
  return m.kind === "moved" ? { ...m, quota: identify(m.path, quota), proven: proof !== undefined } : m;
}

/**
 * Delete an entry of .tmp or .trash, with its quota (sweep and rollback).
 * `kind`: what it is known to be (a proven move saw it there, in .trash),
 * so that it need not be looked at again.
 */
export async function purge(p: string, quota: QuotaBackend | undefined, known?: QuotaInfo, kind?: DataKind): Promise<void> {
  const info = known ?? identify(p, quota);
  // Limit dropped before the files go: if we die in between, the entry is
  // still in .trash and the next sweep does both again.
  if (info) quota!.beforeRemove(info);
  await remove(p, kind);
  if (info) quota!.afterRemove(info);
}

/**
 * Remove what a volume held: with one system call where one does (see
 * removeAtOnce), else a tree, by open directory (storage/remove-tree.ts).
 * Not confined to one file system: a btrfs subvolume a pod made inside its
 * volume has a device of its own, and must go too.
 */
async function remove(p: string, kind?: DataKind): Promise<void> {
  if (!(await removeAtOnce(p, kind))) await removeTree(p);
}

/**
 * Remove `p` with one trip to the thread pool if it is what usually is
 * there: an empty directory (a volume never written to) or a file (an
 * image). True when it is gone (or never was); false when it is a tree,
 * or a symlink, for rm — which unlinks a symlink rather than follow it.
 * lstat does not follow one either; it is skipped when the caller knows
 * the kind (rmdir and unlink then check it: ENOTDIR, EISDIR).
 */
async function removeAtOnce(p: string, kind?: DataKind): Promise<boolean> {
  let type = kind;
  if (type === undefined) {
    try {
      const st = lstatSync(p);
      if (!st.isDirectory() && !st.isFile()) return false;
      type = st.isDirectory() ? "dir" : "file";
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return true;
      throw err;
    }
  }
  try {
    if (type === "dir") await fsp.rmdir(p);
    else await fsp.unlink(p);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return true;
    if (code === "ENOTEMPTY" || code === "EEXIST" || code === "ENOTDIR" || code === "EISDIR") return false;
    throw err;
  }
}

/** The quota of a volume directory — never the one of the directory holding it. */
function identify(p: string, quota: QuotaBackend | undefined): QuotaInfo | undefined {
  if (!quota) return undefined;
  const info = quota.identify(p);
  if (!info) return undefined;
  const parent = quota.identify(path.dirname(p));
  return parent && JSON.stringify(parent) === JSON.stringify(info) ? undefined : info;
}
