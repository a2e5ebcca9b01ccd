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
 * image's space, until reboot. Which device is the volume's is asked of
 * the kernel by the backing file's identity (LOOP_GET_STATUS64), on a
 * descriptor held open meanwhile — a device held open is neither detached
 * nor attached to another file (but for LOOP_CHANGE_FD on a read-only
 * one) — never by name.
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

/**
 * Call `fn` with each of loop devices `ns` that no mount uses and whose file `match` names (an owner, or
 * undefined: not looked at further), held open on `fd` (proven on it) until `fn` returns. Stops at the first
 * for which `fn` returns true.
 */
function eachIdleLoop<T>(ns: readonly number[], match: (b: LoopBacking) => T | undefined, fn: (loop: LoopDevice, fd: number, owner: T) => boolean): void {
  const used = loopsInUse(mountTable());
  for (const n of ns) {
    if (used.has(n)) continue;
    const done = withLoopOpen(n, (loop, fd) => {
      const b = backingOf(fd, loop.path);
      const owner = b && match(b);
      // Opened after the table was read: a bind made in between would show now.
      return owner !== undefined && !loopInUse(n) && fn(loop, fd, owner);
    });
    if (done === true) return;
  }
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

/** A match for eachIdleLoop: attached to `image`, read-only or not as `readOnly` says when given. */
function imageMatch(image: FileIdentity, readOnly?: boolean): (b: LoopBacking) => true | undefined {
  const isImage = backingTest(image);
  return (b) => (isImage(b) && (readOnly === undefined || b.readOnly === readOnly)) || undefined;
}

/**
 * Detach every loop device attached to `image` that no mount uses (a crash
 * between a stage's attach and its bind, or an unstage's unmount and its
 * detach, left it): each detaches as the descriptor it was proven on
 * closes. Returns the devices let go.
 */
export function releaseIdleLoops(image: FileIdentity): LoopDevice[] {
  return releaseIdleLoopsOf(attachedLoops(), imageMatch(image)).map((r) => r.loop);
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
 * releaseIdleLoops for many files at once: detach those of loop devices `ns`
 * that no mount uses and whose file `ownerOf` names, each proven on the
 * descriptor it detaches as. Returns each device let go, with its owner.
 */
export function releaseIdleLoopsOf<T>(ns: readonly number[], ownerOf: (b: LoopBacking) => T | undefined): { loop: LoopDevice; owner: T }[] {
  const released: { loop: LoopDevice; owner: T }[] = [];
  eachIdleLoop(ns, ownerOf, (loop, fd, owner) => {
    detachOnLastClose(fd, loop.path);
    released.push({ loop, owner });
    return false;
  });
  return released;
}

/**
 * A loop device attached to `image` that no mount uses, attached read-only
 * or not as `readOnly` says, to be bound again: `fn` runs with it held open
 * (so it is the image's until `fn` returns). false when there is none.
 */
export function withIdleLoop(image: FileIdentity, readOnly: boolean, fn: (loop: LoopDevice, fd: number) => void): boolean {
  let found = false;
  eachIdleLoop(attachedLoops(), imageMatch(image, readOnly), (loop, fd) => {
    fn(loop, fd);
    return (found = true);
  });
  return found;
}
