/**
 * Snapshots of shared volumes, kept on the volume's share.
 *
 * A hostPath volume's snapshot lives beside it, in the controller's
 * snapshot store on that node. A shared volume is reached from every node,
 * and in a cluster its calls come from every node: the snapshot-controller
 * hands CreateSnapshot to one node's csi-snapshotter, while any node's
 * provisioner may restore the snapshot. So the snapshot goes where every
 * node can reach it, and its ID says where (snapshot-id.ts):
 *
 *   <share>/.csi-lab/snapshots/<key>.json   its record: it exists while this does
 *   <share>/.csi-lab/snapshots/<key>/       its content, a copy of the volume's directory
 *
 * Taking one: the volume's directory is copied (`cp -a`:
 * storage/copy-content.ts) into a fresh directory in the share's tmp, which
 * is then moved into place; the record is written last, and that is the
 * commit point. A crash before it leaves a copy without a record, which
 * nothing reads and the next try of that name replaces. Deleting one
 * removes the record first, then moves the content to the share's trash
 * and empties it. Both hold the share lock of the name (share-locks.ts), so
 * another controller's take or delete of it at once answers ABORTED, and a
 * take looks again under it for a snapshot of that name made meanwhile. A
 * take also holds its volume's lock, shared, while it copies, as a restore
 * holds the snapshot's: the other controller's delete of what is being
 * copied answers ABORTED, instead of emptying it under the copy; one done
 * before the copy held the lock makes the copy NOT_FOUND (the source's
 * marker or record is gone), unlike data removed behind the driver.
 *
 * cp never gets a path on the share: it reads the volume through a
 * read-only view and writes the copy through a writable one, and a restore
 * reads a snapshot's content through a read-only view, each bound from the
 * directory the share agent opened without following a symlink — so
 * nothing another node or the share's server swaps in leads a copy off the
 * share (share-views.ts).
 *
 * Every file operation on the share runs in the share agent with a
 * deadline, as for volumes (share-io.ts); only shares the administrator
 * allowed are touched. The source volume needs no record here — in a
 * cluster another node's provisioner made it — only the proof that the
 * driver made it (its marker, store.ts). This controller keeps a copy of
 * each record it wrote under <root>/shared-snapshots, to list them: it
 * lists the snapshots it took; a snapshot asked for by ID is read from its
 * share.
 */
import { createHash } from "node:crypto";
import { promises as fsp, readdirSync } from "node:fs";
import * as path from "node:path";
import { aborted, alreadyExists, CsiError, failedPrecondition, internal, notFound } from "../../csi/errors";
import type { Driver } from "../../server/driver";
import type { Logger } from "../../server/logger";
import { removeTemporaries, writeFileAtomic } from "../../storage/atomic-file";
import { copyContent, type Content } from "../../storage/copy-content";
import { NameIndex } from "../../storage/name-index";
import { vanished } from "../../storage/rename-no-replace";
import { readRecordFile } from "../../storage/record-file";
import { SnapshotIndex } from "../../storage/snapshot-index";
import { parseSnapshotRecord, SNAPSHOT_RECORD_VERSION, type SnapshotRecord } from "../../storage/snapshot-record";
import type { BackendSnapshots, NewSnapshotRequest } from "../backend";
import { META_DIR } from "./share-layout";
import { shareErrno } from "./share-io";
import { describeShare, volumeDirError } from "./share-mounts";
import { shareEnd, withShareView } from "./share-views";
import { formatSharedSnapshotId, looksSharedSnapshot, parseSharedSnapshotId } from "./snapshot-id";
import { locationOf, type SharedStore } from "./store";
import { parseSharedId, type ShareLocation } from "./volume-id";

export class ShareSnapshots implements BackendSnapshots {
  private readonly index = new SnapshotIndex();
  /** The names of the snapshots this controller took. */
  private readonly names = new NameIndex();

  private constructor(
    private readonly dir: string,
    private readonly store: SharedStore,
  ) {}

  /** Open this controller's list of the shared snapshots it took. */
  static async open(root: string, store: SharedStore, log: Logger): Promise<ShareSnapshots> {
    const snaps = new ShareSnapshots(path.join(root, "shared-snapshots"), store);
    await fsp.mkdir(snaps.dir, { recursive: true });
    const entries = readdirSync(snaps.dir);
    await removeTemporaries(snaps.dir, entries);
    for (const f of entries.filter((n) => /^[0-9a-f]{32}\.json$/.test(n))) {
      const file = path.join(snaps.dir, f);
      try {
        const raw = readRecordFile(file, `shared snapshot ${f}`);
        const id = (raw as { snapshotId?: unknown } | undefined)?.snapshotId;
        const rec = typeof id === "string" && localFile(snaps.dir, id) === file ? parseSnapshotRecord(raw, id) : "it names no snapshot of this file";
        if (typeof rec === "string") throw internal(rec);
        snaps.remember(rec);
      } catch (err) {
        log.warn("this controller's copy of a shared snapshot's record cannot be read; it is left as it is and not listed", { file, error: CsiError.from(err).message });
      }
    }
    return snaps;
  }

  ownsId(snapshotId: string): boolean {
    return looksSharedSnapshot(snapshotId);
  }

  idFor(name: string, sourceVolumeId: string): string | undefined {
    let volume;
    try {
      volume = parseSharedId(sourceVolumeId);
    } catch {
      return undefined; // a malformed volume ID: CreateSnapshot says so when it looks the volume up
    }
    if (!volume) return undefined;
    return formatSharedSnapshotId(volume.form === "inline" ? volume.location : volume.share, name);
  }

  named(name: string): string | undefined {
    return this.names.get(name);
  }

  async get(snapshotId: string): Promise<SnapshotRecord | undefined> {
    const id = parseSharedSnapshotId(snapshotId);
    if (!id || this.store.notAllowed(id.share)) return undefined;
    const text = await this.store.shares.with(id.share, (root) =>
      this.run<string | null>(id.share, "readRecord", { root, of: "snapshots", key: id.key }).catch((err: unknown) => {
        throw volumeDirError(err, `the record of snapshot ${snapshotId} on ${describeShare(id.share)}`);
      }),
    );
    if (text === null) {
      await this.forget(snapshotId); // deleted by another node
      return undefined;
    }
    const rec = parseRecordText(text, snapshotId, id.share);
    // The same name kept on this share under another spelling of its server is another ID: not this one.
    return rec.snapshotId === snapshotId ? rec : undefined;
  }

  async create(driver: Driver, req: NewSnapshotRequest): Promise<SnapshotRecord> {
    const id = parseSharedSnapshotId(req.snapshotId)!;
    const volumeId = parseSharedId(req.sourceVolumeId)!;
    const recorded = await this.store.records.getById(req.sourceVolumeId);
    // A controller that did not make the volume (another node's provisioner did) acts on the driver's proof that it did.
    const loc = recorded ? locationOf(recorded) : await this.store.provenLocation(req.sourceVolumeId, volumeId);
    if (!loc) {
      // Its directory gone, though its marker says it was never deleted: the volume exists, its data does not.
      await this.store.refuseLost(req.sourceVolumeId, volumeId, "copied");
      throw notFound(`source volume ${req.sourceVolumeId} does not exist`);
    }
    // Deleted, maybe by another controller while this one kept its record: NOT_FOUND; its directory gone behind the driver: FAILED_PRECONDITION.
    await this.store.checkCopyable(req.sourceVolumeId, loc);

    const record: SnapshotRecord = {
      version: SNAPSHOT_RECORD_VERSION,
      snapshotId: req.snapshotId,
      name: req.name,
      sourceVolumeId: req.sourceVolumeId,
      // A shared volume's size is a label, known where its record is; elsewhere it is unknown (0), and a restore may have any size.
      sizeBytes: recorded?.capacityBytes ?? 0,
      layout: "dir",
      parameters: req.parameters,
      createdAt: new Date().toISOString(),
    };
    const what = `snapshot ${req.snapshotId} on ${describeShare(id.share)}`;
    const gone = () => vanished(`snapshot ${req.snapshotId}`, `${META_DIR}/tmp of ${describeShare(id.share)}`); // its own copy: ABORTED, retry
    const made = await this.store.shares.with(id.share, async (root) => {
      const run = <T>(op: string, args: Record<string, unknown>) => this.run<T>(id.share, op, { root, ...args });
      try {
        // Another controller's create or delete of this name under way is ABORTED, not interleaved (share-locks.ts).
        return await this.store.io.locked(root, id.key, describeShare(id.share), () => busy(req.name), async (lock): Promise<SnapshotRecord> => {
          // Taken by another controller since this one looked: the same snapshot, or another volume's (ALREADY_EXISTS).
          const text = await run<string | null>("readRecord", { of: "snapshots", key: id.key });
          const there = text === null ? undefined : parseRecordText(text, req.snapshotId, id.share);
          if (there?.snapshotId === req.snapshotId) {
            if (there.sourceVolumeId !== req.sourceVolumeId) {
              throw alreadyExists(`snapshot ${JSON.stringify(req.name)} already exists, of volume ${there.sourceVolumeId}, not ${req.sourceVolumeId}`);
            }
            return there;
          }
          await run("clean", { tempsOf: id.key });
          const tmp = await run<string>("makeTemp", { key: id.key, mode: 0o700 });
          let placed: string | undefined; // the copy is in place: a failure after this leaves it, for a retry or a delete
          try {
            const viewsDir = driver.snapshots.viewsDir;
            // A tree is never frozen for its copy (storage/hold-still.ts): the views are all it needs.
            await this.store.withVolumeView(req.sourceVolumeId, loc, viewsDir, (from) =>
              withShareView(this.store.io, id.share, root, tmp, { viewsDir, writable: true, what, gone }, (to) =>
                copyContent({ path: from, layout: "dir", live: false, share: shareEnd(this.store.io, loc) }, to, { viewsDir, into: shareEnd(this.store.io, id.share) }),
              ),
            );
            placed = await run<string>("placeSnapshot", { tmp, key: id.key }).catch((err: unknown) => {
              // No answer (the deadline): the copy may be in place.
              if (shareErrno(err) === undefined) placed = "unknown";
              throw shareErrno(err) === "ENOENT" ? gone() : err;
            });
            await run("writeRecord", { of: "snapshots", key: id.key, data: JSON.stringify(record, null, 2) + "\n" }); // the commit point
            // A stale copy went to the trash: empty it (what a deadline leaves, the next delete on this share empties).
            if (placed === "replaced") await run("clean", { trash: true }).catch(() => undefined);
          } catch (err) {
            // At once, or once a copy's tool stuck on the share has exited (share-mounts.ts).
            const tidied = await this.store.shares.tidy(id.share, root, (at) => this.run(id.share, "clean", { root: at, tempsOf: id.key }));
            // Nothing of the snapshot is on the share: the lock's file goes too (not on a share that is not answering).
            if (tidied && placed === undefined) lock.gone();
            throw err;
          }
          return record;
        });
      } catch (err) {
        throw volumeDirError(err, what);
      }
    });
    await this.keep(made);
    return made;
  }

  async delete(snapshotId: string): Promise<boolean> {
    const id = parseSharedSnapshotId(snapshotId);
    if (!id) return false;
    const refused = this.store.notAllowed(id.share);
    // Answering OK would make the CO forget a snapshot whose data stays.
    if (refused) throw notFound(`snapshot ${snapshotId} is not one this driver may delete, and nothing was touched: ${refused}`);
    const existed = await this.store.shares.with(id.share, async (root) => {
      const run = <T>(op: string, args: Record<string, unknown>, timeoutMs?: number) => this.run<T>(id.share, op, { root, ...args }, timeoutMs);
      try {
        return await this.store.io.locked(root, id.key, describeShare(id.share), () => busy(snapshotId), async (lock) => {
          const text = await run<string | null>("readRecord", { of: "snapshots", key: id.key });
          if (text !== null && parseRecordText(text, snapshotId, id.share).snapshotId !== snapshotId) return false; // another's: its lock stays
          if (text !== null) await run("removeRecord", { of: "snapshots", key: id.key, sync: true }); // the commit point
          // A copy without a record, or one still being made, is what a crash before a commit left: this name's, so it goes too.
          await run("clean", { tempsOf: id.key });
          if ((await run<string>("trashSnapshot", { key: id.key })) === "trashed") {
            await run("clean", { trash: true }, Math.max(this.store.io.timeoutMs, 300_000)).catch(() => undefined);
          }
          lock.gone();
          return text !== null;
        });
      } catch (err) {
        throw volumeDirError(err, `snapshot ${snapshotId} on ${describeShare(id.share)}`);
      }
    });
    await this.forget(snapshotId);
    return existed;
  }

  page(after: string, limit: number, sourceVolumeId?: string): { ids: string[]; more: boolean } {
    return this.index.page(after, limit, sourceVolumeId);
  }

  async listed(snapshotId: string): Promise<SnapshotRecord | undefined> {
    const raw = readRecordFile(localFile(this.dir, snapshotId), `shared snapshot ${snapshotId}`);
    if (raw === undefined) return undefined;
    const rec = parseSnapshotRecord(raw, snapshotId);
    if (typeof rec === "string") throw internal(`this controller's copy of the record of snapshot ${snapshotId} is unusable: ${rec}`);
    return rec;
  }

  async read<T>(driver: Driver, record: SnapshotRecord, fn: (content: Content) => Promise<T>): Promise<T> {
    const id = parseSharedSnapshotId(record.snapshotId)!;
    const refused = this.store.notAllowed(id.share);
    if (refused) throw failedPrecondition(refused);
    const sub = `${META_DIR}/snapshots/${id.key}`;
    const what = `the content of snapshot ${record.snapshotId} on ${describeShare(id.share)}`;
    // Its record says it exists (NOT_FOUND would tell CreateVolume the source snapshot does not); its data does not.
    const gone = () => failedPrecondition(`${what} is missing (removed by something other than this driver); it cannot be restored: delete the snapshot and take another`);
    const opts = { viewsDir: driver.snapshots.viewsDir, what, gone };
    // A read-only view of the very directory the agent reached (share-views.ts): the copy reads nothing else. The
    // snapshot's share lock is held, shared, meanwhile: another controller's delete of it answers ABORTED (share-locks.ts).
    const view = async (root: string) => {
      // Deleted by another controller between the caller's look and this lock: its record is gone, and so is the snapshot.
      const text = await this.run<string | null>(id.share, "readRecord", { root, of: "snapshots", key: id.key });
      if (text === null || parseRecordText(text, record.snapshotId, id.share).snapshotId !== record.snapshotId) {
        throw notFound(`source snapshot ${record.snapshotId} does not exist: it has been deleted (its record is gone from ${describeShare(id.share)})`);
      }
      return withShareView(this.store.io, id.share, root, sub, opts, (at) => fn({ path: at, layout: "dir", live: false, share: shareEnd(this.store.io, id.share) }));
    };
    return this.store.shares.with(id.share, async (root) => {
      try {
        return await this.store.io.locked(root, id.key, describeShare(id.share), () => busy(record.name), () => view(root), true);
      } catch (err) {
        throw volumeDirError(err, what);
      }
    });
  }

  private run<T>(share: ShareLocation, op: string, args: Record<string, unknown>, timeoutMs?: number): Promise<T> {
    return this.store.io.run<T>(op, args, describeShare(share), timeoutMs);
  }

  private remember(rec: SnapshotRecord): void {
    this.index.add(rec.snapshotId, rec.sourceVolumeId);
    this.names.set(rec.name, rec.snapshotId);
  }

  /** Keep this controller's copy of a record it wrote (or found on a retry). */
  private async keep(rec: SnapshotRecord): Promise<void> {
    await writeFileAtomic(localFile(this.dir, rec.snapshotId), JSON.stringify(rec, null, 2) + "\n");
    this.remember(rec);
  }

  private async forget(snapshotId: string): Promise<void> {
    await fsp.rm(localFile(this.dir, snapshotId), { force: true });
    this.index.delete(snapshotId);
    this.names.forget(snapshotId);
  }

  async found(rec: SnapshotRecord): Promise<void> {
    if ((await this.listed(rec.snapshotId).catch(() => undefined)) === undefined) await this.keep(rec);
  }
}

/** What a call answers while another controller creates, restores or deletes the same snapshot on the share (share-locks.ts). */
function busy(snapshot: string): CsiError {
  return aborted(`snapshot ${JSON.stringify(snapshot)} is being created, restored or deleted by another controller of this driver at this moment; retry`);
}

/** This controller's copy of a record: named by a hash of the ID (a name's key is the same on every share). */
function localFile(dir: string, snapshotId: string): string {
  return path.join(dir, createHash("sha256").update(snapshotId).digest("hex").slice(0, 32) + ".json");
}

function parseRecordText(text: string, snapshotId: string, share: ShareLocation): SnapshotRecord {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw internal(`the record of snapshot ${snapshotId} on ${describeShare(share)} is not valid JSON`);
  }
  const snapshotIdThere = (raw as { snapshotId?: unknown } | null)?.snapshotId;
  const rec = parseSnapshotRecord(raw, typeof snapshotIdThere === "string" ? snapshotIdThere : snapshotId);
  if (typeof rec === "string") throw internal(`the record of snapshot ${snapshotId} on ${describeShare(share)} is unusable: ${rec}`);
  return rec;
}
