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
 * (idleLoopOf); an unstage, an unpublish and a delete let it go
 * (releaseIdleLoops). Which device is the volume's is asked of the kernel
 * by the backing file's identity (LOOP_GET_STATUS64), on a descriptor held
 * open meanwhile — a device held open is neither detached nor attached to
 * another file — never by name.
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
 * Call `fn` with each loop device attached to `image` that no mount uses,
 * held open on `fd` (proven on it to be the image's, attached read-only or
 * not as `readOnly` says when given) until `fn` returns. Stops at the first
 * for which `fn` returns true.
 */
function eachIdleLoop(image: FileIdentity, readOnly: boolean | undefined, fn: (loop: LoopDevice, fd: number) => boolean): void {
  const isImage = backingTest(image);
  const used = loopsInUse(mountTable());
  for (const n of attachedLoops()) {
    if (used.has(n)) continue;
    const loop = loopDevice(n);
    let fd: number;
    try {
      fd = openLoop(loop);
    } catch {
      continue; // no node to ask: not known to be the image's
    }
    try {
      const b = backingOf(fd, loop.path);
      if (!b || !isImage(b) || (readOnly !== undefined && b.readOnly !== readOnly)) continue;
      // Opened after the table was read: a bind made in between would show now.
      if (loopInUse(n)) continue;
      if (fn(loop, fd)) return;
    } finally {
      closeSync(fd);
    }
  }
}

/**
 * Detach every loop device attached to `image` that no mount uses (a crash
 * between a stage's attach and its bind, or an unstage's unmount and its
 * detach, left it): each detaches as the descriptor it was proven on
 * closes. Returns the devices let go.
 */
export function releaseIdleLoops(image: FileIdentity): LoopDevice[] {
  const released: LoopDevice[] = [];
  eachIdleLoop(image, undefined, (loop, fd) => {
    detachOnLastClose(fd, loop.path);
    released.push(loop);
    return false;
  });
  return released;
}

/**
 * A writable loop device attached to `image` that no mount uses, to be
 * bound again: `fn` runs with it held open (so it is the image's until
 * `fn` returns). false when there is none.
 */
export function withIdleLoop(image: FileIdentity, fn: (loop: LoopDevice, fd: number) => void): boolean {
  let found = false;
  eachIdleLoop(image, false, (loop, fd) => {
    fn(loop, fd);
    return (found = true);
  });
  return found;
}
