/**
 * Telling a slow copy from a stuck one.
 *
 * A copy has no deadline of its own: a big one may take as long as it takes
 * (copy-content.ts). But a copy to or from an NFS share whose server has
 * gone never ends either: cp, or the `sync` that flushes the copy, sleeps
 * in the kernel for as long as the server is away, and the call that runs
 * it would hold its locks for as long. The difference is movement. A copy
 * that works reads and writes, and each wait for the server ends in a
 * wake-up; a stuck one does neither. So while a tool runs, this samples,
 * from /proc and /sys only (never the share itself, where a stat could
 * hang too):
 *
 *   - the tool's own I/O: bytes and calls it read and wrote (/proc/PID/io);
 *   - how often it was switched out (/proc/PID/status): every wait that
 *     ends, on the server or a disk, is one; and the CPU time it used
 *     (/proc/PID/stat), for work done in one long system call;
 *   - the I/O that completed on the file systems it works on: an NFS
 *     mount's byte counts and RPCs answered (/proc/self/mountstats), a
 *     disk's reads, writes and flushes completed (/sys/dev/block/M:m/stat).
 *     A flush waits in one long sleep while the kernel writes on its
 *     behalf; this is what moves meanwhile.
 *
 * When none of it changed for `afterMs`, the tool is taken for stuck.
 * Others' I/O on the same file system counts as movement: it can only
 * delay the verdict, and only while the file system is answering.
 */
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { mountTable, type MountEntry } from "../mount/mountinfo";

/**
 * Watch process `pid`, working on `paths`; call `stalled` once nothing
 * moved for `afterMs`. Returns a function that stops watching.
 */
export function watchForStall(pid: number, paths: readonly string[], afterMs: number, stalled: () => void): () => void {
  const mounts = paths.map((p) => mountTable().containing(p)).filter((m): m is MountEntry => m !== undefined);
  let last = sample(pid, mounts);
  let since = performance.now();
  const timer = setInterval(
    () => {
      const now = sample(pid, mounts);
      if (now === undefined || now !== last) {
        last = now;
        since = performance.now();
      } else if (performance.now() - since >= afterMs) {
        clearInterval(timer);
        stalled();
      }
    },
    Math.max(20, Math.min(1000, afterMs / 5)),
  );
  return () => clearInterval(timer);
}

/** Everything that moves when the tool gets on; undefined when the tool is gone (its exit is on its way). */
function sample(pid: number, mounts: readonly MountEntry[]): string | undefined {
  let own: string;
  try {
    const switches = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").filter((l) => l.includes("ctxt_switches"));
    // After the command's name (which may hold anything): state, …; utime and stime are the 12th and 13th fields.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const cpu = stat.slice(stat.lastIndexOf(")") + 2).split(" ").slice(11, 13);
    own = [readFileSync(`/proc/${pid}/io`, "utf8"), ...switches, ...cpu].join("\n");
  } catch {
    return undefined;
  }
  return [own, ...mounts.map(fileSystemIo)].join("\n");
}

/** I/O completed on the file system of mount `m`: its disk's counters, or an NFS mount's; "" when it has neither. */
function fileSystemIo(m: MountEntry): string {
  if (m.fsType === "nfs" || m.fsType === "nfs4") return nfsIo(readText("/proc/self/mountstats"), m.mountPoint);
  if (m.device.startsWith("0:")) return ""; // no block device (tmpfs, btrfs…): the tool's own counters say it all
  // reads, sectors read, writes, sectors written [, discards, sectors discarded, flushes]: completed only (in flight and time spent grow while stuck).
  const fields = readText(`/sys/dev/block/${m.device}/stat`).trim().split(/\s+/);
  return [0, 2, 4, 6, 11, 13, 15].map((i) => fields[i] ?? "").join(" ");
}

/**
 * An NFS mount's completed I/O, from /proc/self/mountstats: its "bytes:"
 * line and the count of each RPC answered (the first number of each
 * per-op line). Not the events, nor the transport's counters: those count
 * tries too, and go on growing while the server is away.
 */
export function nfsIo(mountstats: string, mountPoint: string): string {
  const escaped = mountPoint.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);
  const start = mountstats.indexOf(` mounted on ${escaped} with fstype nfs`);
  if (start < 0) return "";
  const end = mountstats.indexOf("\ndevice ", start);
  const block = mountstats.slice(start, end < 0 ? undefined : end).split("\n");
  const ops = block.slice(block.findIndex((l) => l.trim() === "per-op statistics") + 1);
  return [
    block.find((l) => l.trim().startsWith("bytes:")) ?? "",
    ...ops.map((l) => /^\s*[A-Z0-9_]+:\s+(\d+)/.exec(l)?.[1] ?? ""),
  ].join(" ");
}

function readText(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}
