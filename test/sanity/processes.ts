/**
 * Test helper: processes as /proc shows them, and waiting for what they do.
 *
 * Tests of stuck tools (a sync asleep on a frozen share, a share agent
 * killed at its deadline, a mount that outlives its kill) look at processes
 * the driver started and may no longer own: their state ("D" asleep in the
 * kernel, "Z" exited but not reaped), their parent, their command. And they
 * wait, with a bound, for something that does happen (a process to exit once
 * the share answers), saying what they waited for when it does not.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";

/** The state of process `pid` ("R", "S", "D", "Z"…), its parent and its command; undefined once it is gone. */
export function processOf(pid: number): { state: string; parent: number; command: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const [state, parent] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return { state: state!, parent: Number(parent), command: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")) };
  } catch {
    return undefined;
  }
}

/** A process that has not exited (a zombie has). */
export const processAlive = (pid: number): boolean => ![undefined, "Z", "X"].includes(processOf(pid)?.state);

/** Wait until `done` holds, asking every 10 ms for at most `ms`; then fail, naming `what`. */
export async function until(what: string, done: () => boolean | Promise<boolean>, ms: number): Promise<void> {
  const start = performance.now();
  while (performance.now() - start < ms) {
    if (await done()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  if (await done()) return;
  assert.fail(`still waiting for ${what} after ${ms / 1000} s`);
}
