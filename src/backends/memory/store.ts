/**
 * Memory volumes on disk and in RAM: records under the root, contents in a tmpfs.
 *
 * A memory volume is a tmpfs of its own — the kernel's in-memory file
 * system — mounted at <root>/memory/data/<id> with `size=` the volume's
 * capacity, so the kernel itself enforces the limit (a write past it fails
 * with ENOSPC) without quotas or images. Its record is beside it:
 *
 *   <root>/memory/volumes/<id>.json   what CreateVolume was asked (atomic write)
 *   <root>/memory/data/<id>/          the tmpfs (a mount point)
 *
 * Creation: mount the tmpfs, fill it (a restore or clone), then write the
 * record — the commit point. A tmpfs without a record is an interrupted
 * create, removed by the next create of that volume and by the start-up
 * sweep. Deletion runs backwards: the record goes first, then the tmpfs.
 *
 * The contents live in memory: they survive the driver's restart (the
 * tmpfs stays mounted; the driver finds it again at the same place in its
 * root, and a new container sees it when the root is mounted with
 * Bidirectional propagation), not the node's. After a reboot the record
 * is there and the tmpfs is not: the start-up sweep mounts an empty one,
 * says so in the log, and the volume goes on, empty — as an emptyDir with
 * `medium: Memory` would be.
 */
import { createHash } from "node:crypto";
import { lstatSync, promises as fsp, readdirSync, readFileSync, realpathSync } from "node:fs";
import * as path from "node:path";
import { CsiError, failedPrecondition, internal, resourceExhausted } from "../../csi/errors";
import { mountTable, type MountEntry } from "../../mount/mountinfo";
import { MS } from "../../mount/options";
import { mountFsAsync, unmountIfMounted } from "../../mount/syscalls";
import type { Driver } from "../../server/driver";
import type { Logger } from "../../server/logger";
import { removeTemporaries, writeFileAtomic } from "../../storage/atomic-file";
import { Holds } from "../../storage/holds";
import { readRecordFile } from "../../storage/record-file";
import { statfsUsage, type FsUsage } from "../../storage/fs-usage";
import { SortedIndex } from "../../storage/sorted-index";
import { setRootMode } from "../../storage/volume-root";
import { madeFor, markMadeFor } from "../../node/made-here";
import { parseRecord, RECORD_VERSION, type VolumeRecord } from "../../storage/volume-record";
import { roundedByTheKernel } from "./size";

const ID_PATTERN = /^mem-[0-9a-f]{32}$/;
/** The tmpfs's source name, as mountinfo shows it. */
export const TMPFS_SOURCE = "csi-lab-memory";

export type NewMemoryVolume = Omit<VolumeRecord, "version" | "volumeId" | "backend" | "createdAt" | "layout">;

export class MemoryStore {
  readonly backend = "memory";
  /** Each volume's size, kept beside the index: what RAM the volumes were promised. */
  readonly sizes = new Map<string, number>();
  /** RAM held for creates and growths in flight: checked, not yet in `sizes`. */
  private readonly holds = new Holds();

  private constructor(
    readonly dir: string,
    private readonly index: SortedIndex,
  ) {}

  static isVolumeId(id: string): boolean {
    return ID_PATTERN.test(id);
  }

  static idForName(name: string): string {
    return "mem-" + createHash("sha256").update(`memory\0${name}`).digest("hex").slice(0, 32);
  }

  /** Open (and lay out) <root>/memory; sweep what a crash or a reboot left. */
  static async open(root: string, log: Logger): Promise<MemoryStore> {
    const dir = path.join(root, "memory");
    for (const sub of ["volumes", "data"]) await fsp.mkdir(path.join(dir, sub), { recursive: true, mode: 0o700 });
    const entries = readdirSync(path.join(dir, "volumes"));
    await removeTemporaries(path.join(dir, "volumes"), entries); // records a crash left half-written
    const ids = entries.filter((n) => n.endsWith(".json") && ID_PATTERN.test(n.slice(0, -5))).map((n) => n.slice(0, -5));
    const store = new MemoryStore(dir, SortedIndex.from(ids));
    const known = new Set(ids);
    // A tmpfs without a record: an interrupted create (or delete). Gone.
    for (const name of readdirSync(path.join(dir, "data"))) {
      if (!ID_PATTERN.test(name) || known.has(name)) continue;
      try {
        await store.unmountData(name);
      } catch (err) {
        // Not what a create leaves (a symlink put there, a busy mount): one such entry must not keep every volume from starting.
        log.warn("what an interrupted create left of a memory volume cannot be removed; it is left as it is", { volumeId: name, error: CsiError.from(err).message });
      }
    }
    // A record without its tmpfs: the node restarted. The volume goes on, empty.
    for (const id of ids) {
      let rec: VolumeRecord | undefined;
      try {
        rec = await store.get(id);
      } catch (err) {
        // Damaged behind the driver's back (a disk error, a hand edit): one such record must not
        // keep the driver, and every other volume, from starting. It is left as it is, and so is
        // its tmpfs; its RAM stays promised by the tmpfs's own size.
        const mounted = store.tmpfsMounted(id);
        if (mounted) store.sizes.set(id, (await store.usage(id)).totalBytes);
        log.warn("a memory volume's record cannot be read; the volume is left as it is", {
          volumeId: id,
          error: CsiError.from(err).message,
          tmpfs: mounted ? "mounted" : "not mounted",
        });
        continue;
      }
      if (rec) store.sizes.set(id, rec.capacityBytes);
      if (rec && !store.tmpfsMounted(id)) {
        try {
          await store.mountTmpfs(id, rec.capacityBytes, modeOf(rec));
        } catch (err) {
          // One volume that cannot be mounted again must not keep every other from starting.
          log.warn("a memory volume lost its tmpfs and cannot have a new one; the volume is left as it is", { volumeId: id, error: CsiError.from(err).message });
          continue;
        }
        log.warn("a memory volume lost its contents (the node restarted since it was made); it is empty now", { volumeId: id });
      }
    }
    return store;
  }

  get count(): number {
    return this.index.size;
  }

  page(after: string, limit: number): { ids: string[]; more: boolean } {
    return this.index.page(after, limit);
  }

  private recordFile(id: string): string {
    if (!ID_PATTERN.test(id)) throw internal(`refusing to build a path from malformed volume id ${JSON.stringify(id)}`);
    return path.join(this.dir, "volumes", `${id}.json`);
  }

  /** The tmpfs's mount point: the volume's root. */
  dataDir(id: string): string {
    if (!ID_PATTERN.test(id)) throw internal(`refusing to build a path from malformed volume id ${JSON.stringify(id)}`);
    return path.join(this.dir, "data", id);
  }

  async get(id: string): Promise<VolumeRecord | undefined> {
    if (!ID_PATTERN.test(id)) return undefined;
    // A name CreateVolume has not seen is not in the index: ask without an exception.
    const raw = readRecordFile(this.recordFile(id), `memory volume ${id}`, this.index.has(id));
    if (raw === undefined) {
      this.index.delete(id);
      return undefined;
    }
    const rec = parseRecord(raw, id);
    if (typeof rec === "string") throw internal(`metadata of memory volume ${id} is unusable: ${rec}`);
    this.index.add(id);
    // An older build's record may keep a size that is not a whole page: its tmpfs has it rounded up (size.ts).
    const size = roundedByTheKernel(rec.capacityBytes);
    return size === rec.capacityBytes ? rec : { ...rec, capacityBytes: size };
  }

  /** Is the volume's tmpfs mounted where it belongs? */
  tmpfsMounted(id: string): boolean {
    return this.tmpfs(id) !== undefined;
  }

  /** Where the kernel shows the volume's tmpfs: its device (as mountinfo names it), and its root. */
  location(id: string): { device: string; root: string } | undefined {
    const m = this.tmpfs(id);
    return m && { device: m.device, root: m.root };
  }

  /**
   * The volume's tmpfs, mounted at its own directory: the root of a tmpfs, on top there, that
   * carries the volume's mark (mountTmpfs). A path is not a mount: the volume's tmpfs may have
   * been unmounted there by hand and something else mounted in its place — another tmpfs, a
   * bind of one in use elsewhere — which is not the volume, to unmount, bind into a pod, copy,
   * grow or chmod. An unmarked tmpfs of the driver's own source name is still taken for the
   * volume's: what a crash between the mount and the mark leaves, or a kernel whose tmpfs holds
   * no extended attributes.
   */
  private tmpfs(id: string): MountEntry | undefined {
    const m = mountTable().at(this.realData(id));
    if (m === undefined || m.fsType !== "tmpfs" || m.root !== "/") return undefined;
    const mark = madeFor(this.dataDir(id));
    return mark === id || (mark === undefined && m.source === TMPFS_SOURCE) ? m : undefined;
  }

  /** What is mounted in the volume's place and is not its tmpfs (see tmpfs), if anything. */
  foreign(id: string): MountEntry | undefined {
    const m = mountTable().at(this.realData(id));
    return m !== undefined && this.tmpfs(id) === undefined ? m : undefined;
  }

  /** FAILED_PRECONDITION naming what is mounted in the volume's place and is not its tmpfs. */
  private refuseForeign(id: string, doing: string): void {
    const m = this.foreign(id);
    if (m) {
      throw failedPrecondition(
        `memory volume ${id}: ${this.dataDir(id)} has ${m.fsType} from ${m.source} mounted on it, which is not the volume's tmpfs (someone mounted it there); it was left alone and ${doing}`,
      );
    }
  }

  /**
   * The volume's directory as the mount table names it: its parent resolved (the root may be
   * reached through a symlink), never the volume's own name — a symlink put in its place
   * names some other file system, which is not the volume's tmpfs.
   */
  private realData(id: string): string {
    const p = this.dataDir(id);
    try {
      return path.join(realpathSync(path.dirname(p)), path.basename(p));
    } catch {
      return p;
    }
  }

  /**
   * Make the volume: a fresh tmpfs of `spec.capacityBytes`, filled by
   * `fill` (a restore or clone), then the record (the commit point).
   */
  async create(spec: NewMemoryVolume, fill?: (dir: string) => Promise<void>): Promise<VolumeRecord> {
    const id = MemoryStore.idForName(spec.name);
    await this.unmountData(id); // what an interrupted create of this volume left
    const record: VolumeRecord = { version: RECORD_VERSION, volumeId: id, backend: this.backend, createdAt: new Date().toISOString(), layout: "dir", ...spec };
    await this.mountTmpfs(id, spec.capacityBytes, modeOf(record));
    try {
      if (fill) {
        await fill(this.dataDir(id));
        // The copy (cp -a) brought its source's root, extended attributes and all: the
        // source's mark too, which would make this volume's mounts look like the source's.
        markMadeFor(this.dataDir(id), id);
      }
      await writeFileAtomic(this.recordFile(id), JSON.stringify(record, null, 2) + "\n");
    } catch (err) {
      await this.unmountData(id);
      throw err;
    }
    this.index.add(id);
    this.sizes.set(id, record.capacityBytes);
    return record;
  }

  /**
   * RAM this node can still promise to memory volumes: what the kernel says
   * is available, less what existing memory volumes may still fill (their
   * size less what they hold, which the kernel already counts as used) and
   * what creates and growths in flight hold. One statfs per memory volume:
   * there are few, each costing RAM.
   */
  async promisable(): Promise<number> {
    return Math.max(0, (await this.unheld()) - this.holds.total);
  }

  /** The same, before what calls in flight hold: read the holds after it, with no await between. */
  private async unheld(): Promise<number> {
    const available = Number(/^MemAvailable:\s+(\d+) kB$/m.exec(readFileSync("/proc/meminfo", "utf8"))?.[1] ?? 0) * 1024;
    let promised = 0;
    for (const [id, bytes] of this.sizes) {
      const used = this.tmpfsMounted(id) ? (await this.usage(id)).usedBytes : 0;
      promised += Math.max(0, bytes - used);
    }
    return available - promised;
  }

  /**
   * Check that `bytes` more RAM can be promised and hold them until the
   * caller has recorded its volume's size (or failed): the function returned
   * lets go. RESOURCE_EXHAUSTED, with `refusal(free)`, when they cannot.
   */
  async hold(bytes: number, refusal: (free: number) => string): Promise<() => void> {
    const unheld = await this.unheld();
    // What others hold is read here, with no await between it, the check and the hold: two calls
    // cannot both pass on the same RAM, even when both were reading the volumes' usage at once.
    const free = Math.max(0, unheld - this.holds.total);
    if (bytes > free) throw resourceExhausted(refusal(free));
    return this.holds.hold(bytes);
  }

  /**
   * Grow the volume to `bytes` (more than its size) if the node can promise
   * the difference: the tmpfs first, so the record never claims a size the
   * kernel does not enforce, then the record. The grown record.
   */
  async grow(record: VolumeRecord, bytes: number): Promise<VolumeRecord> {
    const id = record.volumeId;
    const more = bytes - record.capacityBytes;
    const release = await this.hold(more, (free) => `growing memory volume ${id} to ${bytes} bytes needs ${more} more bytes of RAM, but this node can promise only ${free}`);
    try {
      await this.resize(id, bytes);
      const grown = { ...record, capacityBytes: bytes };
      await this.update(grown);
      return grown;
    } finally {
      release();
    }
  }

  async update(record: VolumeRecord): Promise<void> {
    await writeFileAtomic(this.recordFile(record.volumeId), JSON.stringify(record, null, 2) + "\n");
    this.sizes.set(record.volumeId, record.capacityBytes);
  }

  /** Give the tmpfs its new size (the kernel refuses one below what is in use: ENOSPC... EINVAL). */
  async resize(id: string, bytes: number): Promise<void> {
    if (!this.tmpfsMounted(id)) throw failedPrecondition(`memory volume ${id} cannot be resized: its tmpfs is not mounted`);
    await mountFsAsync(TMPFS_SOURCE, this.dataDir(id), "tmpfs", MS.REMOUNT, `size=${bytes}`);
  }

  /** The record first (the commit point), then the tmpfs. Returns false if there was no such volume. */
  async delete(id: string): Promise<boolean> {
    if (!ID_PATTERN.test(id)) return false;
    this.refuseForeign(id, "nothing was deleted; unmount it, then delete the volume again");
    let existed = true;
    await fsp.unlink(this.recordFile(id)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
      existed = false;
    });
    this.index.delete(id);
    this.sizes.delete(id);
    await this.unmountData(id);
    return existed;
  }

  async usage(id: string): Promise<FsUsage> {
    return statfsUsage(this.dataDir(id));
  }

  private async mountTmpfs(id: string, bytes: number, mode: number): Promise<void> {
    const dir = this.dataDir(id);
    await fsp.mkdir(dir, { mode: 0o700 }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "EEXIST") throw err;
    });
    // mount(2) follows a symlink: one in the volume's place would have the tmpfs cover what it names.
    if (!lstatSync(dir).isDirectory()) throw failedPrecondition(`memory volume ${id}: its mount point ${dir} has been replaced by something that is not a directory; not mounting there`);
    // Never stacked over what someone else mounted there: it would hide it, and stay mounted below.
    this.refuseForeign(id, "no tmpfs was mounted over it");
    // nodev, nosuid: a volume's content never becomes a device or a set-ID program on the node.
    await mountFsAsync(TMPFS_SOURCE, dir, "tmpfs", MS.NODEV | MS.NOSUID, `size=${bytes},mode=${mode.toString(8).padStart(4, "0")}`);
    setRootMode(dir, mode);
    // The tmpfs says whose it is: its binds are recognised by this, in any mount namespace,
    // even once it is no longer mounted here (made-here.ts).
    markMadeFor(dir, id);
  }

  /** Unmount the volume's tmpfs (if it is mounted: only its own marked tmpfs, see tmpfs) and remove its mount point. */
  private async unmountData(id: string): Promise<void> {
    const dir = this.dataDir(id);
    if (!lstatSync(dir, { throwIfNoEntry: false })) return;
    for (let i = 0; i < 8 && this.tmpfsMounted(id); i++) await unmountIfMounted(dir, { detach: true });
    this.refuseForeign(id, "its mount point stays");
    await fsp.rmdir(dir).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== "ENOENT") throw err;
    });
  }
}

/** The mode of a new tmpfs's root: the volume's `mode` mutable parameter, or 0777 like an emptyDir. */
function modeOf(rec: Pick<VolumeRecord, "mutableParameters">): number {
  return rec.mutableParameters.mode !== undefined ? parseInt(rec.mutableParameters.mode, 8) : 0o777;
}

/** This driver's memory store: the memory backend's own state. */
export function memoryStore(driver: Pick<Driver, "backends">): MemoryStore {
  for (const b of driver.backends.all) {
    const store = (b as { store?: unknown }).store;
    if (store instanceof MemoryStore) return store;
  }
  throw internal("the memory backend is not open");
}
