/**
 * Attachments: which volume is attached to which node.
 *
 * ControllerPublishVolume is CSI's "attach": for a cloud disk it is the API
 * call that plugs the disk into a VM, and the CO will not stage the volume
 * on a node before it succeeded. What is attached where must survive a
 * restart — the CO trusts that a detach it was told about happened, and
 * that an attach it was told about is still in force — so each attached
 * volume has one small file, written atomically like the volume metadata:
 *
 *   attachments/<volume-id>.json   { version, volumeId, attachments: [ … ] }
 *
 * A volume with no attachment has no file. Every call reads or writes one
 * file, whatever the number of volumes. The per-node count that the attach
 * limit needs is kept in memory, rebuilt from the directory at start-up
 * (one read per attached volume), and updated in the same step as the file;
 * the files stay the truth.
 */
import { createHash } from "node:crypto";
import { closeSync, openSync, promises as fsp, readFileSync, constants as fsc } from "node:fs";
import * as path from "node:path";
import type { Capability } from "../csi/capabilities";
import { internal, resourceExhausted } from "../csi/errors";
import { fsyncDir, isTemporaryName, readJsonNoFollow, writeFileAtomic } from "./atomic-file";

export const ATTACHMENT_VERSION = 1;
// An ID that is a short prefix and 32 hex digits (hp-…, mem-…) names its file as it is.
const PLAIN_ID = /^(?!nfs-)[a-z]{2,8}-[0-9a-f]{32}$/;
// Any other ID (a shared volume's is long and holds "," and "%") is named by a hash of it;
// the file then holds the ID. (The prefix dates from when only shared IDs needed one.)
const HASHED_FILE = /^nfs-[0-9a-f]{32}$/;

function fileKey(volumeId: string): string | undefined {
  if (PLAIN_ID.test(volumeId)) return volumeId;
  if (/^[\x21-\x7e]{1,128}$/.test(volumeId)) return "nfs-" + createHash("sha256").update(volumeId).digest("hex").slice(0, 32);
  return undefined;
}

export interface Attachment {
  nodeId: string;
  readonly: boolean;
  /** The capability the volume was attached for; a re-attach must match it. */
  capability: Capability;
  attachedAt: string;
}

interface AttachmentFile {
  version: number;
  volumeId: string;
  attachments: Attachment[];
}

export class AttachmentStore {
  private readonly byVolume = new Map<string, readonly Attachment[]>();
  private readonly byNode = new Map<string, Set<string>>();

  private constructor(readonly dir: string) {}

  /**
   * Load every attachment under `root`. Files of volumes that no longer
   * exist (a delete interrupted between its two steps) and temporary files
   * of interrupted writes are removed; unreadable files are reported in
   * `problems` and ignored.
   */
  static async open(root: string, volumeExists: (id: string) => Promise<boolean>): Promise<{ store: AttachmentStore; problems: string[] }> {
    const store = new AttachmentStore(path.join(root, "attachments"));
    await fsp.mkdir(store.dir, { recursive: true });
    const problems: string[] = [];
    for (const entry of await fsp.readdir(store.dir)) {
      const file = path.join(store.dir, entry);
      let id = entry.endsWith(".json") ? entry.slice(0, -5) : "";
      if (HASHED_FILE.test(id)) {
        // Only the file's contents say whose it is: one that does not is reported and kept, like any unreadable record.
        const named = volumeIdIn(file);
        if (named === undefined || fileKey(named) !== id) {
          problems.push(`attachment file ${entry} is unreadable or does not name the volume it is kept for`);
          continue;
        }
        id = named;
      }
      if (fileKey(id) === undefined) {
        if (isTemporaryName(entry)) await fsp.rm(file, { force: true });
        continue;
      }
      if (!(await volumeExists(id))) {
        await fsp.rm(file, { force: true });
        continue;
      }
      const list = store.readFile(id);
      if (typeof list === "string") problems.push(list);
      else store.remember(id, list);
    }
    return { store, problems };
  }

  /** The volume's attachments as last written (from memory; O(1)). */
  of(volumeId: string): readonly Attachment[] {
    return this.byVolume.get(volumeId) ?? [];
  }

  /** How many volumes are attached to `nodeId` (O(1)). */
  countOnNode(nodeId: string): number {
    return this.byNode.get(nodeId)?.size ?? 0;
  }

  /**
   * The volume's attachments as the file on disk says, for a process that
   * did not make them (a node plugin beside a separate controller).
   */
  readFromDisk(volumeId: string): readonly Attachment[] {
    const list = this.readFile(volumeId);
    if (typeof list === "string") throw internal(list);
    return list;
  }

  /**
   * Record `att` for the volume. `limit` (0 = none) caps the volumes
   * attached to att.nodeId; the slot is taken before the write starts, so
   * two attaches of different volumes racing for the last slot cannot both
   * win. The caller holds the volume's lock.
   */
  async attach(volumeId: string, att: Attachment, limit: number): Promise<void> {
    const nodeSet = this.byNode.get(att.nodeId) ?? new Set<string>();
    const already = nodeSet.has(volumeId);
    if (!already && limit > 0 && nodeSet.size >= limit) {
      throw resourceExhausted(`node ${att.nodeId} already has ${nodeSet.size} volumes attached, its limit (--max-volumes-per-node ${limit})`);
    }
    nodeSet.add(volumeId);
    this.byNode.set(att.nodeId, nodeSet);
    const next = [...this.of(volumeId).filter((a) => a.nodeId !== att.nodeId), att];
    try {
      await this.write(volumeId, next);
    } catch (err) {
      if (!already) this.dropFromNode(att.nodeId, volumeId);
      throw err;
    }
    this.byVolume.set(volumeId, next);
  }

  /** Remove the volume's attachment to `nodeId` (all of them if undefined). Returns what was removed. */
  async detach(volumeId: string, nodeId: string | undefined): Promise<Attachment[]> {
    const current = this.of(volumeId);
    const gone = current.filter((a) => nodeId === undefined || a.nodeId === nodeId);
    if (gone.length === 0) return [];
    const next = current.filter((a) => !gone.includes(a));
    await this.write(volumeId, next);
    this.remember(volumeId, next);
    for (const a of gone) this.dropFromNode(a.nodeId, volumeId);
    return gone;
  }

  /** Drop every record of a volume that no longer exists. */
  async forget(volumeId: string): Promise<void> {
    if (fileKey(volumeId) === undefined) return;
    for (const a of this.of(volumeId)) this.dropFromNode(a.nodeId, volumeId);
    this.byVolume.delete(volumeId);
    await this.write(volumeId, []);
  }

  private file(volumeId: string): string {
    const key = fileKey(volumeId);
    if (key === undefined) throw internal(`refusing to build a path from malformed volume id ${JSON.stringify(volumeId)}`);
    return path.join(this.dir, `${key}.json`);
  }

  /** Persist the list; an empty list removes the file. */
  private async write(volumeId: string, list: readonly Attachment[]): Promise<void> {
    const file = this.file(volumeId);
    if (list.length > 0) {
      const body: AttachmentFile = { version: ATTACHMENT_VERSION, volumeId, attachments: [...list] };
      await writeFileAtomic(file, JSON.stringify(body, null, 2) + "\n");
      return;
    }
    try {
      await fsp.unlink(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw err;
    }
    await fsyncDir(this.dir);
  }

  private readFile(volumeId: string): Attachment[] | string {
    let text: string;
    try {
      // Synchronous for the same reason as volume metadata (atomic-file.ts):
      // a few hundred bytes from the page cache.
      const fd = openSync(this.file(volumeId), fsc.O_RDONLY | fsc.O_NOFOLLOW);
      try {
        text = readFileSync(fd, "utf8");
      } finally {
        closeSync(fd);
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw err;
    }
    return parseAttachments(text, volumeId);
  }

  private remember(volumeId: string, list: readonly Attachment[]): void {
    if (list.length === 0) this.byVolume.delete(volumeId);
    else this.byVolume.set(volumeId, list);
    for (const a of list) {
      const set = this.byNode.get(a.nodeId) ?? new Set<string>();
      set.add(volumeId);
      this.byNode.set(a.nodeId, set);
    }
  }

  private dropFromNode(nodeId: string, volumeId: string): void {
    const set = this.byNode.get(nodeId);
    if (!set) return;
    set.delete(volumeId);
    if (set.size === 0) this.byNode.delete(nodeId);
  }
}

/** The volume ID a (hash-named) attachment file holds, or undefined where it holds none. */
function volumeIdIn(file: string): string | undefined {
  let raw: unknown;
  try {
    raw = readJsonNoFollow(file);
  } catch {
    return undefined;
  }
  const id = typeof raw === "object" && raw !== null ? (raw as { volumeId?: unknown }).volumeId : undefined;
  return typeof id === "string" ? id : undefined;
}

/** Check an attachment file's contents; the reason it is unusable, or the list. */
export function parseAttachments(text: string, volumeId: string): Attachment[] | string {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return `attachment file of volume ${volumeId} is not valid JSON`;
  }
  const r = raw as Partial<AttachmentFile> | null;
  if (typeof r !== "object" || r === null) return `attachment file of volume ${volumeId} is not a JSON object`;
  if (typeof r.version !== "number" || r.version > ATTACHMENT_VERSION) {
    return `attachment file of volume ${volumeId} has version ${String(r.version)}; this driver reads up to ${ATTACHMENT_VERSION}`;
  }
  if (r.volumeId !== volumeId || !Array.isArray(r.attachments)) return `attachment file of volume ${volumeId} is malformed`;
  for (const a of r.attachments as unknown[]) {
    const x = a as Partial<Attachment> | null;
    if (typeof x !== "object" || x === null || typeof x.nodeId !== "string" || typeof x.readonly !== "boolean" || typeof x.capability !== "object") {
      return `attachment file of volume ${volumeId} has a malformed entry`;
    }
  }
  return r.attachments;
}
