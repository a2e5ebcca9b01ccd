/**
 * Holding volumes still while they are copied.
 *
 * A snapshot or clone of a volume that a pod is using must hold what the
 * pod wrote before the call. How that is reached depends on the layout:
 *
 *   dir, quota  The copy reads the files through the kernel, which answers
 *               from the page cache: every file complete when the copier
 *               reaches it is copied as written, synced or not. Files
 *               written during the copy may be caught half-way (a copy of
 *               files in use is crash-consistent file by file, not across
 *               files); nothing here can stop writers to a directory
 *               without stopping the node's own file system.
 *   image       The copy reads the image file, under the volume's own file
 *               system, which may still hold the last writes in memory —
 *               copied as is, that is a file system with none of them, or
 *               a torn one. So the file system is frozen (mount/freeze.ts)
 *               for the copy: flushed to a consistent, clean point and
 *               every writer held until the copy of the image is made.
 *   block       No file system to freeze: the device's cached writes are
 *               flushed (fsync) before its image is copied, so the copy
 *               holds every write completed before the call. Writes during
 *               the copy may or may not be in it; where the image can be
 *               reflinked (XFS; not btrfs, whose image files are
 *               no-copy-on-write) the copy is one atomic clone, so it is
 *               crash-consistent.
 *
 * A freeze stops writers, so it is short and bounded. Before freezing, the
 * file system is synced (writers go on meanwhile), so the freeze itself
 * has little left to write. It lasts at most until the call's deadline,
 * and never more than MAX_FREEZE_MS: then the file system is thawed at
 * once and the copy, killed, fails the call. A group of volumes is frozen
 * all together before any is copied, so the copies are one point in time.
 *
 * A freeze must never outlive the copy, whatever happens to the driver:
 *   - every path out of holdStill thaws (errors, deadline, cancellation);
 *   - a watchdog process thaws the same file systems if the driver dies
 *     or stalls past the limit (mount/freeze.ts);
 *   - a marker naming the file systems is written, durably, before the
 *     freeze and removed after the thaw; the start-up sweep
 *     (thawLeftovers) thaws whatever a marker still names.
 * A file system someone else froze (FIFREEZE answers EBUSY) is copied as
 * it is and left frozen, crash or not: the watchdog is told to spare it
 * and the marker is rewritten without it.
 */
import { randomBytes } from "node:crypto";
import { closeSync, promises as fsp, realpathSync } from "node:fs";
import * as path from "node:path";
import { failedPrecondition } from "../csi/errors";
import { flushBlockDevice, freezeFs, openMountedFs, startThawWatchdog, syncFs, thawFs } from "../mount/freeze";
import { backingFile, isReadOnlyLoop, loopDevice, loopNumberOfDevice } from "../mount/loop";
import { mountTable } from "../mount/mountinfo";
import { mountsOfImage } from "../mount/volume-mounts";
import { writeFileAtomic } from "./atomic-file";
import type { Content } from "./copy-content";

/** The longest a volume's file system is held frozen for one copy. */
export const MAX_FREEZE_MS = 30_000;
/** The watchdog waits this much longer than the driver's own limit before it thaws. */
const WATCHDOG_GRACE_MS = 5_000;

export interface HoldLog {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
}

export interface HoldOptions {
  /** Where the durable "frozen" markers are kept. */
  markersDir: string;
  /** The call's signal: when its deadline passes or the client cancels, the hold ends. Read only if something is frozen. */
  readonly signal?: AbortSignal;
  log?: HoldLog;
  /** Override MAX_FREEZE_MS (tests). */
  maxFreezeMs?: number;
}

/** A mounted file system of an image volume, as a marker names it. */
interface FsRef {
  image: string;
  /** "major:minor" of its loop device. */
  device: string;
  mountPoint: string;
}

interface Held extends FsRef {
  fd: number;
  state: "open" | "frozen" | "not ours" | "unfreezable" | "thawed" | "thaw failed";
  thawing?: Promise<void>;
}

/** What must be held for a copy of `contents`: file systems to freeze, devices to flush. */
function findTargets(contents: readonly Content[]): { filesystems: FsRef[]; devices: string[] } {
  const filesystems: FsRef[] = [];
  const devices: string[] = [];
  const wanted = contents.filter((c) => c.live && c.layout !== "dir");
  if (wanted.length === 0) return { filesystems, devices };
  const table = mountTable();
  for (const c of wanted) {
    // The loops of the file the backend names (a volume's recorded image), not of a file swapped in at its name: never someone else's to freeze.
    const vm = mountsOfImage(c.image ? c.image() : c.path, table);
    if (c.layout === "block") {
      for (const n of vm.loops) if (!isReadOnlyLoop(n)) devices.push(loopDevice(n).path);
      continue;
    }
    const seen = new Set<string>();
    for (const m of vm.mounts) {
      // Loop devices are major 7; a file system mounted read-only cannot change.
      if (!m.device.startsWith("7:") || m.superOptions.includes("ro") || seen.has(m.device)) continue;
      seen.add(m.device);
      // By name (a pinned volume's descriptor link would mean nothing after a crash): the sweep compares it with the loop's file.
      filesystems.push({ image: c.origin ?? c.path, device: m.device, mountPoint: m.mountPoint });
    }
  }
  return { filesystems, devices };
}

/**
 * Run `copy` with `contents` held still (see the top of this file). The
 * signal given to `copy` aborts when the hold must end before the copy
 * has: the copy must then stop (its result would not be consistent).
 */
export async function holdStill<T>(contents: readonly Content[], opts: HoldOptions, copy: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const { filesystems, devices } = findTargets(contents);
  for (const dev of devices) await flushBlockDevice(dev);
  if (filesystems.length === 0) return copy(new AbortController().signal); // nothing frozen: nothing to bound
  const limitMs = opts.maxFreezeMs ?? MAX_FREEZE_MS;

  const held: Held[] = [];
  const marker = path.join(opts.markersDir, `${randomBytes(8).toString("hex")}.json`);
  let watchdog: Awaited<ReturnType<typeof startThawWatchdog>> | undefined;
  let timer: NodeJS.Timeout | undefined;
  let syncMs = 0;
  let frozenAt: bigint | undefined;
  const thawAll = () => Promise.all(held.map((h) => thaw(h, opts.log)));
  try {
    for (const fs of filesystems) held.push({ ...fs, fd: openMountedFs(fs.mountPoint, fs.device), state: "open" });
    const t = process.hrtime.bigint();
    for (const h of held) await syncFs(h.fd, h.mountPoint); // the bulk of the flushing, while writers go on
    syncMs = elapsedMs(t);

    const writeMarker = (named: readonly FsRef[]) =>
      writeFileAtomic(marker, JSON.stringify({ pid: process.pid, since: new Date().toISOString(), filesystems: named }) + "\n");
    await writeMarker(filesystems);
    watchdog = await startThawWatchdog(
      held.map((h) => h.fd),
      limitMs + WATCHDOG_GRACE_MS,
    );
    const limit = new AbortController();
    const signal = opts.signal ? AbortSignal.any([opts.signal, limit.signal]) : limit.signal;
    const overrun = () => {
      limit.abort(
        failedPrecondition(
          `the copy did not finish within the ${Math.round(limitMs / 1000)} s a volume in use may be held frozen; ` +
            "retry when the node is less busy, or stop the workload (unpublish the volume) so the copy needs no freeze",
        ),
      );
    };
    timer = setTimeout(overrun, limitMs);
    signal.addEventListener("abort", () => void thawAll(), { once: true });
    if (signal.aborted) throw signal.reason;

    frozenAt = process.hrtime.bigint();
    for (const h of held) {
      try {
        await freezeFs(h.fd, h.mountPoint);
        h.state = "frozen";
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // Frozen by someone else (an admin's fsfreeze): consistent already, and not ours to thaw.
        if (code === "EBUSY") h.state = "not ours";
        else if (code === "EOPNOTSUPP" || code === "ENOTTY") {
          h.state = "unfreezable";
          opts.log?.warn("this file system cannot be frozen; copying it as synced a moment ago", { mountPoint: h.mountPoint });
        } else throw err;
      }
      if (signal.aborted) throw signal.reason;
    }
    // Someone else's freeze must outlive us, crash or not: off the watchdog's list and the marker.
    const theirs = held.filter((h) => h.state === "not ours");
    if (theirs.length > 0) {
      watchdog.spare(theirs.map((h) => h.fd));
      await writeMarker(held.filter((h) => h.state !== "not ours").map(({ image, device, mountPoint }) => ({ image, device, mountPoint })));
    }
    return await copy(signal);
  } finally {
    clearTimeout(timer);
    await thawAll();
    // What a writer saw: from the first FIFREEZE to the last FITHAW.
    const frozenMs = frozenAt === undefined ? 0 : elapsedMs(frozenAt);
    const thawed = held.every((h) => h.state !== "frozen" && h.state !== "thaw failed");
    await watchdog?.release(thawed);
    for (const h of held) closeSync(h.fd);
    if (thawed) await fsp.rm(marker, { force: true }); // else the start-up sweep tries too
    if (held.length > 0) {
      opts.log?.info("held volumes still for a copy", {
        filesystems: held.map((h) => ({ volume: path.basename(h.image), state: h.state })),
        syncMs,
        frozenMs,
      });
    }
  }
}

async function thaw(h: Held, log: HoldLog | undefined): Promise<void> {
  if (h.state === "frozen") {
    h.state = "thawed";
    h.thawing = thawFs(h.fd, h.mountPoint).then(
      () => undefined,
      (err: unknown) => {
        h.state = "thaw failed";
        log?.warn("could not thaw a file system; the watchdog will try", { mountPoint: h.mountPoint, error: String(err) });
      },
    );
  }
  await h.thawing;
}

function elapsedMs(since: bigint): number {
  return Math.round(Number(process.hrtime.bigint() - since) / 1e4) / 100;
}

/**
 * The start-up sweep: thaw every file system a marker still names (a
 * driver killed mid-copy), if it is still mounted from the same image,
 * then drop the markers. Returns what was thawed, for the log.
 */
export async function thawLeftovers(markersDir: string): Promise<string[]> {
  const thawed: string[] = [];
  for (const name of await fsp.readdir(markersDir)) {
    const file = path.join(markersDir, name);
    let refs: FsRef[] = [];
    try {
      refs = (JSON.parse(await fsp.readFile(file, "utf8")) as { filesystems?: FsRef[] }).filesystems ?? [];
    } catch {
      // a marker cut short by a crash: it was written before any freeze
    }
    for (const ref of refs) {
      const n = loopNumberOfDevice(ref.device);
      const image = realOrUndefined(ref.image);
      if (n === undefined || image === undefined || backingFile(n) !== image) continue; // not mounted any more: nothing is frozen
      const m = mountTable().onDevice(ref.device)[0];
      if (!m) continue;
      const fd = openMountedFs(m.mountPoint, ref.device);
      try {
        if (await thawFs(fd, m.mountPoint)) thawed.push(m.mountPoint);
      } finally {
        closeSync(fd);
      }
    }
    await fsp.rm(file, { force: true });
  }
  return thawed;
}

function realOrUndefined(p: string): string | undefined {
  try {
    return realpathSync(p);
  } catch {
    return undefined;
  }
}
