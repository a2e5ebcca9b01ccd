/**
 * Pending groups: the note of a group snapshot's members while they may
 * exist without the group's record.
 *
 * A group snapshot commits when its record is written, after every member;
 * it is deleted when that record goes, before any member. In between, its
 * members are on disk with no record to name them: invisible to the CO
 * (storage/snapshot-store.ts), and so never to be lost track of. The note
 * snapshots/groups/<gid>.pending.json lists them:
 *
 *   make    the note is written before the first member, and dropped once
 *           the group's record is written;
 *   delete  the group's record is renamed to its note (the commit point:
 *           the group and its members vanish together), then the members
 *           go, then the note.
 *
 * A failure that is no crash (a member's content that will not go) leaves
 * the note. The next call on the group settles it before anything else — a
 * retry of the delete, or a CreateVolumeGroupSnapshot of the name, which
 * would otherwise bring an old member back with the new group — and so does
 * the start-up sweep. A crash leaves the note too; the sweep removes every
 * member whose group has no record and then the notes, which by then name
 * nothing left. So hidden members never outlive a call on their group, nor
 * a restart.
 */
import { promises as fsp } from "node:fs";
import * as path from "node:path";
import { fsyncDir, writeFileAtomic } from "./atomic-file";
import { readRecordFile } from "./record-file";
import { parseGroupRecord, type GroupSnapshotRecord, type SnapshotRecord } from "./snapshot-record";
import { CsiError, internal } from "../csi/errors";

/** What the notes need of the snapshot store they belong to. */
export interface PendingGroupsStore {
  /** The directory of group records and notes (snapshots/groups). */
  readonly groupsDir: string;
  /** Whether `id` has the shape of a group snapshot ID: checked before any path is built from it. */
  isGroupId(id: string): boolean;
  /** Where group `id`'s record is. */
  groupFile(id: string): string;
  /** Whether group `id` has its record: committed, and not deleted. */
  groupExists(id: string): boolean;
  /** A snapshot's record on disk, visible or not. */
  read(snapshotId: string): Promise<SnapshotRecord | undefined>;
  /** Delete a snapshot and its content (content an earlier delete left goes too). */
  delete(snapshotId: string): Promise<boolean>;
}

export class PendingGroups {
  constructor(private readonly store: PendingGroupsStore) {}

  private noteFile(id: string): string {
    if (!this.store.isGroupId(id)) throw internal(`refusing to build a path from malformed group snapshot id ${JSON.stringify(id)}`);
    return path.join(this.store.groupsDir, `${id}.pending.json`);
  }

  /** Group `id`'s note, read from disk at once: undefined where there is none, INTERNAL where it is unusable. */
  read(id: string): GroupSnapshotRecord | undefined {
    if (!this.store.isGroupId(id)) return undefined;
    const raw = readRecordFile(this.noteFile(id), `group snapshot ${id}`, false);
    if (raw === undefined) return undefined;
    const rec = parseGroupRecord(raw, id);
    if (typeof rec === "string") throw internal(`metadata of group snapshot ${id} is unusable: ${rec}`);
    return rec;
  }

  /** Note the members a group is about to get, before the first is written. */
  async write(record: GroupSnapshotRecord): Promise<void> {
    await writeFileAtomic(this.noteFile(record.groupSnapshotId), JSON.stringify(record, null, 2) + "\n");
  }

  /** Turn group `id`'s record into its note: the commit point of its deletion. False where there was no record. */
  async fromRecord(id: string): Promise<boolean> {
    try {
      await fsp.rename(this.store.groupFile(id), this.noteFile(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw err;
    }
    await fsyncDir(this.store.groupsDir);
    return true;
  }

  /** Remove group `id`'s note, if there is one. */
  async clear(id: string): Promise<void> {
    try {
      await fsp.unlink(this.noteFile(id));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    await fsyncDir(this.store.groupsDir);
  }

  /**
   * Finish what a call on the group left undone, if anything: where its
   * note lists members and the group has no record (it was deleted, or never
   * committed), remove them — every one that can go — then the note. INTERNAL,
   * keeping the note, when one cannot: the next call on the group tries again.
   */
  async settle(id: string): Promise<void> {
    const note = this.read(id);
    if (!note) return;
    if (!this.store.groupExists(id)) {
      let failed: { snapshotId: string; err: unknown } | undefined;
      for (const snapshotId of note.snapshotIds) {
        const rec = await this.store.read(snapshotId).catch(() => undefined);
        if (rec && rec.groupSnapshotId !== id) continue; // not this group's: never touched
        try {
          await this.store.delete(snapshotId);
        } catch (err) {
          failed ??= { snapshotId, err };
        }
      }
      if (failed) {
        const at = (failed.err as NodeJS.ErrnoException).path;
        throw internal(
          `group snapshot ${id} is gone, but its member snapshot ${failed.snapshotId} could not be removed yet ` +
            `(${CsiError.from(failed.err).message}${at ? ` at ${at}` : ""}); a retry finishes the removal`,
        );
      }
    }
    await this.clear(id);
  }

  /**
   * At start, once the sweep has removed every member whose group has no
   * record: the members a note lists are gone by now with their group's
   * record, or kept with it, so every note goes.
   */
  async clearAllAtStart(): Promise<void> {
    for (const entry of await fsp.readdir(this.store.groupsDir)) {
      if (entry.endsWith(".pending.json")) await fsp.unlink(path.join(this.store.groupsDir, entry));
    }
  }
}
