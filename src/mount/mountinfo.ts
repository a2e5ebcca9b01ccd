/**
 * What is mounted where, as the kernel says.
 *
 * /proc/self/mountinfo lists every mount in this process's mount namespace,
 * one line each: ids, the device (major:minor), the directory inside that
 * device's file system that is mounted ("root"; for a bind mount, the bound
 * directory), the mount point, per-mount options, and after a "-" the file
 * system type, the source and the super-block options. Reading it on every
 * call, instead of remembering what we mounted, means a driver restart or a
 * mount made by someone else can never leave us believing something false.
 */
import { closeSync, openSync, readFileSync, readSync } from "node:fs";
import { libc } from "./libc";
import { EventTable } from "./mount-events";
import { isAtOrBelow, type FsLocation, type Mounts } from "./mount-index";

export { locate, type FsLocation, type Mounts } from "./mount-index";

export interface MountEntry {
  id: number;
  parentId: number;
  /** "major:minor" of the file system. */
  device: string;
  /** Path inside the file system that is mounted here. */
  root: string;
  mountPoint: string;
  /** Per-mount options, e.g. ["rw", "nosuid", "relatime"]. */
  options: string[];
  fsType: string;
  source: string;
  superOptions: string[];
}

// Paths in mountinfo escape space, tab, newline and backslash as \ooo.
function unescape(s: string): string {
  if (!s.includes("\\")) return s; // the common case, and most of parsing's time otherwise
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/**
 * Parse mountinfo's text. Lookups compare a mount's device, root and mount
 * point, so those three are cut out of each line at once; the other
 * fields are read from the line the first time someone asks. On a node
 * with a thousand mounts that makes a parse about three times cheaper
 * (0.23 ms against 0.75 ms), and every node call reads the table.
 */
export function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (let start = 0; start < text.length; ) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end);
    start = end + 1;
    // id parentId major:minor root mountPoint options [optional…] - fsType source superOptions
    const s0 = line.indexOf(" ");
    const s1 = line.indexOf(" ", s0 + 1);
    const s2 = s1 < 0 ? -1 : line.indexOf(" ", s1 + 1);
    const s3 = s2 < 0 ? -1 : line.indexOf(" ", s2 + 1);
    const s4 = s3 < 0 ? -1 : line.indexOf(" ", s3 + 1);
    const s5 = s4 < 0 ? -1 : line.indexOf(" ", s4 + 1);
    if (s5 < 0) continue;
    const dash = line.indexOf(" - ", s5);
    if (dash < 0 || line.indexOf(" ", dash + 3) < 0) continue; // no separator, or no source after the type
    out.push(new MountLine(line, line.slice(s1 + 1, s2), unescape(line.slice(s2 + 1, s3)), unescape(line.slice(s3 + 1, s4))));
  }
  return out;
}

/** One line of mountinfo: device, root and mount point at once, the rest when asked. */
class MountLine implements MountEntry {
  private rest: Pick<MountEntry, "id" | "parentId" | "options" | "fsType" | "source" | "superOptions"> | undefined;

  constructor(
    private readonly line: string,
    readonly device: string,
    readonly root: string,
    readonly mountPoint: string,
  ) {}

  get id(): number {
    return this.more().id;
  }
  get parentId(): number {
    return this.more().parentId;
  }
  get options(): string[] {
    return this.more().options;
  }
  get fsType(): string {
    return this.more().fsType;
  }
  get source(): string {
    return this.more().source;
  }
  get superOptions(): string[] {
    return this.more().superOptions;
  }

  private more(): NonNullable<MountLine["rest"]> {
    if (this.rest) return this.rest;
    const parts = this.line.split(" ");
    const dash = parts.indexOf("-", 6);
    return (this.rest = {
      id: Number(parts[0]),
      parentId: Number(parts[1]),
      options: parts[5]!.split(","),
      fsType: parts[dash + 1]!,
      source: unescape(parts[dash + 2]!),
      superOptions: (parts[dash + 3] ?? "").split(","),
    });
  }
}

/**
 * The current mount table, never older than the call, indexed for lookups
 * (mount-index.ts).
 *
 * Where the kernel can report each mount attached or detached (Linux 6.15:
 * mount-events.ts), the table is listed once and kept current from those
 * reports; a call then costs the same however many mounts the node has.
 * Elsewhere it is read from mountinfo as below.
 *
 * Reading and parsing mountinfo costs time that grows with the number of
 * mounts, and most calls would read it several times. The kernel says when
 * it changed: poll(2) on an open mountinfo reports POLLPRI once after every
 * change to the namespace's mounts (each poll consumes the news). So the
 * table is parsed again only when a poll, with no waiting, says so: a
 * change after that poll is reported by the next one, and a read after a
 * poll sees at least what the poll saw. The result is shared between
 * callers and never changes.
 */
export function mountTable(): Mounts {
  table ??= openEventTable() ?? new MountTable();
  if (table instanceof EventTable) {
    try {
      return table.read();
    } catch {
      // The event queue or statmount failed in a way they never should (a closed
      // descriptor, an errno no kernel gives here): the text cannot be wrong. The
      // descriptor is not closed: if something else closed it, its number may be
      // another file's by now; a queue no one reads stops at its limit. The count of
      // whole reads goes on from the event table's: a Prometheus counter never goes back.
      const reads = table.reads;
      table = new MountTable();
      table.reads = reads;
    }
  }
  return table.read();
}

/** Every mount, in mountinfo's order: the current table as a list (the same list while nothing changed). */
export function readMountInfo(): readonly MountEntry[] {
  return mountTable().list;
}

/**
 * A table kept by events, checked once before it is trusted: the same mounts
 * in the same order as the text, each with the same IDs, device, root, mount
 * point, type and source (its options are asked of the kernel when read). A
 * kernel whose listmount or statmount answers differently from the one this
 * was written against is read as text instead. (A few tries: a mount made
 * between the two reads is no difference.)
 */
function openEventTable(): EventTable | undefined {
  const t = EventTable.open();
  if (!t) return undefined;
  const key = (m: MountEntry) => [m.id, m.parentId, m.device, m.root, m.mountPoint, m.fsType, m.source].join("\0");
  for (let attempt = 0; attempt < 3; attempt++) {
    const kept = t.read().list.map(key);
    const text = parseMountInfo(readFileSync("/proc/self/mountinfo", "utf8")).map(key);
    if (kept.length === text.length && kept.every((k, i) => k === text[i])) return t;
  }
  t.close();
  return undefined;
}

/**
 * How this process knows its mount table: "events" (kept by the kernel's
 * reports) or "mountinfo" (read as text); undefined before its first read.
 */
export function mountTableSource(): "events" | "mountinfo" | undefined {
  return table === undefined ? undefined : table instanceof EventTable ? "events" : "mountinfo";
}

/**
 * How many times this process has had the kernel hand over the whole
 * table (reads answered from the unchanged copy, or kept current by mount
 * events, are not counted): what csi_lab_mount_table_reads_total reports.
 */
export function mountTableReads(): number {
  return table?.reads ?? 0;
}

const POLLPRI = 0x2;
const POLLERR = 0x8;
const pollFn = libc.func("int poll(_Inout_ uint8_t *fds, unsigned long nfds, int timeout)") as (fds: Buffer, n: number, timeout: number) => number;

class MountTable {
  private fd: number | undefined;
  private entries: Mounts = new ListMounts([]);
  /** struct pollfd { int fd; short events; short revents; } */
  private readonly pollfd = Buffer.alloc(8);
  private chunk = Buffer.allocUnsafe(64 * 1024);
  reads = 0;

  read(): Mounts {
    if (this.fd === undefined) {
      this.fd = openSync("/proc/self/mountinfo", "r");
      this.pollfd.writeInt32LE(this.fd, 0);
      this.pollfd.writeInt16LE(POLLPRI, 4);
      this.entries = this.parseAll();
      return this.entries;
    }
    this.pollfd.writeInt16LE(0, 6);
    const n = pollFn(this.pollfd, 1, 0);
    if (n !== 0 && (this.pollfd.readInt16LE(6) & (POLLPRI | POLLERR)) !== 0) this.entries = this.parseAll();
    else if (n < 0) this.entries = this.parseAll(); // poll failed: trust nothing cached
    return this.entries;
  }

  private parseAll(): Mounts {
    this.reads++;
    const fd = this.fd!;
    const parts: Buffer[] = [];
    let pos = 0;
    for (;;) {
      const n = readSync(fd, this.chunk, 0, this.chunk.length, pos);
      if (n === 0) break;
      parts.push(Buffer.from(this.chunk.subarray(0, n)));
      pos += n;
    }
    return new ListMounts(parseMountInfo(Buffer.concat(parts).toString("utf8")));
  }
}


/**
 * Did any mount of this namespace change since the watch began? One open of
 * mountinfo, then a poll(2) per question with no waiting, and nothing read:
 * the cost is the same however many mounts the node has. The kernel counts
 * every mount and unmount in a namespace (those propagated into it too), an
 * open file of mountinfo starts from the count at its open, and each poll
 * reports POLLPRI when the count moved since the file's last poll. (Setting
 * a mount's expiry mark, umount2 with MNT_EXPIRE, changes nothing there.)
 * So "no" means the mounts are as they were when the watch began, or at
 * the last "yes". undefined where mountinfo cannot be opened: ask the table.
 */
export interface MountChangeWatch {
  changed(): boolean;
  close(): void;
}

export function watchMountChanges(): MountChangeWatch | undefined {
  let fd: number;
  try {
    fd = openSync("/proc/self/mountinfo", "r");
  } catch {
    return undefined;
  }
  const pollfd = Buffer.alloc(8);
  pollfd.writeInt32LE(fd, 0);
  pollfd.writeInt16LE(POLLPRI, 4);
  return {
    changed() {
      pollfd.writeInt16LE(0, 6);
      // 1: POLLPRI (and POLLERR), a change; -1: poll failed, so trust nothing.
      return pollFn(pollfd, 1, 0) !== 0;
    },
    close() {
      closeSync(fd);
    },
  };
}

let table: EventTable | MountTable | undefined;

/**
 * A table read as text: lookups look at every mount. It is parsed again
 * after every change, and a call makes only a few lookups on each parse,
 * so building an index (mount-index.ts) would cost more than it saves.
 */
export class ListMounts implements Mounts {
  constructor(readonly list: readonly MountEntry[]) {}

  at(mountPoint: string): MountEntry | undefined {
    const entries = this.list;
    for (let i = entries.length - 1; i >= 0; i--) {
      if (entries[i]!.mountPoint === mountPoint) return entries[i];
    }
    return undefined;
  }

  containing(path: string): MountEntry | undefined {
    // Every call looks at every mount, so the test is ordered to reject most of them
    // cheaply (a shorter mount point than the best so far cannot win) and allocates nothing.
    let best: MountEntry | undefined;
    let bestLength = -1;
    for (const e of this.list) {
      const mp = e.mountPoint;
      if (mp.length < bestLength || !path.startsWith(mp)) continue;
      // mp is a prefix: it contains `path` if it is the whole of it, or ends where a component does.
      if (path.length === mp.length || mp.endsWith("/") || path.charCodeAt(mp.length) === 0x2f) {
        best = e;
        bestLength = mp.length;
      }
    }
    return best;
  }

  of(loc: FsLocation): MountEntry[] {
    return this.list.filter((e) => e.device === loc.device && e.root === loc.root);
  }

  onDevice(device: string): MountEntry[] {
    return this.list.filter((e) => e.device === device);
  }

  withSource(source: string): MountEntry[] {
    return this.list.filter((e) => e.source === source);
  }

  onLoopDevices(): MountEntry[] {
    return this.list.filter((e) => e.device.startsWith("7:"));
  }

  inside(path: string): MountEntry[] {
    return this.list.filter((e) => isAtOrBelow(e.mountPoint, path));
  }
}
