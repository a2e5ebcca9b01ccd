/**
 * This controller's records of shared volumes.
 *
 * A shared volume is its directory on the share (store.ts). Beside it the
 * controller keeps a record of what CreateVolume was asked (size,
 * capabilities, parameters) in its own root, <root>/shared/<key>.json (key:
 * a hash of the location), so that a retry with another size is
 * ALREADY_EXISTS and ListVolumes, ControllerGetVolume and
 * ValidateVolumeCapabilities answer without touching the share. The
 * records are indexed in memory by ID, for ListVolumes' pages, and by CSI
 * name: a shared volume's ID is its location, so a name asked for again
 * with another share or subDir would otherwise make a second volume.
 */
import { promises as fsp, readdirSync } from "node:fs";
import * as path from "node:path";
import { CsiError, internal } from "../../csi/errors";
import type { Logger } from "../../server/logger";
import { readJsonNoFollow, removeTemporaries, writeFileAtomic } from "../../storage/atomic-file";
import { NameIndex } from "../../storage/name-index";
import { SortedIndex } from "../../storage/sorted-index";
import { parseRecord, type VolumeRecord } from "../../storage/volume-record";
import { parseSharedId, type SharedVolumeId } from "./volume-id";

/** A controller record's JSON; one that does not parse is INTERNAL naming it (other errors, ENOENT among them, pass). */
function readRecordJson(file: string, key: string): unknown {
  try {
    return readJsonNoFollow(file);
  } catch (err) {
    if (err instanceof SyntaxError) throw internal(`record of shared volume ${key} is not valid JSON`);
    throw err;
  }
}

export class SharedRecords {
  private readonly names = new NameIndex();

  private constructor(
    private readonly dir: string,
    private readonly index: SortedIndex,
  ) {}

  static async open(dir: string, log: Logger): Promise<SharedRecords> {
    await fsp.mkdir(dir, { recursive: true });
    const ids: string[] = [];
    const names: [string, string][] = [];
    const entries = readdirSync(dir);
    await removeTemporaries(dir, entries); // records a crash left half-written
    for (const f of entries.filter((n) => /^[0-9a-f]{32}\.json$/.test(n))) {
      let raw: unknown;
      try {
        raw = readRecordJson(path.join(dir, f), f.slice(0, -".json".length));
      } catch (err) {
        // Damaged behind the driver's back (a disk error, a hand edit): one such record must
        // not keep the driver, and every other volume, from starting. Its file is named by a
        // hash, so the volume it held cannot be listed; it is left as it is, and said.
        log.warn("a shared volume's record cannot be read; it is left as it is and not listed", { file: path.join(dir, f), error: CsiError.from(err).message });
        continue;
      }
      const { volumeId, name } = (raw ?? {}) as { volumeId?: unknown; name?: unknown };
      if (typeof volumeId === "string") ids.push(volumeId);
      else log.warn("a shared volume's record names no volume; it is left as it is and not listed", { file: path.join(dir, f) });
      if (typeof volumeId === "string" && typeof name === "string") names.push([name, volumeId]);
    }
    const store = new SharedRecords(dir, SortedIndex.from(ids));
    for (const [name, volumeId] of names) store.names.set(name, volumeId);
    return store;
  }

  /** The ID of the volume recorded under CSI name `name`, if this controller holds one. */
  async volumeNamed(name: string): Promise<string | undefined> {
    const volumeId = this.names.get(name);
    if (volumeId === undefined) return undefined;
    if ((await this.getById(volumeId))?.name === name) return volumeId;
    this.names.forget(volumeId); // its record was removed behind our back
    return undefined;
  }

  get count(): number {
    return this.index.size;
  }

  page(after: string, limit: number): { ids: string[]; more: boolean } {
    return this.index.page(after, limit);
  }

  private file(key: string): string {
    if (!/^[0-9a-f]{32}$/.test(key)) throw internal(`refusing to build a path from malformed key ${JSON.stringify(key)}`);
    return path.join(this.dir, `${key}.json`);
  }

  /** This controller's record of a shared volume, if it has one. */
  async get(id: SharedVolumeId): Promise<VolumeRecord | undefined> {
    let raw: unknown;
    try {
      raw = readRecordJson(this.file(id.key), id.key);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    const rec = parseRecord(raw, (raw as { volumeId?: string } | null)?.volumeId ?? "");
    if (typeof rec === "string") throw internal(`record of shared volume ${id.key} is unusable: ${rec}`);
    return rec;
  }

  async getById(volumeId: string): Promise<VolumeRecord | undefined> {
    const id = parseSharedId(volumeId);
    if (!id) return undefined;
    const rec = await this.get(id);
    return rec?.volumeId === volumeId ? rec : undefined;
  }

  /** Record `record` (durably), and index it by ID and name. */
  async put(record: VolumeRecord): Promise<void> {
    const id = parseSharedId(record.volumeId)!;
    await writeFileAtomic(this.file(id.key), JSON.stringify(record, null, 2) + "\n");
    this.index.add(record.volumeId);
    this.names.set(record.name, record.volumeId);
  }

  /** Forget a volume: its record and its place in both indexes. */
  async remove(volumeId: string, key: string): Promise<void> {
    await fsp.rm(this.file(key), { force: true });
    this.index.delete(volumeId);
    this.names.forget(volumeId);
  }
}
