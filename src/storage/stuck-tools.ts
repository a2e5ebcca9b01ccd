/**
 * Tools that were killed but cannot die yet.
 *
 * SIGKILL ends a process when it next leaves the kernel. One asleep there on
 * a file system that stopped answering — cp reading from, or sync flushing
 * to, an NFS share whose server is gone (copy-content.ts) — does not leave
 * it until the file system answers again: it stays, unkillable and holding
 * its memory, for as long as the server is away. Every copy given up on
 * leaves one, and a CSI sidecar retries a failed call with backoff for
 * ever: a share gone for hours would collect hundreds.
 *
 * So each tool killed for making no progress is remembered under the shares
 * it worked on until it exits. While one is, nothing more is started on
 * that share — no copy, no share agent — and calls on it answer UNAVAILABLE
 * at once, naming the tool and the share. That keeps one stuck tool per
 * share (a few more only if several calls were copying there when it
 * stopped). Once the share answers, the tool exits and calls run again.
 *
 * Kept in memory only: it describes live children of this process. A driver
 * that restarts starts with none (the old one's stuck tools sleep on, now
 * children of no driver), so a restart may add one more per share: bounded
 * by restarts, not by retries.
 */
import type { ChildProcess } from "node:child_process";
import { performance } from "node:perf_hooks";
import { unavailable } from "../csi/errors";

interface Stuck {
  tool: string;
  pid: number;
  since: number;
  exited: Promise<void>;
}

export class StuckTools {
  /** By share, as messages name it ("share /x", "NFS export srv:/x"). */
  private readonly on = new Map<string, Set<Stuck>>();

  /** `child`, running `tool`, was killed for making no progress on `shares`: remember it there until it exits. */
  add(shares: readonly string[], tool: string, child: ChildProcess): void {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null || shares.length === 0) return;
    const stuck: Stuck = { tool, pid: child.pid, since: performance.now(), exited: new Promise((resolve) => child.once("exit", () => resolve())) };
    for (const share of shares) {
      const set = this.on.get(share) ?? new Set();
      this.on.set(share, set.add(stuck));
    }
    void stuck.exited.then(() => {
      for (const share of shares) {
        const set = this.on.get(share);
        set?.delete(stuck);
        if (set?.size === 0) this.on.delete(share);
      }
    });
  }

  /** Is a tool killed on `share` still alive? */
  holds(share: string): boolean {
    return this.on.has(share);
  }

  /** UNAVAILABLE, at once, while a tool killed on `share` has not exited. */
  check(share: string): void {
    const first = this.on.get(share)?.values().next().value;
    if (!first) return;
    const ago = Math.round((performance.now() - first.since) / 1000);
    throw unavailable(
      `the ${first.tool} (pid ${first.pid}) of an earlier copy on ${share} was stopped ${ago} s ago for making no progress and is still stuck ` +
        "in the kernel; nothing more is started on the share until it exits, as it will once the share answers again",
    );
  }

  /** Resolves once no tool killed on `share` is alive. */
  async gone(share: string): Promise<void> {
    let set: Set<Stuck> | undefined;
    while ((set = this.on.get(share))) await Promise.all([...set].map((s) => s.exited));
  }
}
