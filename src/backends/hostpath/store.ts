/**
 * The hostPath backend: volumes as directories on the node's own disk.
 *
 * Layout under --root (the directory tree is the only state):
 *
 *   volumes/<id>.json   what CreateVolume was asked for; its existence is
 *                       what makes the volume exist (written atomically)
 *   data/<id>/          the volume's contents, bind-mounted into pods
 *   .tmp/               volume directories being created
 *   .trash/             volume directories being deleted
 *   .templates/         formatted file systems that image volumes are
 *                       cloned from (templates.ts); not volumes
 *   .loops/<id>/<n>     a block volume's loop devices, noted (loop-notes.ts)
 *
 * Create is a small two-phase commit that a kill -9 cannot tear: make the
 * data directory in .tmp, write the metadata (the commit point), then rename
 * the directory into data/ — never over anything that is there. Delete
 * moves the directory into .trash (the commit point: proven there to be
 * the one the record names, volume-dir.ts), then removes the metadata and
 * empties .trash. So no step leaves data in data/ without its metadata, and
 * whatever is there without it is not the driver's: a create of that ID is
 * refused (ALREADY_EXISTS), and the start-up sweep (sweep.ts) leaves it,
 * naming it, while it finishes whatever a crash interrupted in .tmp and
 * .trash: a .tmp directory whose metadata exists is renamed into place,
 * any other is removed; a delete cut off after its move is finished.
 *
 * Keeping metadata beside, not inside, the data directory costs one inode
 * per volume instead of two; on the disks we measured, creating an inode
 * is the single most expensive step of a volume's life (0.3–0.9 ms).
 *
 * The volume ID is derived from the CSI name ("hp-" + 32 hex digits of its
 * SHA-256), so CreateVolume finds an earlier volume of the same name with
 * one read, whatever the number of volumes: idempotency without an index.
 * IDs are checked against that exact shape before any path is built from
 * them, so no ID can point outside the root.
 *
 * data/<id> is a directory, or — for the image and block layouts — a
 * sparse image file (content.ts); the same two-phase commit, identity and
 * sweep apply to both. Sizes promised to volumes whose size is enforced
 * are tallied in a CapacityLedger (capacity-ledger.ts).
 */
import { createHash } from "node:crypto";
import { lstatSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { commitFile, fsyncDir, prepareFile, writeFileAtomic } from "../../storage/atomic-file";
import { readRecordFile } from "../../storage/record-file";
import { uniqueSuffix } from "../../storage/unique-name";
import type { Leftover } from "../../storage/remove-tree";
import { CapacityLedger, type UsageProbe } from "./capacity-ledger";
import { statfsUsage, type FsUsage } from "../../storage/fs-usage";
import { detectQuota, type QuotaBackend } from "./quota";
import { TemplateStore } from "./templates";
import { SortedIndex } from "../../storage/sorted-index";
import { contentCondition, growContent, growFilled, makeContent, moveProven, purge, usageProbe } from "./content";
import { notTheVolumes, occupied } from "./volume-dir";
import type { DataKind, DirIdentityParts } from "../../storage/dir-identity";
import { renameNoReplace, vanished } from "../../storage/rename-no-replace";
import { sweep } from "./sweep";
import { layoutOf, parseRecord, RECORD_VERSION, type Condition, type VolumeLayout, type VolumeRecord } from "../../storage/volume-record";
import { internal } from "../../csi/errors";
import type { Driver } from "../../server/driver";
import { SINGLE_NODE_MODES, type CapabilityProfile } from "../../csi/capabilities";
import { IMAGE_FS_TYPES, type FsType } from "../../mount/filesystem";
import { mountTable } from "../../mount/mountinfo";

const ID_PREFIX = "hp-";
const ID_PATTERN = /^hp-[0-9a-f]{32}$/;

export type NewVolume = Omit<VolumeRecord, "version" | "volumeId" | "backend" | "createdAt" | "quota" | "fsType"> & {
  fsType?: FsType;
  /** "dir" layout: enforce capacityBytes with the root's quotas (which must exist: see `quota`). */
  withQuota?: boolean;
};

/**
 * What a directory on one node can honestly offer: a mounted file system,
 * used from that node only. fs_type is accepted when empty or when it
 * names the file system the root really is on. (Image and block volumes
 * adapt it: see HostPathStore.profileFor.)
 */
function hostPathProfile(rootFsType: string | undefined): CapabilityProfile {
  return {
    accessTypes: new Set(["mount"]),
    accessModes: SINGLE_NODE_MODES,
    fsTypes: new Set(rootFsType ? [rootFsType] : []),
    mountGroup: true, // a directory's group and setgid bit carry a pod's fsGroup
  };
}

export class HostPathStore {
  readonly backend = "hostpath";
  /** Sizes promised to volumes whose size is enforced. */
  readonly ledger = new CapacityLedger();
  /** Crash leftovers the start-up sweep could not remove: they stay until a later start, and are logged. */
  readonly leftAtStart: Leftover[] = [];
  /** What the start-up sweep found in data/ that no record names: not the driver's to remove; left, and logged. */
  readonly foreignAtStart: Leftover[] = [];

  private constructor(
    readonly root: string,
    private readonly index: SortedIndex,
    readonly profile: CapabilityProfile,
    /** The root's file system type, as mountinfo names it. */
    readonly rootFsType: string | undefined,
    /** The root's quota mechanism, if it has one; `noQuotaReason` says why not. */
    readonly quota: QuotaBackend | undefined,
    readonly noQuotaReason: string,
    /** Where image volumes' file systems are cloned from. */
    readonly templates: TemplateStore,
  ) {}

  /** Open (and if needed lay out) a root directory; sweep crash leftovers. */
  static async open(root: string): Promise<HostPathStore> {
    const abs = path.resolve(root);
    for (const dir of ["volumes", "data", ".tmp", ".trash"]) await fsp.mkdir(path.join(abs, dir), { recursive: true });
    const recorded = (await fsp.readdir(path.join(abs, "volumes")))
      .filter((n) => n.endsWith(".json") && ID_PATTERN.test(n.slice(0, -5)))
      .map((n) => n.slice(0, -5));
    const rootFs = mountTable().containing(await fsp.realpath(abs));
    const { backend: quota, reason } = detectQuota(abs, rootFs);
    const ids = new Set(recorded);
    const { left, foreign } = await sweep(abs, ids, quota); // which may finish a delete: `ids` then loses it
    const templates = await TemplateStore.open(path.join(abs, ".templates"), { noCow: rootFs?.fsType === "btrfs" });
    const store = new HostPathStore(abs, SortedIndex.from(ids), hostPathProfile(rootFs?.fsType), rootFs?.fsType, quota, reason, templates);
    store.leftAtStart.push(...left);
    store.foreignAtStart.push(...foreign);
    store.ledger.rebuild([...ids], async (id) => {
      const rec = await store.get(id);
      const probe = rec && store.usageProbe(id, rec);
      return rec && probe ? { bytes: rec.capacityBytes, probe } : undefined;
    });
    return store;
  }

  /**
   * What a volume of `layout` can deliver. Image volumes take fs_type ext4
   * or xfs (the one they were made with, once made); block volumes only
   * the block access type.
   */
  profileFor(layout: VolumeLayout, fsType?: string): CapabilityProfile {
    if (layout === "dir") return this.profile;
    if (layout === "image") return { ...this.profile, fsTypes: new Set(fsType ? [fsType] : IMAGE_FS_TYPES) };
    return { ...this.profile, accessTypes: new Set(["block"]), fsTypes: new Set(), mountGroup: false };
  }

  profileOf(record: VolumeRecord): CapabilityProfile {
    return this.profileFor(layoutOf(record), record.fsType);
  }

  /** What some layout can deliver: the first check of a CreateVolume, before its layout is chosen. */
  get anyLayoutProfile(): CapabilityProfile {
    this.anyProfile ??= {
      ...this.profile,
      accessTypes: new Set(["mount", "block"]),
      fsTypes: new Set([...this.profile.fsTypes, ...IMAGE_FS_TYPES]),
    };
    return this.anyProfile;
  }
  private anyProfile: CapabilityProfile | undefined;

  static isVolumeId(id: string): boolean {
    return ID_PATTERN.test(id);
  }

  idForName(name: string): string {
    return HostPathStore.idForName(name);
  }

  /** The ID a volume named `name` gets: a hash, so a retry finds it with one read. */
  static idForName(name: string): string {
    return ID_PREFIX + createHash("sha256").update(name).digest("hex").slice(0, 32);
  }

  get count(): number {
    return this.index.size;
  }

  private metaFile(id: string): string {
    if (!ID_PATTERN.test(id)) throw internal(`refusing to build a path from malformed volume id ${JSON.stringify(id)}`);
    return path.join(this.root, "volumes", `${id}.json`);
  }

  /** The directory that holds the volume's contents — for image and block volumes, the image file. */
  dataDir(id: string): string {
    if (!ID_PATTERN.test(id)) throw internal(`refusing to build a path from malformed volume id ${JSON.stringify(id)}`);
    return path.join(this.root, "data", id);
  }

  /**
   * What the volume's data is on disk: a directory (a dir volume) or a file (an image or a
   * block volume). What a volume whose record cannot be read goes by, to find its mounts.
   */
  dataKind(id: string): "dir" | "file" | undefined {
    const st = lstatSync(this.dataDir(id), { throwIfNoEntry: false });
    return st?.isDirectory() ? "dir" : st?.isFile() ? "file" : undefined;
  }

  /** The record of a volume, or undefined if there is no such volume. */
  async get(id: string): Promise<VolumeRecord | undefined> {
    if (!ID_PATTERN.test(id)) return undefined;
    // A name CreateVolume has not seen is not in the index: ask without an exception.
    const raw = readRecordFile(this.metaFile(id), `volume ${id}`, this.index.has(id));
    if (raw === undefined) {
      this.index.delete(id); // someone removed it behind our back
      return undefined;
    }
    const rec = parseRecord(raw, id);
    if (typeof rec === "string") throw internal(`metadata of volume ${id} is unusable: ${rec}`);
    this.index.add(id);
    return rec;
  }

  /**
   * Create the volume for `spec.name`, or return the one that exists.
   * `created` tells which; the caller decides whether an existing one is
   * compatible with the request. `fill`, if given, puts content (from a
   * snapshot or another volume) into the new volume's directory before the
   * commit point, so a crash while copying leaves no half-filled volume.
   */
  async create(spec: NewVolume, fill?: (staging: string) => Promise<void>): Promise<{ record: VolumeRecord; created: boolean }> {
    const id = this.idForName(spec.name);
    const existing = await this.get(id);
    if (existing) return { record: existing, created: false };
    // Something at data/<id> without a record is not this driver's to remove or to adopt: no delete of
    // this driver leaves content there without its record (it commits by moving the content away
    // first), so it is someone else's, or what an older version's cut-off delete left. Refused before
    // anything is made; the final rename below never replaces what comes there meanwhile either.
    if (lstatSync(this.dataDir(id), { throwIfNoEntry: false })) throw occupied(id, this.dataDir(id));

    const { withQuota = false, ...fields } = spec;
    let record: VolumeRecord = {
      version: RECORD_VERSION,
      volumeId: id,
      backend: this.backend,
      createdAt: new Date().toISOString(),
      ...fields,
    };
    const layout = layoutOf(record);
    const staging = path.join(this.root, ".tmp", `${id}.${uniqueSuffix()}`);
    let metaTmp: string | undefined; // a prepared metadata file
    let committing = false;
    let flush: (() => Promise<void>) | undefined; // contents still to be made durable
    try {
      if (fill && layout !== "dir") {
        // A restored image or block file is the source's file, copied
        // (reflinked where it can be); it is then grown to the new size —
        // the file system inside follows at the next stage.
        await fill(staging);
        record = { ...record, dataIdentity: await growFilled(staging, record.capacityBytes) };
      } else {
        const made = await makeContent(
          staging,
          { volumeId: id, layout, capacityBytes: record.capacityBytes, fsType: spec.fsType, withQuota },
          { quota: this.quota, btrfs: this.rootFsType === "btrfs", templates: this.templates },
        );
        // With which directory or image file it is, for every later call to tell it from another put at its name (volume-dir.ts).
        record = { ...record, ...made.keep };
        flush = made.flush;
        // A restored tree is copied into the made directory, so its files
        // are born inside the quota (a rename in from elsewhere would not be).
        if (fill) await fill(staging);
      }
      // The contents must be on disk before the commit point names them:
      // after a power cut the start-up sweep finds them in .tmp and
      // finishes the rename below, which therefore needs no fsync of its own.
      // The contents (an image's bytes), their entry in .tmp and the
      // metadata's temporary file are all flushed at once — the disk's
      // waits overlap, and ext4 folds them into one journal commit — and
      // the metadata's rename, the commit point, comes only after all three.
      const [dirSynced, meta, contentSynced] = await Promise.allSettled([
        fsyncDir(path.join(this.root, ".tmp")),
        prepareFile(this.metaFile(id), JSON.stringify(record, null, 2) + "\n"),
        flush ? flush() : Promise.resolve(),
      ]);
      if (meta.status === "fulfilled") metaTmp = meta.value;
      if (dirSynced.status === "rejected") throw dirSynced.reason;
      if (contentSynced.status === "rejected") throw contentSynced.reason;
      if (meta.status === "rejected") throw meta.reason;
      committing = true;
      await commitFile(meta.value, this.metaFile(id)); // the commit point
    } catch (err) {
      if (metaTmp !== undefined) await fsp.rm(metaTmp, { force: true });
      if (committing) await fsp.rm(this.metaFile(id), { force: true }); // renamed but not known durable: undo
      await purge(staging, this.quota);
      throw err;
    }
    try {
      await renameNoReplace(staging, this.dataDir(id));
    } catch (err) {
      await fsp.rm(this.metaFile(id), { force: true }); // roll back the commit
      await purge(staging, this.quota);
      if ((err as NodeJS.ErrnoException).code === "EEXIST") throw occupied(id, this.dataDir(id));
      // Not NOT_FOUND (to CreateVolume: "the content source does not exist"): the new volume's own directory went.
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw vanished(`volume ${id}`, staging);
      throw err;
    }
    this.index.add(id);
    const probe = this.usageProbe(id, record);
    if (probe) this.ledger.set(id, record.capacityBytes, probe);
    return { record, created: true };
  }

  /**
   * Give a volume `bytes` of room (never less than it has): raise its quota
   * or grow its image file, then record the new size. The room is made
   * first, so a crash in between leaves a volume larger than its record
   * says, which the retried expansion records.
   */
  async expand(record: VolumeRecord, bytes: number): Promise<VolumeRecord> {
    const id = record.volumeId;
    await growContent(this.dataDir(id), record, bytes, this.quota);
    const grown = { ...record, capacityBytes: bytes };
    await this.update(grown);
    const probe = this.usageProbe(id, grown);
    if (probe) this.ledger.set(id, bytes, probe);
    return grown;
  }

  /** Replace a volume's metadata (e.g. after expansion). */
  async update(record: VolumeRecord): Promise<void> {
    await writeFileAtomic(this.metaFile(record.volumeId), JSON.stringify(record, null, 2) + "\n");
  }

  /**
   * Delete a volume whose record exists (or existed: false when it is
   * gone by now) and its data: a directory, or an image file (`kind`).
   * The commit point is the move of its data into .trash (content.ts:
   * moveProven), proven there to be what the record names (`proof`) where
   * it names one; the record goes after it, because without it the sweep
   * could not tell the volume's data from another swapped in at the last
   * moment (sweep.ts finishes a delete cut off in between). NOT_FOUND, with
   * nothing deleted, when another is caught. Records without an identity
   * (older ones, or one that cannot be read) are deleted in the same order,
   * by name, so that no delete ever leaves data in data/ without its
   * record: whatever is there without one is not the driver's to remove.
   */
  async delete(id: string, kind: DataKind, proof?: DirIdentityParts): Promise<boolean> {
    if (!ID_PATTERN.test(id)) return false;
    const dir = this.dataDir(id);
    const moved = await moveProven(this.root, dir, proof, kind, this.quota);
    if (moved.kind === "replaced") throw notTheVolumes(id, dir, moved.back, kind);
    let existed = true;
    try {
      await fsp.unlink(this.metaFile(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      existed = false;
    }
    await this.forget(id);
    if (moved.kind === "moved") await purge(moved.path, this.quota, moved.quota, moved.proven ? kind : undefined);
    return existed;
  }

  /** The volume's record is gone: so is it from the index and the ledger, durably. */
  private async forget(id: string): Promise<void> {
    this.index.delete(id);
    this.ledger.remove(id);
    await fsyncDir(path.join(this.root, "volumes"));
  }

  /** A page of volume IDs after `after`, in ID order. */
  page(after: string, limit: number): { ids: string[]; more: boolean } {
    return this.index.page(after, limit);
  }

  /**
   * Is the volume's data directory (or image file) still there and what
   * its layout says? A volume whose data vanished, or was replaced by a
   * symlink, is reported abnormal rather than used. Without `record` the
   * record is read.
   */
  async condition(id: string, record?: VolumeRecord): Promise<Condition> {
    return contentCondition(this.dataDir(id), record ?? (await this.get(id)), this.quota);
  }

  /**
   * How the capacity ledger measures what a volume uses: its own blocks
   * only, where this root can share them (XFS, btrfs; content.ts).
   */
  private usageProbe(id: string, record: VolumeRecord): UsageProbe | undefined {
    return usageProbe(this.dataDir(id), record, this.quota, this.rootFsType === "xfs" || this.rootFsType === "btrfs");
  }

  /** Space and inodes of the file system holding the root. */
  async usage(): Promise<FsUsage> {
    return statfsUsage(this.root);
  }
}

/**
 * This driver's hostPath store: the hostPath backend's own state, for the
 * modules of this folder (handlers reach volumes through the Backend).
 */
export function hostPathStore(driver: Pick<Driver, "backends">): HostPathStore {
  for (const b of driver.backends.all) {
    const store = (b as { store?: unknown }).store;
    if (store instanceof HostPathStore) return store;
  }
  throw internal("the hostpath backend is not open");
}
