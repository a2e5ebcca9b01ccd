/**
 * The shared (nfs) backend: volumes as subdirectories of a share that
 * every node can mount.
 *
 * Where the truth lives:
 *   - the volume's directory on the share: a volume exists while its
 *     directory does;
 *   - its ID (volume-id.ts): server, share, subDir and onDelete, all that
 *     DeleteVolume and the node need — no secrets, no controller state;
 *   - a record in the controller's root of what CreateVolume was asked
 *     (shared-records.ts). A controller that lacks the record (it runs
 *     elsewhere now) can still delete the volume from its ID.
 *   - the volume's marker on the share (volume-marker.ts): the driver's
 *     proof that it made this directory for this ID. DeleteVolume deletes
 *     nothing without it, and CreateVolume never adopts a directory with
 *     data in it that has none. The share must also be one the
 *     administrator allowed (allowed-shares.ts).
 *
 * On the share, creation is a two-phase commit like the hostPath store's:
 * the directory is made (mode, owner, content) under <share>/.csi-lab/tmp,
 * the marker naming its identity is written, and the directory is renamed to
 * its subDir (rename keeps the inode, its birth time and generation) — a crash leaves a temp that the next
 * create of that volume removes, never a half-made volume, and never a
 * volume without its marker; a create whose commit surely failed takes its
 * own marker back (only while it is still its own: share-agent.ts). Deletion (share-delete.ts) renames the directory into
 * <share>/.csi-lab/trash (the commit point), removes the marker, then
 * empties the trash. Both hold the share lock of the location (share-locks.ts): another controller
 * of the driver, with its own root, creating or deleting there at once answers ABORTED.
 * Every file operation on the share runs in a share agent with
 * a deadline (share-io.ts); remote exports are mounted only while a call
 * needs them (share-mounts.ts).
 */
import * as path from "node:path";
import { aborted, alreadyExists, CsiError, failedPrecondition, internal, invalidArgument, notFound } from "../../csi/errors";
import type { Driver } from "../../server/driver";
import type { Logger } from "../../server/logger";
import type { MountCommandConfig } from "../../mount/mount-command";
import type { ShareEnd } from "../../storage/copy-content";
import type { FsUsage } from "../../storage/fs-usage";
import { RECORD_VERSION, type Condition, type VolumeRecord } from "../../storage/volume-record";
import { shareNotAllowed } from "./allowed-shares";
import { META_DIR } from "./share-layout";
import { vanished } from "../../storage/rename-no-replace";
import { isUnhealthy, ShareIo, shareErrno } from "./share-io";
import { describeShare, ShareMounts, volumeDirError } from "./share-mounts";
import { shareEnd, withShareView } from "./share-views";
import { SharedRecords } from "./shared-records";
import { MARKER_VERSION, readMarker, sameDirectory, type Marker, type Probed } from "./volume-marker";
import { formatSharedId, locationKey, subDirProblem, type OnDelete, type SharedLocation, type SharedVolumeId, type ShareLocation } from "./volume-id";

/** Where a recorded shared volume is. */
export function locationOf(record: VolumeRecord): SharedLocation | undefined {
  const s = record.shared;
  return s && { server: s.server, share: s.share, subDir: s.subDir };
}

export interface SharedConfig {
  mount: MountCommandConfig;
  /** Deadline of one file operation on a share. */
  shareTimeoutMs: number;
  /** The shares volumes may live on (--allow-share). */
  allowedShares: readonly ShareLocation[];
}

/** Content for a new shared volume (a restore or a clone), copied into its directory before the commit. */
export interface SharedFill {
  /** Where the view the copy writes through is mounted (share-views.ts). */
  viewsDir: string;
  /** Copy into `dir`, a view of the new directory on the share `into`. */
  copy: (dir: string, into: ShareEnd) => Promise<void>;
}

export interface NewSharedVolume {
  name: string;
  location: SharedLocation;
  onDelete: OnDelete;
  mode: number;
  uid?: number;
  gid?: number;
  capacityBytes: number;
  record: Pick<VolumeRecord, "capabilities" | "parameters" | "mutableParameters" | "contentSource">;
}

export class SharedStore {
  readonly io: ShareIo;
  readonly shares: ShareMounts;
  private constructor(
    readonly root: string,
    /** This controller's records of its shared volumes. */
    readonly records: SharedRecords,
    private readonly cfg: SharedConfig,
  ) {
    this.io = new ShareIo(cfg.shareTimeoutMs);
    this.shares = new ShareMounts(path.join(root, ".shares"), cfg.mount, this.io);
  }

  static async open(root: string, cfg: SharedConfig, log: Logger): Promise<SharedStore> {
    const records = await SharedRecords.open(path.join(root, "shared"), log);
    await ShareMounts.sweep(path.join(root, ".shares"));
    return new SharedStore(root, records, cfg);
  }

  /** Why the driver may not use `s` (not an --allow-share share), or undefined. */
  notAllowed(s: ShareLocation): string | undefined {
    return shareNotAllowed(this.cfg.allowedShares, s);
  }

  /** The ID a volume at `loc` gets (INVALID_ARGUMENT when even the record form does not fit in 128 bytes). */
  idFor(loc: SharedLocation, onDelete: OnDelete): { id: string; form: "inline" | "record" } {
    const made = formatSharedId(loc, onDelete);
    if (!made) {
      throw invalidArgument(
        `server and share (${describeShare(loc)}) are too long for a CSI volume ID (128 bytes): use a shorter export path or server name`,
      );
    }
    return made;
  }

  /**
   * Create the volume's directory and record it. A directory already at
   * subDir is adopted only when the driver made it for this location (its
   * marker says so: a volume kept by onDelete: retain, or an earlier try
   * of this very call) or when it is empty; one holding data that the
   * driver did not make is ALREADY_EXISTS. `fill` puts content (a restore
   * or clone) into the new directory before it is committed, writing
   * through a view of it, never by its path on the share (share-views.ts).
   */
  async create(spec: NewSharedVolume, fill?: SharedFill): Promise<VolumeRecord> {
    const loc = spec.location;
    const refused = this.notAllowed(loc);
    if (refused) throw invalidArgument(`share: ${refused}`);
    const { id } = this.idFor(loc, spec.onDelete);
    const key = locationKey(loc);
    const what = `directory ${loc.subDir} on ${describeShare(loc)}`;
    const marker = (dir: string): string => JSON.stringify({ version: MARKER_VERSION, volumeId: id, subDir: loc.subDir, name: spec.name, dir } satisfies Marker) + "\n";
    await this.shares.with(loc, async (root) => {
      const run = <T>(op: string, args: Record<string, unknown>) => this.io.run<T>(op, { root, ...args }, describeShare(loc));
      try {
        // Another controller's create or delete of this directory under way is ABORTED, not interleaved (share-locks.ts).
        await this.io.locked(root, key, describeShare(loc), () => busy(what), async (lock) => {
          await run("clean", { tempsOf: key }); // what an interrupted create of this volume left
          const there = await run<Probed & { empty: boolean }>("probe", { sub: loc.subDir, entries: true }).catch((err: unknown) => {
            if (shareErrno(err) === "ENOENT") return undefined;
            throw err;
          });
          if (there && there.kind !== "dir") throw failedPrecondition(`${what} exists and is not a directory`);
          if (there) {
            const mine = await readMarker(this.io, root, key, loc);
            const made = mine !== undefined && mine.subDir === loc.subDir && (mine.dir === undefined || sameDirectory(mine, there));
            if (made && mine.version >= 4 && !mine.released && mine.name !== undefined && mine.name !== spec.name) {
              throw alreadyExists(
                `${what} is already volume ${JSON.stringify(mine.name)}, which is in use; give every claim its own subDir (a directory is taken over only once its volume is deleted with onDelete: retain)`,
              );
            }
            // The same claim made with other parameters (another controller's record of it is out of sight): one directory is one ID.
            if (made && mine.version >= 4 && !mine.released && mine.volumeId !== undefined && mine.volumeId !== id) {
              throw alreadyExists(`${what} is already volume ${JSON.stringify(spec.name)} as ${mine.volumeId}, made with other parameters than these`);
            }
            if (!made && !there.empty) {
              throw alreadyExists(
                `${what} already holds data that this driver did not put there; it is never taken over as a new volume (choose another subDir, or mount it with a static PersistentVolume)`,
              );
            }
            await run("writeRecord", { key, data: marker(there.identity) });
            return;
          }
          const tmp = await run<string>("makeTemp", { key, mode: spec.mode, uid: spec.uid, gid: spec.gid });
          let marked: string | undefined; // the marker this call wrote, while its directory is surely not in place
          let unsure = false; // the commit got no answer: the directory may be in place
          try {
            const gone = () => vanished(`volume ${id}`, `${META_DIR}/tmp of ${describeShare(loc)}`); // its own temp: ABORTED, retry
            if (fill) {
              const opts = { viewsDir: fill.viewsDir, writable: true, what: `the new ${what}`, gone };
              await withShareView(this.io, loc, root, tmp, opts, (view) => fill.copy(view, shareEnd(this.io, loc)));
            }
            const { kind, identity } = await run<Probed>("probe", { sub: tmp });
            if (kind !== "dir") throw failedPrecondition(`${what}: its copy in ${META_DIR}/tmp was replaced while it was made (now a ${kind}); nothing was committed`);
            const data = marker(identity);
            await run("writeRecord", { key, data }); // before the commit: a volume never exists without it
            marked = data;
            const committed = await run<string>("commit", { tmp, subDir: loc.subDir }).catch((err: unknown) => {
              // No answer (the deadline): the rename may have been made, and the marker is then the volume's proof.
              if (shareErrno(err) === undefined) [marked, unsure] = [undefined, true];
              throw shareErrno(err) === "ENOENT" ? gone() : err;
            });
            if (committed === "existed") {
              throw aborted(`${what} appeared while the volume was being made; retry`);
            }
          } catch (err) {
            // Left, it would claim this location for a directory never made; only if it is still ours (share-agent.ts).
            // A share that does not answer keeps it, as a crash would: it names a directory no other can be.
            const kept = marked !== undefined && (await run<string>("removeOwnRecord", { key, data: marked }).catch(() => "kept")) === "kept";
            // At once, or once a copy's tool stuck on the share has exited (share-mounts.ts).
            const tidied = await this.shares.tidy(loc, root, (at) => this.io.run("clean", { root: at, tempsOf: key }, describeShare(loc)));
            // Nothing of the volume is on the share: the lock's file goes too (not on a share that is not answering).
            if (tidied && !unsure && !kept) lock.gone();
            throw err;
          }
        });
      } catch (err) {
        throw volumeDirError(err, what);
      }
    });
    const record: VolumeRecord = {
      version: RECORD_VERSION,
      volumeId: id,
      name: spec.name,
      backend: "nfs",
      capacityBytes: spec.capacityBytes,
      ...spec.record,
      topology: {},
      createdAt: new Date().toISOString(),
      shared: { ...loc, onDelete: spec.onDelete },
    };
    await this.records.put(record);
    return record;
  }

  /**
   * Where the volume's directory is: from the ID, or for the record form
   * from a record. undefined: no record anywhere, so no volume — or the ID
   * names a share this driver may not use, which it never looks at.
   */
  async locate(id: SharedVolumeId): Promise<SharedLocation | undefined> {
    const share = id.form === "inline" ? id.location : id.share;
    if (this.notAllowed(share)) return undefined;
    if (id.form === "inline") return id.location;
    const mine = await this.records.get(id);
    if (mine?.shared) return { server: mine.shared.server, share: mine.shared.share, subDir: mine.shared.subDir };
    const marker = await this.shares.with(id.share, (root) => readMarker(this.io, root, id.key, id.share));
    if (!marker) return undefined;
    const problem = subDirProblem(marker.subDir);
    if (problem) throw internal(`the marker of volume ${id.key} on ${describeShare(id.share)}: ${problem}`);
    return { ...id.share, subDir: marker.subDir };
  }

  /**
   * The location of a volume this driver can prove it made (an allowed
   * share, its marker naming this very ID, the same directory) and that was
   * not deleted (a retained directory is released): what a controller
   * without the volume's record may act on. undefined otherwise.
   */
  async provenLocation(volumeId: string, id: SharedVolumeId): Promise<SharedLocation | undefined> {
    const loc = await this.locate(id);
    if (!loc) return undefined;
    return this.shares.with(loc, async (root) => {
      const there = await this.io.run<Probed>("probe", { root, sub: loc.subDir }, describeShare(loc)).catch(() => undefined);
      const mine = await readMarker(this.io, root, id.key, loc);
      // A volume deleted with onDelete: retain is gone for the CO, though its directory stays (released).
      return there !== undefined && mine?.volumeId === volumeId && !mine.released && sameDirectory(mine, there) ? loc : undefined;
    });
  }

  /**
   * The location of a volume whose directory is gone from the share though the volume was never
   * deleted: its marker names this very ID and was not released. The volume exists (FAILED_PRECONDITION
   * to what would change it, never NOT_FOUND); its data does not. undefined otherwise.
   */
  async lostLocation(volumeId: string, id: SharedVolumeId): Promise<SharedLocation | undefined> {
    const loc = await this.locate(id);
    if (!loc) return undefined;
    return this.shares.with(loc, async (root) => {
      const gone = await this.io.run("probe", { root, sub: loc.subDir }, describeShare(loc)).then(
        () => false,
        (err: unknown) => {
          if (shareErrno(err) === "ENOENT") return true;
          if (err instanceof CsiError) throw err; // the share did not answer: UNAVAILABLE, not NOT_FOUND
          return false;
        },
      );
      const mine = gone ? await readMarker(this.io, root, id.key, loc) : undefined;
      return mine?.volumeId === volumeId && !mine.released && mine.subDir === loc.subDir ? loc : undefined;
    });
  }

  /**
   * FAILED_PRECONDITION, saying why the volume cannot be `done`, when it is lost (lostLocation): what a
   * call that finds no directory it can prove answers before it says NOT_FOUND. Nothing otherwise.
   */
  async refuseLost(volumeId: string, id: SharedVolumeId, done: string): Promise<void> {
    const lost = await this.lostLocation(volumeId, id);
    if (lost) throw failedPrecondition(`volume ${volumeId} cannot be ${done}: its ${missingDir(lost)}`);
  }

  /**
   * Whether the volume at `loc` may be copied now (CreateSnapshot, a clone): NOT_FOUND when it was deleted, by this
   * driver on any controller (notDeleted); FAILED_PRECONDITION when its directory is missing or not a directory though
   * it was not (removed behind the driver: the volume exists, its data does not). A directory found missing is looked
   * at again holding the volume's share lock, shared: the other controller's delete of it under way is ABORTED, and
   * one done since the first look is NOT_FOUND, not a directory removed behind the driver.
   */
  async checkCopyable(volumeId: string, loc: SharedLocation): Promise<void> {
    this.shares.checkNotStuck(loc); // UNAVAILABLE, before the probe would make it a condition of the volume
    const what = `directory ${loc.subDir} on ${describeShare(loc)}`;
    // First without the lock, whose file a deleted volume's lock would make again on the share.
    await this.shares.with(loc, (root) => this.notDeleted(volumeId, loc, root));
    const condition = await this.condition(loc);
    if (!condition.abnormal) return;
    await this.shares.with(loc, async (root) => {
      try {
        await this.io.locked(root, locationKey(loc), describeShare(loc), () => busy(what), () => this.notDeleted(volumeId, loc, root), true);
      } catch (err) {
        throw volumeDirError(err, what);
      }
    });
    throw failedPrecondition(`volume ${volumeId} cannot be copied: ${condition.message}`);
  }

  /**
   * NOT_FOUND naming the source unless the volume's marker on the share still says it exists: there, for this location,
   * not released, and (from version 2 on) naming this very ID. A DeleteVolume done — on this controller or another, whose
   * record of it this one may still hold — removed it or released it; a claim made since may have taken it over.
   */
  private async notDeleted(volumeId: string, loc: SharedLocation, root: string): Promise<void> {
    const mine = await readMarker(this.io, root, locationKey(loc), loc).catch((err: unknown) => {
      throw volumeDirError(err, `the marker of volume ${volumeId} on ${describeShare(loc)}`);
    });
    if (mine && mine.subDir === loc.subDir && !mine.released && (mine.volumeId === undefined || mine.volumeId === volumeId)) return;
    throw notFound(`source volume ${volumeId} does not exist: it has been deleted (its marker is gone from ${describeShare(loc)})`);
  }

  /** Is the volume's directory there and a directory? A share that does not answer is abnormal too. */
  async condition(loc: SharedLocation): Promise<Condition> {
    try {
      const { kind } = await this.shares.with(loc, (root) => this.io.run<{ kind: string }>("probe", { root, sub: loc.subDir }, describeShare(loc)));
      if (kind === "symlink") return { abnormal: true, message: "the volume's directory has been replaced by a symlink" };
      if (kind !== "dir") return { abnormal: true, message: "the volume's directory is not a directory" };
      return { abnormal: false, message: `volume directory is present on ${describeShare(loc)}` };
    } catch (err) {
      if (shareErrno(err) === "ENOENT") return { abnormal: true, message: `the volume's ${missingDir(loc)}` };
      if (isUnhealthy(err) || err instanceof Error) return { abnormal: true, message: (err as Error).message };
      throw err;
    }
  }

  /** Space and inodes of the share (statfs), within the deadline. */
  async usage(share: ShareLocation): Promise<FsUsage> {
    return this.shares.with(share, (root) => this.io.run<FsUsage>("statfs", { path: root }, describeShare(share)));
  }

  /**
   * Run `fn` on a read-only view of the volume's directory (share-views.ts):
   * what a snapshot or a clone copies, with no path on the share that a
   * swapped-in symlink could redirect. The volume's share lock is held,
   * shared, meanwhile: another controller's delete of it answers ABORTED
   * rather than trashing what is being copied (share-locks.ts); one done
   * before the lock was taken makes this NOT_FOUND (notDeleted).
   */
  async withVolumeView<T>(volumeId: string, loc: SharedLocation, viewsDir: string, fn: (view: string) => Promise<T>): Promise<T> {
    const refused = this.notAllowed(loc);
    if (refused) throw failedPrecondition(refused);
    const what = `directory ${loc.subDir} on ${describeShare(loc)}`;
    // Gone since the caller looked: the volume's data, not the volume.
    const opts = { viewsDir, what, gone: () => failedPrecondition(`the volume's ${missingDir(loc)}`) };
    return this.shares.with(loc, async (root) => {
      try {
        return await this.io.locked(root, locationKey(loc), describeShare(loc), () => busy(what), async () => {
          // Deleted by the other controller between the caller's look and this lock: NOT_FOUND, not its data gone.
          await this.notDeleted(volumeId, loc, root);
          return withShareView(this.io, loc, root, loc.subDir, opts, fn);
        }, true);
      } catch (err) {
        throw volumeDirError(err, what);
      }
    });
  }

  /** Set the mode of the volume's root directory (the `mode` mutable parameter). */
  async setMode(loc: SharedLocation, mode: number): Promise<void> {
    const refused = this.notAllowed(loc);
    if (refused) throw failedPrecondition(refused);
    await this.shares.with(loc, async (root) => {
      try {
        await this.io.run("chmod", { root, sub: loc.subDir, mode }, describeShare(loc));
      } catch (err) {
        // Gone since the caller looked: the volume's data, not the volume.
        if (shareErrno(err) === "ENOENT") throw failedPrecondition(`the volume's ${missingDir(loc)}`);
        throw volumeDirError(err, `directory ${loc.subDir} on ${describeShare(loc)}`);
      }
    });
  }
}

/**
 * Why a volume whose directory was removed behind the driver cannot be changed: it still exists (its record
 * and marker say so), so this is FAILED_PRECONDITION, not NOT_FOUND; DeleteVolume of it answers OK.
 */
export function missingDir(loc: SharedLocation): string {
  return `directory ${loc.subDir} is missing from ${describeShare(loc)} (removed by something other than this driver); restore it there, or delete the volume`;
}

/** What a call answers while another controller creates, copies or deletes the same directory on the share (share-locks.ts). */
export function busy(what: string): CsiError {
  return aborted(`${what} is being created, copied or deleted by another controller of this driver at this moment; retry`);
}

/** This driver's shared store: the nfs backend's own state, for the modules of this folder. */
export function sharedStore(driver: Pick<Driver, "backends">): SharedStore {
  for (const b of driver.backends.all) {
    const store = (b as { store?: unknown }).store;
    if (store instanceof SharedStore) return store;
  }
  throw internal("the nfs backend is not open");
}
