/**
 * The mount table, indexed for the questions a driver asks of it.
 *
 * A node call asks a few things of the table: what is mounted at this
 * path, which mount holds this directory, where else is this directory
 * (its device and root) mounted, which mounts show a loop device. Asked of
 * a list, each answer looks at every mount, so every call would cost more
 * with every pod on the node. Here each is a lookup in a map: by mount
 * point, by device and root, by device, by source, by the device's major
 * number (loop devices' is 7), by each directory above the mount point
 * (what is mounted inside a tree). "Which mount holds /a/b/c" asks for
 * /a/b/c, /a/b, /a and / in turn: the length of the path, not the size of
 * the table.
 *
 * A table handed out never changes (`Mounts`): a caller may look at it
 * before and after an await and get the same answers. The table kept by
 * mount events (mount-events.ts) changes in place, so each handed-out
 * version keeps its own view: every entry carries the version that added
 * it, and a version that is no longer the newest has the chain of what
 * later versions removed. The newest (nearly always what a lookup uses)
 * reads the maps directly; an older one also looks at what was removed
 * since it was handed out. No one holds the chain but the old versions, so
 * it goes when they do.
 */
import type { MountEntry } from "./mountinfo";

/** Where a directory lives as the mount table names it: device and path inside that file system. */
export interface FsLocation {
  device: string;
  root: string;
}

/** One version of the mount table, and the lookups on it. Never changes once handed out. */
export interface Mounts {
  /** Every mount, in the table's order (mountinfo's). */
  readonly list: readonly MountEntry[];
  /** The mount on top at exactly `mountPoint` (the last one stacked there), if any. */
  at(mountPoint: string): MountEntry | undefined;
  /**
   * The mount that contains `path` (absolute, no symlinks): the one at the
   * longest mount point that is `path` or one of its parents.
   */
  containing(path: string): MountEntry | undefined;
  /** Every mount of a directory named by device and root (its bind mounts, and the file system's own mount if it is the root), in order. */
  of(loc: FsLocation): MountEntry[];
  /** Every mount of a file system, by its device ("major:minor"), in order. */
  onDevice(device: string): MountEntry[];
  /** Every mount whose source is `source` (an export's "server:/path"), in order. */
  withSource(source: string): MountEntry[];
  /** Every mount of a loop device's file system (major 7), in order. */
  onLoopDevices(): MountEntry[];
  /** Every mount at `path` (absolute, no symlinks) or anywhere below it, in order: what a recursive removal of `path` would walk into. */
  inside(path: string): MountEntry[];
}

/** The directories above a mount point, "/" first: /a/b/c → "/", "/a", "/a/b". */
export function parentsOf(mountPoint: string): string[] {
  const out: string[] = [];
  if (mountPoint === "/") return out;
  out.push("/");
  for (let i = mountPoint.indexOf("/", 1); i > 0; i = mountPoint.indexOf("/", i + 1)) out.push(mountPoint.slice(0, i));
  return out;
}

/** Is `mountPoint` `path` itself or below it? */
export function isAtOrBelow(mountPoint: string, path: string): boolean {
  return mountPoint === path || path === "/" || (mountPoint.startsWith(path) && mountPoint.charCodeAt(path.length) === 0x2f);
}

/**
 * A real (symlink-free) absolute path as the mount table names it: the
 * device of the mount holding it, and its path inside that file system.
 * This is how bind mounts of a directory show up.
 */
export function locate(mounts: Mounts, realPath: string): FsLocation | undefined {
  const m = mounts.containing(realPath);
  if (!m) return undefined;
  const rel = m.mountPoint === "/" ? realPath : realPath.slice(m.mountPoint.length);
  const root = m.root === "/" ? rel || "/" : m.root + rel;
  return { device: m.device, root };
}

/** A mount in the index: its entry, its place in the table's order, the version that added it. */
interface Slot {
  readonly entry: MountEntry;
  readonly order: number;
  readonly born: number;
}

/** From one version to the next: what it removed (what it added carries the new version). */
interface Step {
  readonly removed: readonly Slot[];
  readonly to: IndexedMounts;
}

type Bucket = Slot[];

const placeKey = (device: string, root: string) => `${device}\0${root}`;
const majorOf = (device: string) => device.slice(0, device.indexOf(":"));

/** The index itself: changed only by its owner, read through `Mounts`. */
export class MountIndex {
  readonly bySlot = new Map<number, Slot>();
  readonly byPoint = new Map<string, Bucket>();
  readonly byPlace = new Map<string, Bucket>();
  readonly byDevice = new Map<string, Bucket>();
  readonly bySource = new Map<string, Bucket>();
  /** By the device's major number ("7": loop devices). */
  readonly byMajor = new Map<string, Bucket>();
  /** By each directory above the mount point (parentsOf). */
  readonly byParent = new Map<string, Bucket>();
  private version = 0;
  private pending: Slot[] = [];
  private changed = false;
  private newest: IndexedMounts;

  constructor(entries: Iterable<{ entry: MountEntry; order: number }> = []) {
    for (const { entry, order } of entries) this.add(entry, order);
    this.changed = false;
    this.version = 1;
    this.newest = new IndexedMounts(this, 1);
  }

  add(entry: MountEntry, order: number): void {
    if (this.bySlot.has(order)) this.remove(order);
    const slot: Slot = { entry, order, born: this.version + 1 };
    this.bySlot.set(order, slot);
    insert(this.byPoint, entry.mountPoint, slot);
    insert(this.byPlace, placeKey(entry.device, entry.root), slot);
    insert(this.byDevice, entry.device, slot);
    insert(this.bySource, entry.source, slot);
    insert(this.byMajor, majorOf(entry.device), slot);
    for (const dir of parentsOf(entry.mountPoint)) insert(this.byParent, dir, slot);
    this.changed = true;
  }

  remove(order: number): void {
    const slot = this.bySlot.get(order);
    if (!slot) return;
    const e = slot.entry;
    this.bySlot.delete(order);
    drop(this.byPoint, e.mountPoint, slot);
    drop(this.byPlace, placeKey(e.device, e.root), slot);
    drop(this.byDevice, e.device, slot);
    drop(this.bySource, e.source, slot);
    drop(this.byMajor, majorOf(e.device), slot);
    for (const dir of parentsOf(e.mountPoint)) drop(this.byParent, dir, slot);
    if (slot.born <= this.version) this.pending.push(slot); // older versions still show it
    this.changed = true;
  }

  /** The table as of now: the same object while nothing changed. */
  current(): IndexedMounts {
    if (!this.changed) return this.newest;
    this.version++;
    const next = new IndexedMounts(this, this.version);
    this.newest.next = { removed: this.pending, to: next };
    this.newest = next;
    this.pending = [];
    this.changed = false;
    return next;
  }
}

/** Put `slot` in its bucket, in the table's order (nearly always at the end). */
function insert(map: Map<string, Bucket>, key: string, slot: Slot): void {
  const b = map.get(key);
  if (!b) {
    map.set(key, [slot]);
    return;
  }
  let i = b.length;
  while (i > 0 && b[i - 1]!.order > slot.order) i--;
  b.splice(i, 0, slot);
}

/**
 * Take `slot` out of its bucket (and the bucket out of the map once it is
 * empty). Some buckets are large (every bind mount from one disk shares its
 * device, every mount of a loop device its major), so the slot is found by
 * its order, not by a pass.
 */
function drop(map: Map<string, Bucket>, key: string, slot: Slot): void {
  const b = map.get(key);
  if (!b) return;
  let lo = 0;
  let hi = b.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (b[mid]!.order < slot.order) lo = mid + 1;
    else hi = mid;
  }
  if (b[lo] === slot) b.splice(lo, 1);
  if (b.length === 0) map.delete(key);
}

/** One version of an index's table. */
export class IndexedMounts implements Mounts {
  /** Set when a later version exists: what it removed, and it. */
  next: Step | undefined;
  private listed: readonly MountEntry[] | undefined;

  constructor(
    private readonly index: MountIndex,
    private readonly version: number,
  ) {}

  /** A pass over the whole table: for the few callers that need all. */
  get list(): readonly MountEntry[] {
    if (this.listed) return this.listed;
    const slots = this.visible([...this.index.bySlot.values()].sort(byOrder), () => true);
    return (this.listed = slots.map((s) => s.entry));
  }

  at(mountPoint: string): MountEntry | undefined {
    const b = this.find(this.index.byPoint, mountPoint, (e) => e.mountPoint === mountPoint);
    return b[b.length - 1]?.entry;
  }

  containing(path: string): MountEntry | undefined {
    for (let p = path; ; ) {
      const m = this.at(p);
      if (m) return m;
      if (p === "/" || p === "") return undefined;
      const slash = p.lastIndexOf("/");
      p = slash <= 0 ? "/" : p.slice(0, slash);
    }
  }

  of(loc: FsLocation): MountEntry[] {
    return this.entries(this.find(this.index.byPlace, placeKey(loc.device, loc.root), (e) => e.device === loc.device && e.root === loc.root));
  }

  onDevice(device: string): MountEntry[] {
    return this.entries(this.find(this.index.byDevice, device, (e) => e.device === device));
  }

  withSource(source: string): MountEntry[] {
    return this.entries(this.find(this.index.bySource, source, (e) => e.source === source));
  }

  onLoopDevices(): MountEntry[] {
    return this.entries(this.find(this.index.byMajor, "7", (e) => majorOf(e.device) === "7"));
  }

  inside(path: string): MountEntry[] {
    const at = this.find(this.index.byPoint, path, (e) => e.mountPoint === path);
    const below = this.find(this.index.byParent, path, (e) => e.mountPoint !== path && isAtOrBelow(e.mountPoint, path));
    return this.entries(at.length === 0 ? below : below.length === 0 ? at : [...at, ...below].sort(byOrder));
  }

  private entries(slots: readonly Slot[]): MountEntry[] {
    return slots.map((s) => s.entry);
  }

  /** A bucket as this version sees it. */
  private find(map: Map<string, Bucket>, key: string, match: (e: MountEntry) => boolean): readonly Slot[] {
    const b = map.get(key) ?? [];
    return this.next === undefined ? b : this.visible(b, match);
  }

  /**
   * Slots of this version among `live` (the index now, in order), with what
   * later versions removed that matches, in order. The newest version needs
   * neither correction.
   */
  private visible(live: readonly Slot[], match: (e: MountEntry) => boolean, gone = this.removedSince(match)): Slot[] {
    const mine = this.next === undefined ? [...live] : live.filter((s) => s.born <= this.version);
    return gone.length === 0 ? mine : [...mine, ...gone].sort(byOrder);
  }

  /** Slots removed after this version that it had and that match. */
  private removedSince(match: (e: MountEntry) => boolean): Slot[] {
    const out: Slot[] = [];
    for (let step = this.next; step; step = step.to.next) {
      for (const s of step.removed) if (s.born <= this.version && match(s.entry)) out.push(s);
    }
    return out;
  }
}

const byOrder = (a: Slot, b: Slot) => a.order - b.order;
