/**
 * The mount table kept current by the kernel's mount notifications.
 *
 * Reading /proc/self/mountinfo costs time that grows with every mount in
 * the namespace: the kernel writes the whole table out as text, a page
 * per read(2). A node with many pods has thousands of mounts, and a
 * driver's checks ("is this volume mounted anywhere else?") would pay for
 * all of them on every call.
 *
 * Since Linux 6.15 the kernel can say what changed instead. fanotify(7)
 * watches a mount namespace (FAN_MARK_MNTNS) and queues one event per
 * mount attached or detached there (FAN_MNT_ATTACH, FAN_MNT_DETACH; a
 * move is one event with both), naming the mount by its unique 64-bit ID,
 * which is never reused. statmount(2) (6.8) describes one mount by that
 * ID, without text to parse; listmount(2) lists every ID. So the table is
 * listed once, and afterwards each change costs one statmount, and each
 * lookup one read(2) of the event queue that usually finds it empty.
 *
 * The kernel sends a change's events before the mount(2) or umount2(2)
 * that made it returns, so a lookup after a change sees it, as with the
 * text. If the queue overflows (FAN_Q_OVERFLOW: over 16,384 unread
 * events) the table is listed again. Remounts (read-only, nosuid, …) send
 * no event: a mount's options are asked of statmount each time someone
 * reads them.
 *
 * Entries are kept in the order of their unique IDs, which is the order
 * mountinfo lists them (the namespace keeps its mounts in a tree by that
 * ID), so a later mount stacked at the same path comes later, as there.
 *
 * Where the kernel is older, a container's seccomp profile refuses
 * fanotify_init, listmount or statmount, or the user has no fanotify group
 * left (fs.fanotify.max_user_groups, 128 by default), `open` answers
 * undefined and the caller reads the text instead (mountinfo.ts).
 */
import { closeSync, openSync } from "node:fs";
import koffi from "koffi";
import { libc } from "./libc";
import { MountIndex, type IndexedMounts } from "./mount-index";
import type { MountEntry } from "./mountinfo";

const fanotifyInit = libc.func("int fanotify_init(unsigned int flags, unsigned int event_f_flags)") as (flags: number, eventFlags: number) => number;
const fanotifyMark = libc.func("int fanotify_mark(int fd, unsigned int flags, uint64_t mask, int dirfd, const char *path)") as (
  fd: number,
  flags: number,
  mask: number,
  dirfd: number,
  path: string | null,
) => number;
const readFn = libc.func("long read(int fd, _Out_ uint8_t *buf, unsigned long count)") as (fd: number, buf: Buffer, count: number) => number;
// statmount(2) and listmount(2) have no glibc wrapper; both take (req, buffer, size, flags).
const mountSyscall = libc.func("long syscall(long number, uint8_t *req, _Out_ uint8_t *buf, unsigned long size, unsigned int flags)") as (
  nr: number,
  req: Buffer,
  buf: Buffer,
  size: number,
  flags: number,
) => number;

const NR_STATMOUNT = 457; // the same number on every architecture (the unified table)
const NR_LISTMOUNT = 458;

const FAN_CLASS_NOTIF = 0;
const FAN_CLOEXEC = 0x1;
const FAN_NONBLOCK = 0x2;
const FAN_REPORT_MNT = 0x4000;
const FAN_MARK_ADD = 0x1;
const FAN_MARK_MNTNS = 0x110;
const FAN_MNT_ATTACH = 0x01000000;
const FAN_MNT_DETACH = 0x02000000;
const FAN_Q_OVERFLOW = 0x4000;
const FAN_EVENT_INFO_TYPE_MNT = 7;

const EAGAIN = 11;
const ENOENT = 2;
const EOVERFLOW = 75;

/** statmount's mask: what to fill in. */
const SM = { sbBasic: 0x1, mntBasic: 0x2, mntRoot: 0x8, mntPoint: 0x10, fsType: 0x20, mntOpts: 0x80, fsSubtype: 0x100, sbSource: 0x200 } as const;
const IDENTITY = SM.sbBasic | SM.mntBasic | SM.mntRoot | SM.mntPoint | SM.fsType | SM.fsSubtype | SM.sbSource;

/** struct statmount (linux/mount.h): offsets of the fields read; strings are offsets into `str`, at 512. */
const O = {
  mntOpts: 4, // u32 [str]
  mask: 8, // u64
  devMajor: 16, // u32
  devMinor: 20, // u32
  sbFlags: 32, // u32
  fsType: 36, // u32 [str]
  mntIdOld: 56, // u32
  mntParentIdOld: 60, // u32
  mntAttr: 64, // u64
  mntRoot: 104, // u32 [str]
  mntPoint: 108, // u32 [str]
  fsSubtype: 120, // u32 [str]
  sbSource: 124, // u32 [str]
  str: 512,
} as const;

/** struct mnt_id_req, second version: size, spare, mnt_id, param, mnt_ns_id (0: this process's namespace). */
const MNT_ID_REQ_SIZE = 32;
/** listmount from the namespace's root: every mount in it. */
const LSMT_ROOT = 0xffff_ffff_ffff_ffffn;

export class EventTable {
  private index = new MountIndex();
  private readonly events = Buffer.allocUnsafe(16 * 1024);
  private readonly req = Buffer.alloc(MNT_ID_REQ_SIZE);
  private out = Buffer.alloc(16 * 1024);
  /** Whole listings made (at the start, and after an overflow). */
  reads = 0;

  private constructor(private readonly fd: number) {}

  /** A table kept by mount events, or undefined where this kernel or this process cannot have one. */
  static open(): EventTable | undefined {
    const fd = fanotifyInit(FAN_CLASS_NOTIF | FAN_REPORT_MNT | FAN_NONBLOCK | FAN_CLOEXEC, 0);
    if (fd < 0) return undefined;
    let table: EventTable | undefined;
    try {
      const ns = openSync("/proc/self/ns/mnt", "r");
      try {
        if (fanotifyMark(fd, FAN_MARK_ADD | FAN_MARK_MNTNS, FAN_MNT_ATTACH | FAN_MNT_DETACH, ns, null) !== 0) return undefined;
      } finally {
        closeSync(ns);
      }
      // Watching first, listing second: a change made between the two is listed and also
      // arrives as an event, and applying it again changes nothing.
      const t = new EventTable(fd);
      if (!t.listAll()) return undefined;
      table = t;
      return t;
    } catch {
      return undefined;
    } finally {
      if (!table) closeSync(fd);
    }
  }

  /** Stop watching: the table is not used any more. */
  close(): void {
    closeSync(this.fd);
  }

  /** The table as of now. A version handed out never changes (mount-index.ts). */
  read(): IndexedMounts {
    const changes = this.drain();
    if (changes === "overflow") {
      if (!this.listAll()) throw new Error("listmount(2) failed after the mount event queue overflowed");
    } else if (changes.size > 0) {
      this.apply(changes);
    }
    return this.index.current();
  }

  /** Read every queued event: the last word on each mount (attached or moved: look again; detached: gone). */
  private drain(): Map<bigint, "look" | "gone"> | "overflow" {
    const changes = new Map<bigint, "look" | "gone">();
    for (;;) {
      const n = readFn(this.fd, this.events, this.events.length);
      if (n < 0) {
        const errno = koffi.errno();
        if (errno === EAGAIN) return changes;
        throw new Error(`reading mount events failed: errno ${errno}`);
      }
      if (n === 0) return changes; // never from fanotify, but it must not spin
      // struct fanotify_event_metadata { u32 event_len; u8 vers, reserved; u16 metadata_len; u64 mask; s32 fd, pid; }
      for (let at = 0; at + 24 <= n; ) {
        const len = this.events.readUInt32LE(at);
        const metaLen = this.events.readUInt16LE(at + 6);
        const mask = Number(this.events.readBigUInt64LE(at + 8));
        if (len < 24) return "overflow"; // cannot happen; trust nothing after it
        if (mask & FAN_Q_OVERFLOW) return "overflow";
        // Info records follow: { u8 type; u8 pad; u16 len; } and, for a mount, 4 bytes of padding and its u64 ID.
        for (let i = at + metaLen; i + 4 <= at + len; ) {
          const type = this.events.readUInt8(i);
          const infoLen = this.events.readUInt16LE(i + 2);
          if (type === FAN_EVENT_INFO_TYPE_MNT && infoLen >= 16) {
            // The last event on a mount decides; each mount's entry is its own, so order does not matter.
            changes.set(this.events.readBigUInt64LE(i + 8), mask & FAN_MNT_ATTACH ? "look" : "gone");
          }
          if (infoLen === 0) break;
          i += infoLen;
        }
        at += len;
      }
    }
  }

  private apply(changes: Map<bigint, "look" | "gone">): void {
    for (const [id, what] of changes) {
      const stat = what === "look" ? this.stat(id, IDENTITY) : undefined;
      // Unique IDs count up from 2^32, far below 2^53: a number keeps them exactly.
      if (stat) this.index.add(describe(stat, id, this), Number(id));
      else this.index.remove(Number(id));
    }
  }

  /** List every mount of the namespace and describe each. */
  private listAll(): boolean {
    this.reads++;
    const found: bigint[] = [];
    const page = Buffer.alloc(8 * 512);
    let last = 0n;
    for (;;) {
      this.request(LSMT_ROOT, last);
      const n = mountSyscall(NR_LISTMOUNT, this.req, page, page.length / 8, 0);
      if (n < 0) return false;
      for (let i = 0; i < n; i++) found.push(page.readBigUInt64LE(i * 8));
      if (n < page.length / 8) break;
      last = found[found.length - 1]!;
    }
    const entries: { entry: StatMount; order: number }[] = [];
    for (const id of found.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
      const stat = this.stat(id, IDENTITY);
      if (stat) entries.push({ entry: describe(stat, id, this), order: Number(id) }); // else gone since it was listed
    }
    // A new index: versions handed out before keep the old one, which no longer changes.
    this.index = new MountIndex(entries);
    return true;
  }

  /** statmount of mount `id`: its buffer, or undefined when it is gone. */
  stat(id: bigint, mask: number): Buffer | undefined {
    for (;;) {
      this.request(id, BigInt(mask));
      if (mountSyscall(NR_STATMOUNT, this.req, this.out, this.out.length, 0) >= 0) return this.out;
      const errno = koffi.errno();
      if (errno === ENOENT) return undefined;
      if (errno === EOVERFLOW && this.out.length < 1 << 24) {
        this.out = Buffer.alloc(this.out.length * 4); // strings longer than the buffer (an overlay's layers)
        continue;
      }
      throw new Error(`statmount(2) of mount ${id} failed: errno ${errno}`);
    }
  }

  private request(id: bigint, param: bigint): void {
    this.req.writeUInt32LE(MNT_ID_REQ_SIZE, 0);
    this.req.writeUInt32LE(0, 4);
    this.req.writeBigUInt64LE(id, 8);
    this.req.writeBigUInt64LE(param, 16);
    this.req.writeBigUInt64LE(0n, 24);
  }
}

function str(buf: Buffer, field: number, mask: number, bit: number): string | undefined {
  if ((mask & bit) === 0) return undefined;
  const start = O.str + buf.readUInt32LE(field);
  const end = buf.indexOf(0, start);
  return buf.toString("utf8", start, end < 0 ? undefined : end);
}

/** A mount's entry: what never changes while it is attached, read now; its options, read when asked. */
function describe(buf: Buffer, id: bigint, table: EventTable): StatMount {
  const mask = Number(buf.readBigUInt64LE(O.mask));
  const type = str(buf, O.fsType, mask, SM.fsType) ?? "";
  const subtype = str(buf, O.fsSubtype, mask, SM.fsSubtype);
  const known = {
    id: buf.readUInt32LE(O.mntIdOld),
    parentId: buf.readUInt32LE(O.mntParentIdOld),
    device: `${buf.readUInt32LE(O.devMajor)}:${buf.readUInt32LE(O.devMinor)}`,
    root: str(buf, O.mntRoot, mask, SM.mntRoot) ?? "",
    mountPoint: str(buf, O.mntPoint, mask, SM.mntPoint) ?? "",
    fsType: subtype ? `${type}.${subtype}` : type,
    source: str(buf, O.sbSource, mask, SM.sbSource) || "none",
  };
  return new StatMount(known, id, table, buf.readUInt32LE(O.sbFlags), Number(buf.readBigUInt64LE(O.mntAttr)));
}

// MOUNT_ATTR_* (mnt_attr) and SB_* (sb_flags), and the words mountinfo writes for them, in its order.
const MOUNT_WORDS: [bit: number, word: string][] = [
  [0x2, "nosuid"],
  [0x4, "nodev"],
  [0x8, "noexec"],
];
const ATIME_MASK = 0x70;
const ATIME_WORDS: Record<number, string> = { 0x0: "relatime", 0x10: "noatime" }; // strictatime writes nothing
const NODIRATIME = 0x80;
const NOSYMFOLLOW = 0x200000;
const IDMAP = 0x100000;
const SB_WORDS: [bit: number, word: string][] = [
  [0x10, "sync"],
  [0x80, "dirsync"],
  [0x2000000, "lazytime"],
];

class StatMount implements MountEntry {
  readonly id: number;
  readonly parentId: number;
  readonly device: string;
  readonly root: string;
  readonly mountPoint: string;
  readonly fsType: string;
  readonly source: string;

  constructor(
    known: Omit<MountEntry, "options" | "superOptions">,
    readonly uniqueId: bigint,
    private readonly table: EventTable,
    /** What statmount said when the mount arrived: used if it has gone since. */
    private sbFlags: number,
    private mntAttr: number,
    private sbOptions = "",
  ) {
    this.id = known.id;
    this.parentId = known.parentId;
    this.device = known.device;
    this.root = known.root;
    this.mountPoint = known.mountPoint;
    this.fsType = known.fsType;
    this.source = known.source;
  }

  /** Per-mount options, as mountinfo writes them: a remount changes them without an event, so they are asked now. */
  get options(): string[] {
    this.refresh();
    const a = this.mntAttr;
    const out = [a & 0x1 ? "ro" : "rw"];
    for (const [bit, word] of MOUNT_WORDS) if (a & bit) out.push(word);
    const atime = ATIME_WORDS[a & ATIME_MASK];
    if (atime === "noatime") out.push(atime);
    if (a & NODIRATIME) out.push("nodiratime");
    if (atime === "relatime") out.push(atime);
    if (a & NOSYMFOLLOW) out.push("nosymfollow");
    if (a & IDMAP) out.push("idmapped");
    return out;
  }

  /** The file system's options, as mountinfo writes them after the separator. */
  get superOptions(): string[] {
    this.refresh();
    const out = [this.sbFlags & 0x1 ? "ro" : "rw"];
    for (const [bit, word] of SB_WORDS) if (this.sbFlags & bit) out.push(word);
    if (this.sbOptions !== "") out.push(...this.sbOptions.split(","));
    return out;
  }

  private refresh(): void {
    const buf = this.table.stat(this.uniqueId, SM.sbBasic | SM.mntBasic | SM.mntOpts);
    if (!buf) return;
    const mask = Number(buf.readBigUInt64LE(O.mask));
    this.sbFlags = buf.readUInt32LE(O.sbFlags);
    this.mntAttr = Number(buf.readBigUInt64LE(O.mntAttr));
    this.sbOptions = str(buf, O.mntOpts, mask, SM.mntOpts) ?? "";
  }
}
