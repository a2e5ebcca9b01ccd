/**
 * A hook that lets someone watch mount and unmount calls.
 *
 * How long mounts take is worth knowing in production: a bind mount is
 * tens of microseconds, an NFS mount can hang for minutes. This module
 * only times the calls and hands each result to whoever registered an
 * observer (the metrics layer does, when --metrics-address is given);
 * src/mount stays free of any metrics library. With no observer the cost
 * is one clock read per call.
 */

/** What was done: mount(2) with MS_BIND, a bind remount, another mount, unmount. */
export type MountOperation = "bind" | "remount" | "mount" | "unmount";

export interface MountObservation {
  operation: MountOperation;
  seconds: number;
  ok: boolean;
}

export type MountObserver = (o: MountObservation) => void;

let observer: MountObserver | undefined;

/** Register the one observer (or remove it with undefined). */
export function setMountObserver(fn: MountObserver | undefined): void {
  observer = fn;
}

/** Report an operation that started at `started` (process.hrtime.bigint()). */
export function report(operation: MountOperation, started: bigint, ok: boolean): void {
  observer?.({ operation, seconds: Number(process.hrtime.bigint() - started) / 1e9, ok });
}

/** Run `fn`, report how long it took and whether it threw, and pass its result on. */
export function observed<T>(operation: MountOperation, fn: () => T): T {
  const started = process.hrtime.bigint();
  let ok = false;
  try {
    const result = fn();
    ok = true;
    return result;
  } finally {
    observer?.({ operation, seconds: Number(process.hrtime.bigint() - started) / 1e9, ok });
  }
}

/** The same for work that returns a promise (mount(8) and its helpers). */
export async function observedAsync<T>(operation: MountOperation, fn: () => Promise<T>): Promise<T> {
  const started = process.hrtime.bigint();
  let ok = false;
  try {
    const result = await fn();
    ok = true;
    return result;
  } finally {
    observer?.({ operation, seconds: Number(process.hrtime.bigint() - started) / 1e9, ok });
  }
}
