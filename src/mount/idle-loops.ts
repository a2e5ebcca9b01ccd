/**
 * A block volume's loop devices that nothing uses any more.
 *
 * A block volume's loop device is kept attached by clearing AUTOCLEAR
 * (loop.ts: keepAttached) before its node is bound, and told to detach on
 * its last close (detachOnLastClose) only after its last bind is gone: a
 * device detached under a bind would leave the bind naming whatever file
 * the next attach on the node gives that number. A driver killed between
 * those steps therefore leaves a device attached that nothing binds: it
 * holds the volume's image, and nothing else. The next stage takes it back
 * (withIdleLoop); an unstage, an unpublish and a delete let it go
 * (releaseIdleLoops); and the driver's next start lets go of every volume's
 * at once, before any call (releaseIdleLoopsOf, from idleLoopBackings: one
 * look at each attached device; ../backends/hostpath/leaked-loops.ts), so
 * a volume that gets no further call does not keep its device, and its
 * image's space, until reboot. The calls on one volume look only at the
 * devices noted for it when they were attached (LoopNotes), not at every
 * device on the node: their cost does not grow with the node's devices.
 * Which device is the volume's is asked of the kernel by the backing
 * file's identity (LOOP_GET_STATUS64), on a descriptor held open
 * meanwhile — a device held open is neither detached nor attached to
 * another file (but for LOOP_CHANGE_FD on a read-only one) — never by
 * name, nor by note.
 */
import { closeSync, readdirSync } from "node:fs";
import {
  backingOf,
  backingTest,
  detachOnLastClose,
  loopDevice,
  loopNumberOfDevice,
  loopNumberOfNode,
  openLoop,
  type FileIdentity,
  type LoopBacking,
  type LoopDevice,
} from "./loop";
import { mountTable, type Mounts } from "./mountinfo";

/** The loop devices some mount uses: a file system on one, or a bind of its node (root "/loopN", whatever /dev it came from). */
function loopsInUse(table: Mounts): Set<number> {
  const used = new Set<number>();
  for (const m of table.list) {
    const n = loopNumberOfNode(m.root) ?? (m.device.startsWith("7:") ? loopNumberOfDevice(m.device) : undefined);
    if (n !== undefined) used.add(n);
  }
  return used;
}

/** Is loop device N used by a mount now (the table read afresh)? */
export function loopInUse(n: number): boolean {
  return loopsInUse(mountTable()).has(n);
}

/** The loop devices attached to a file now, by sysfs (only a candidate list: each is proven on its descriptor). */
function attachedLoops(): number[] {
  let names: string[];
  try {
    names = readdirSync("/sys/block");
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const name of names) {
    const m = /^loop(\d+)$/.exec(name);
    if (!m) continue;
    try {
      readdirSync(`/sys/block/${name}/loop`); // present only while the device is attached
      out.push(Number(m[1]));
    } catch {
      // free
    }
  }
  return out;
}

/** Run `fn` on loop device `n` held open; undefined where its node cannot be opened (then it is not known to be anyone's). */
function withLoopOpen<T>(n: number, fn: (loop: LoopDevice, fd: number) => T): T | undefined {
  const loop = loopDevice(n);
  let fd: number;
  try {
    fd = openLoop(loop);
  } catch {
    return undefined;
  }
  try {
    return fn(loop, fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * The loop devices the driver attached to one volume's image, noted as each was attached, before it
 * could outlive the call (../backends/hostpath/loop-notes.ts): where that volume's idle devices are
 * looked for. A note is only a candidate; a device is the volume's when proven so.
 */
export interface LoopNotes {
  /** The devices noted (none when nothing was). */
  list(): number[];
  /** Note device `n`, attached to the volume's image: before AUTOCLEAR is cleared on it. */
  add(n: number): void;
  /** Forget device `n`: asked to detach, or proven no longer attached to the volume's image. */
  forget(n: number): void;
}

/**
 * Call `fn` with each of the devices noted in `notes` that no mount uses and that is attached to `image`, held
 * open on `fd` (proven on it) until `fn` returns, until `fn` returns true. A noted device proven attached to no
 * file or to another is forgotten (a crash after its detach left the note); one that cannot be opened is kept.
 */
function eachIdleNotedLoop(image: FileIdentity, notes: LoopNotes, fn: (loop: LoopDevice, fd: number, b: LoopBacking) => boolean): void {
  const ns = notes.list();
  if (ns.length === 0) return;
  const isImage = backingTest(image);
  const used = loopsInUse(mountTable());
  for (const n of ns) {
    if (used.has(n)) continue;
    const done = withLoopOpen(n, (loop, fd) => {
      const b = backingOf(fd, loop.path);
      if (!b || !isImage(b)) {
        notes.forget(n);
        return false;
      }
      // Opened after the table was read: a bind made in between would show now.
      return !loopInUse(n) && fn(loop, fd, b);
    });
    if (done === true) return;
  }
}

/**
 * Detach every noted loop device attached to `image` that no mount uses (a crash
 * between a stage's attach and its bind, or an unstage's unmount and its
 * detach, left it): each detaches as the descriptor it was proven on
 * closes, and is forgotten. Returns the devices let go.
 */
export function releaseIdleLoops(image: FileIdentity, notes: LoopNotes): LoopDevice[] {
  const released: LoopDevice[] = [];
  eachIdleNotedLoop(image, notes, (loop, fd) => {
    detachOnLastClose(fd, loop.path);
    notes.forget(loop.number);
    released.push(loop);
    return false;
  });
  return released;
}

/**
 * The attached loop devices that no mount uses, each with what it is attached
 * to — asked on a descriptor closed again, so only a list of candidates for
 * releaseIdleLoopsOf, which proves each again. One look at each device.
 */
export function idleLoopBackings(): { n: number; backing: LoopBacking }[] {
  const used = loopsInUse(mountTable());
  const out: { n: number; backing: LoopBacking }[] = [];
  for (const n of attachedLoops()) {
    if (used.has(n)) continue;
    const backing = withLoopOpen(n, (loop, fd) => backingOf(fd, loop.path));
    if (backing) out.push({ n, backing });
  }
  return out;
}

/**
 * releaseIdleLoops for many files at once, at start-up: detach those of loop
 * devices `ns` that no mount uses and whose file `ownerOf` names, each proven
 * on the descriptor it detaches as. Returns each device let go, with its owner.
 */
export function releaseIdleLoopsOf<T>(ns: readonly number[], ownerOf: (b: LoopBacking) => T | undefined): { loop: LoopDevice; owner: T }[] {
  const released: { loop: LoopDevice; owner: T }[] = [];
  const used = loopsInUse(mountTable());
  for (const n of ns) {
    if (used.has(n)) continue;
    withLoopOpen(n, (loop, fd) => {
      const b = backingOf(fd, loop.path);
      const owner = b && ownerOf(b);
      // Opened after the table was read: a bind made in between would show now.
      if (owner === undefined || loopInUse(n)) return;
      detachOnLastClose(fd, loop.path);
      released.push({ loop, owner });
    });
  }
  return released;
}

/**
 * A noted loop device attached to `image` that no mount uses, attached
 * read-only or not as `readOnly` says, to be bound again: `fn` runs with it
 * held open (so it is the image's until `fn` returns). false when there is none.
 */
export function withIdleLoop(image: FileIdentity, readOnly: boolean, notes: LoopNotes, fn: (loop: LoopDevice, fd: number) => void): boolean {
  let found = false;
  eachIdleNotedLoop(image, notes, (loop, fd, b) => {
    if (b.readOnly !== readOnly) return false;
    fn(loop, fd);
    return (found = true);
  });
  return found;
}
