/**
 * The snapshot store: point-in-time copies of volumes, beside the volumes.
 *
 * Layout under --root, on the same file system as the volumes so a copy
 * can share their extents (reflinks) and a rename is atomic:
 *
 *   snapshots/meta/<id>.json     the snapshot's record; its existence is
 *                                what makes the snapshot exist
 *   snapshots/data/<id>          its content: a directory tree or one file
 *   snapshots/groups/<gid>.json  a group snapshot's record (its members)
 *   snapshots/groups/<gid>.pending.json
 *                                the members of a group being made or
 *                                deleted (storage/group-pending.ts)
 *   snapshots/.tmp/ .trash/      content being made / being deleted
 *   snapshots/.views/            read-only views of volumes being copied
 *   snapshots/.frozen/           markers of file systems frozen for a copy
 *                                (storage/hold-still.ts); the start-up sweep
 *                                thaws what a crash left frozen
 *
 * The same two-phase discipline as volumes: the content is copied into
 * .tmp, then the record is written (the commit point, naming the content's
 * identity: storage/snapshot-content.ts), then the content is renamed into
 * data/ — never over anything that is there. Delete goes the other way:
 * the content is moved into .trash (the commit point, checked there to be
 * what the record names), then the record goes. So nothing the driver does
 * leaves content in data/ without its record: what is there without one is
 * not the driver's, and is left alone (the start-up sweep names it in a
 * warning, a CreateSnapshot of that ID answers ALREADY_EXISTS). The sweep
 * finishes or undoes whatever a crash interrupted (storage/snapshot-sweep.ts).
 *
 * A group snapshot commits in one step too: its members are written first,
 * each naming the group, and the group's record is written last. A member
 * whose group has no record is invisible (not listed, not found) and is
 * removed by the sweep — so a crash mid-group leaves nothing behind.
 * Deleting a group turns its record into a note of its members (the commit
 * point), then removes them; making one writes that note before the first
 * member. So members without their group are always listed somewhere, and
 * what a failed call leaves is settled by the next call on the group or by
 * the sweep (storage/group-pending.ts).
 *
 * IDs: "snap-" + 32 hex digits of SHA-256(name), as for volumes, so
 * CreateSnapshot finds an earlier snapshot of the same name with one read;
 * members are named after their group and volume; groups are "group-" + hex.
 * IDs are checked against that shape before any path is built from them.
 */
import { createHash } from "node:crypto";
import { lstatSync, promises as fsp } from "node:fs";
import * as path from "node:path";
import { fsyncDir, writeFileAtomic } from "./atomic-file";
import { PendingGroups } from "./group-pending";
import { readRecordFile } from "./record-file";
import { SnapshotIndex } from "./snapshot-index";
import { uniqueSuffix } from "./unique-name";
import {
  parseGroupRecord,
  parseSnapshotRecord,
  SNAPSHOT_RECORD_VERSION,
  type GroupSnapshotRecord,
  type SnapshotRecord,
} from "./snapshot-record";
import { alreadyExists, internal } from "../csi/errors";
import { identityOfPath } from "./dir-identity";
import { removeTree, type Leftover } from "./remove-tree";
import { renameNoReplace, vanished } from "./rename-no-replace";
import { contentKind, moveProvenContent, notTheSnapshots } from "./snapshot-content";
import { sweepSnapshots } from "./snapshot-sweep";
import { sweepViews } from "../mount/read-only-view";
import { thawLeftovers } from "./hold-still";

const SNAPSHOT_ID = /^snap-[0-9a-f]{32}$/;
const GROUP_ID = /^group-[0-9a-f]{32}$/;

/** A snapshot to make; createdAt defaults to when create() starts, before the content is filled in. */
export type NewSnapshot = Omit<SnapshotRecord, "version" | "createdAt"> & { createdAt?: string };
export type NewGroup = Omit<GroupSnapshotRecord, "version">;

function hash32(...parts: string[]): string {
  return createHash("sha256").update(parts.join("\0")).digest("hex").slice(0, 32);
}

export class SnapshotStore {
  private readonly index = new SnapshotIndex();

  /** File systems a crash had left frozen, thawed when the store was opened (mount points, for the log). */
  thawedAtStart: string[] = [];
  /** Snapshots whose record could not be read when the store was opened: left out of every list, their content kept. */
  readonly unreadableAtStart: { snapshotId: string; problem: string }[] = [];
  /** Leftovers the sweep could not remove (a file made immutable, a mount inside): kept, and logged, not a reason not to start. */
  readonly leftAtStart: Leftover[] = [];
  /** Entries of data/ that no record names: not the driver's, left as they are, and logged at every start. */
  readonly foreignAtStart: Leftover[] = [];

  /** The notes of members that may exist without their group's record. */
  private readonly pending: PendingGroups;

  private constructor(readonly dir: string) {
    this.pending = new PendingGroups({
      groupsDir: this.sub("groups"),
      isGroupId: (id) => GROUP_ID.test(id),
      groupFile: (id) => this.groupFile(id),
      groupExists: (id) => this.groupExists(id),
      read: (id) => this.read(id),
      delete: (id) => this.delete(id),
    });
  }

  /** Open (and if needed lay out) the store under a volume root; sweep crash leftovers. */
  static async open(root: string): Promise<SnapshotStore> {
    const store = new SnapshotStore(path.join(path.resolve(root), "snapshots"));
    for (const sub of ["meta", "data", "groups", ".tmp", ".trash", ".views", ".frozen"]) await fsp.mkdir(store.sub(sub), { recursive: true });
    store.thawedAtStart = await thawLeftovers(store.markersDir); // first: a frozen file system hangs its pods
    await sweepViews(store.viewsDir);
    const { unreadable, left, foreign } = await sweepSnapshots({
      sub: (...parts) => store.sub(...parts),
      isSnapshotId: (id) => SNAPSHOT_ID.test(id),
      metaFile: (id) => store.metaFile(id),
      contentPath: (id) => store.contentPath(id),
      read: (id) => store.read(id),
      delete: (id) => store.delete(id),
      groupExists: (id) => store.groupExists(id),
      index: (id, sourceVolumeId) => store.index.add(id, sourceVolumeId),
      clearPendingGroups: () => store.pending.clearAllAtStart(),
    });
    store.unreadableAtStart.push(...unreadable);
    store.leftAtStart.push(...left);
    store.foreignAtStart.push(...foreign);
    return store;
  }

  static isSnapshotId(id: string): boolean {
    return SNAPSHOT_ID.test(id);
  }

  static isGroupId(id: string): boolean {
    return GROUP_ID.test(id);
  }

  idForName(name: string): string {
    return "snap-" + hash32(name);
  }

  /** The ID of group `groupId`'s snapshot of `volumeId` (no CSI name can produce it: names hash alone). */
  memberId(groupId: string, volumeId: string): string {
    return "snap-" + hash32("group member", groupId, volumeId);
  }

  groupIdForName(name: string): string {
    return "group-" + hash32(name);
  }

  get viewsDir(): string {
    return this.sub(".views");
  }

  /** Where the markers of frozen file systems are kept (storage/hold-still.ts). */
  get markersDir(): string {
    return this.sub(".frozen");
  }

  /**
   * A fresh path in .tmp to copy a snapshot's content into before its
   * record exists (a group copies all its members first, then commits
   * each); the start-up sweep removes it if no record ever names it.
   */
  scratchPath(id: string): string {
    if (!SNAPSHOT_ID.test(id)) throw internal(`refusing to build a path from malformed snapshot id ${JSON.stringify(id)}`);
    return this.sub(".tmp", `${id}.${uniqueSuffix()}`);
  }

  get count(): number {
    return this.index.size;
  }

  private sub(...parts: string[]): string {
    return path.join(this.dir, ...parts);
  }

  private metaFile(id: string): string {
    if (!SNAPSHOT_ID.test(id)) throw internal(`refusing to build a path from malformed snapshot id ${JSON.stringify(id)}`);
    return this.sub("meta", `${id}.json`);
  }

  private groupFile(id: string): string {
    if (!GROUP_ID.test(id)) throw internal(`refusing to build a path from malformed group snapshot id ${JSON.stringify(id)}`);
    return this.sub("groups", `${id}.json`);
  }

  /** Where a snapshot's content is: a directory tree or one file, as its layout says. */
  contentPath(id: string): string {
    if (!SNAPSHOT_ID.test(id)) throw internal(`refusing to build a path from malformed snapshot id ${JSON.stringify(id)}`);
    return this.sub("data", id);
  }

  /**
   * A snapshot as the CO may see it, or undefined. A member of a group that
   * was never committed (or is being deleted) is not visible.
   */
  async get(id: string): Promise<SnapshotRecord | undefined> {
    const rec = await this.read(id);
    if (rec?.groupSnapshotId !== undefined && !this.groupExists(rec.groupSnapshotId)) return undefined;
    return rec;
  }

  /** The record on disk, visible or not. */
  async read(id: string): Promise<SnapshotRecord | undefined> {
    if (!SNAPSHOT_ID.test(id)) return undefined;
    const raw = readRecordFile(this.metaFile(id), `snapshot ${id}`);
    if (raw === undefined) {
      this.index.delete(id); // removed behind our back
      return undefined;
    }
    const rec = parseSnapshotRecord(raw, id);
    if (typeof rec === "string") throw internal(`metadata of snapshot ${id} is unusable: ${rec}`);
    return rec;
  }

  /**
   * Create snapshot `spec.snapshotId` with content made by `fill` (which
   * must create the path it is given), or return the one that exists.
   */
  async create(spec: NewSnapshot, fill: (staging: string) => Promise<void>): Promise<{ record: SnapshotRecord; created: boolean }> {
    const id = spec.snapshotId;
    const existing = await this.read(id);
    if (existing) return { record: existing, created: false };

    // What no record names is not the driver's (see the top of this file): neither removed nor adopted.
    if (lstatSync(this.contentPath(id), { throwIfNoEntry: false })) throw this.occupied(id);
    const spelled: SnapshotRecord = { version: SNAPSHOT_RECORD_VERSION, ...spec, createdAt: spec.createdAt ?? new Date().toISOString() };
    const staging = this.sub(".tmp", `${id}.${uniqueSuffix()}`);
    let record: SnapshotRecord;
    try {
      await fill(staging);
      // Which directory or file the content is, taken in .tmp (a rename keeps it): what delete and restore prove.
      record = { ...spelled, contentIdentity: identityOfPath(staging, contentKind(spec.layout)) };
      await writeFileAtomic(this.metaFile(id), JSON.stringify(record, null, 2) + "\n"); // the commit point
    } catch (err) {
      await fsp.rm(staging, { recursive: true, force: true });
      throw err;
    }
    try {
      await renameNoReplace(staging, this.contentPath(id)); // never over what took the name meanwhile
      await fsyncDir(this.sub("data"));
    } catch (err) {
      await fsp.rm(this.metaFile(id), { force: true }); // roll back the commit
      await fsp.rm(staging, { recursive: true, force: true });
      if ((err as NodeJS.ErrnoException).code === "EEXIST") throw this.occupied(id);
      // Not NOT_FOUND (to CreateSnapshot: "the source volume does not exist"): the new snapshot's own content went.
      if ((err as NodeJS.ErrnoException).code === "ENOENT") throw vanished(`snapshot ${id}`, staging);
      throw err;
    }
    this.index.add(id, record.sourceVolumeId);
    return { record, created: true };
  }

  /**
   * Delete a snapshot and its content: the content is moved into .trash and
   * proven there (the commit point: storage/snapshot-content.ts), then the
   * record goes, then the content. Something else at the content's name is
   * not deleted: NOT_FOUND, and the snapshot stays. Returns false if there
   * was no record — then only what an earlier delete of it moved to .trash
   * goes; nothing at its name is touched.
   */
  async delete(id: string): Promise<boolean> {
    if (!SNAPSHOT_ID.test(id)) return false;
    if (!lstatSync(this.metaFile(id), { throwIfNoEntry: false })) {
      this.index.delete(id);
      await this.emptyTrashOf(id);
      return false;
    }
    // An unreadable record names no identity: its content goes by name, as every record's did before identities.
    const rec = await this.read(id).catch(() => undefined);
    const target = this.contentPath(id);
    const move = await moveProvenContent(target, this.sub(".trash"), rec);
    if (move.kind === "replaced") throw notTheSnapshots(rec!, target, move.back);
    try {
      await fsp.unlink(this.metaFile(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    this.index.delete(id);
    await fsyncDir(this.sub("meta"));
    await this.emptyTrashOf(id); // with what was just moved: a retry (no record by then) finishes what will not go now
    return true;
  }

  /**
   * Remove what a delete of `id` moved to .trash and could not remove
   * (content that would not go), once its record is gone: what the delete
   * proved, or an older version's committed delete. Nothing else: a
   * snapshot being made never has anything there.
   */
  async emptyTrashOf(id: string): Promise<void> {
    if (!SNAPSHOT_ID.test(id)) return;
    for (const entry of await fsp.readdir(this.sub(".trash"))) {
      if (entry.startsWith(`${id}.`)) await removeTree(this.sub(".trash", entry));
    }
  }

  /** A page of snapshot IDs after `after`, in ID order; only those of `sourceVolumeId` if given. */
  page(after: string, limit: number, sourceVolumeId?: string): { ids: string[]; more: boolean } {
    return this.index.page(after, limit, sourceVolumeId);
  }

  async getGroup(id: string): Promise<GroupSnapshotRecord | undefined> {
    return this.readGroup(id);
  }

  /**
   * The members a group's note lists, where the group's record is gone: a
   * delete left unfinished, whose retry removes them. Read at once, for the
   * locks a call takes before it runs. None while the group's record is
   * there (a call naming no members of a group that exists is refused
   * before it touches them), nor when there is no such group or what is
   * on disk cannot be read: the call itself then says what is wrong.
   */
  membersLeft(id: string): string[] {
    try {
      return this.readGroup(id) ? [] : (this.pending.read(id)?.snapshotIds ?? []);
    } catch {
      return [];
    }
  }

  /** A group's record, read from disk at once: undefined where there is none, INTERNAL where it is unusable. */
  private readGroup(id: string): GroupSnapshotRecord | undefined {
    if (!GROUP_ID.test(id)) return undefined;
    const raw = readRecordFile(this.groupFile(id), `group snapshot ${id}`);
    if (raw === undefined) return undefined;
    const rec = parseGroupRecord(raw, id);
    if (typeof rec === "string") throw internal(`metadata of group snapshot ${id} is unusable: ${rec}`);
    return rec;
  }

  /** Note the members a group is about to get, before the first is written (settleGroup removes them if it never commits). */
  async openGroup(spec: NewGroup): Promise<void> {
    await this.pending.write({ version: SNAPSHOT_RECORD_VERSION, ...spec });
  }

  /** Commit a group whose members are all written; they become visible together. */
  async commitGroup(spec: NewGroup): Promise<GroupSnapshotRecord> {
    const record: GroupSnapshotRecord = { version: SNAPSHOT_RECORD_VERSION, ...spec };
    await writeFileAtomic(this.groupFile(spec.groupSnapshotId), JSON.stringify(record, null, 2) + "\n");
    await this.pending.clear(spec.groupSnapshotId);
    return record;
  }

  /**
   * Delete a group: its record becomes its note (the commit point: the group
   * and its members vanish together), then settleGroup removes the members
   * and the note. False if there was no group.
   */
  async deleteGroup(id: string): Promise<boolean> {
    if (!GROUP_ID.test(id)) return false;
    const existed = await this.pending.fromRecord(id);
    await this.settleGroup(id);
    return existed;
  }

  /** Finish what a call on the group left undone, if anything (storage/group-pending.ts); INTERNAL while a member will not go. */
  settleGroup(id: string): Promise<void> {
    return this.pending.settle(id);
  }

  private groupExists(id: string): boolean {
    return GROUP_ID.test(id) && lstatSync(this.groupFile(id), { throwIfNoEntry: false })?.isFile() === true;
  }

  /**
   * CreateSnapshot's answer when something no record names is at the content's name: ALREADY_EXISTS,
   * as CreateVolume answers for the same in a hostPath root's data/ (backends/hostpath/volume-dir.ts).
   */
  private occupied(id: string): Error {
    return alreadyExists(
      `snapshot ${id} cannot be made: ${this.contentPath(id)} already holds something that no snapshot record names — not made by this driver, ` +
        "or left by an older version's unfinished delete; it was left as it is (remove it if nothing needs it, and retry)",
    );
  }
}
