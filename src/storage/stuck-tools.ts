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
 * The same goes for every other helper the driver starts on a share: a
 * share agent (src/backends/nfs/share-agent.ts) killed at its deadline,
 * asleep in a stat or an fsync, and the rm it was running, which is its
 * child and no longer ours once the agent is gone; and mount(8) with its
 * mount.nfs (src/mount/mount-command.ts), killed at its deadline while it
 * waits on an export's server.
 *
 * So each tool killed for making no progress, and each helper killed at its
 * deadline that did not die at once, is remembered under the shares it
 * worked on until it exits. While one is, nothing more is started on that
 * share — no copy, no share agent, no mount — and calls on it answer
 * UNAVAILABLE at once, naming the process and the share. That keeps one
 * stuck process per share (a few more only if several calls were working
 * there when it stopped). Once the share answers, it exits and calls run
 * again.
 *
 * Kept in memory only: it describes live children of this process. A driver
 * that restarts starts with none (the old one's stuck tools sleep on, now
 * children of no driver), so a restart may add one more per share: bounded
 * by restarts, not by retries.
 */
import type { ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { unavailable } from "../csi/errors";

interface Stuck {
  tool: string;
  pid: number;
  /** Its start time (/proc/PID/stat), which tells it from a later process given the same pid. */
  start: string | undefined;
  /** What it was doing and why it was stopped: "an earlier copy" and "for making no progress", say. */
  doing: string;
  stopped: string;
  since: number;
  exited: Promise<void>;
}

/** How often a stopped process that is not our child is looked for in /proc. */
const POLL_MS = 250;

export class StuckTools {
  /** By share, as messages name it ("share /x", "NFS export srv:/x"). */
  private readonly on = new Map<string, Set<Stuck>>();

  /** `child`, running `tool`, was killed for making no progress on `shares`: remember it there until it exits. */
  add(shares: readonly string[], tool: string, child: ChildProcess): void {
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    this.remember(shares, { tool, pid: child.pid, start: processStat(child.pid)?.start, doing: "an earlier copy", stopped: "for making no progress", since: performance.now(), exited });
  }

  /**
   * The process group led by `leader` (our child, started detached) was just
   * sent SIGKILL at its deadline: remember each of its processes that has not
   * exited yet under `shares` until it does — the leader by its exit, the
   * others (its children, ours no more) as /proc shows them. `name` says
   * what each is, from its pid and command.
   */
  addGroup(shares: readonly string[], leader: ChildProcess, name: (pid: number, command: string) => string): void {
    const pgid = leader.pid;
    if (pgid === undefined) return;
    for (const p of groupMembers(pgid)) {
      const exited =
        p.pid === pgid
          ? new Promise<void>((resolve) => (leader.exitCode !== null || leader.signalCode !== null ? resolve() : leader.once("exit", () => resolve())))
          : exitOf(p.pid, p.start);
      this.remember(shares, { tool: name(p.pid, p.command), pid: p.pid, start: p.start, doing: "an earlier call", stopped: "at its deadline", since: performance.now(), exited });
    }
  }

  private remember(shares: readonly string[], stuck: Stuck): void {
    if (shares.length === 0) return;
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
    return this.alive(share) !== undefined;
  }

  /** UNAVAILABLE, at once, while a tool killed on `share` has not exited. */
  check(share: string): void {
    const first = this.alive(share);
    if (!first) return;
    const ago = Math.round((performance.now() - first.since) / 1000);
    throw unavailable(
      `the ${first.tool} (pid ${first.pid}) of ${first.doing} on ${share} was stopped ${ago} s ago ${first.stopped} and is still stuck ` +
        "in the kernel; nothing more is started on the share until it exits, as it will once the share answers again",
    );
  }

  /**
   * A tool killed on `share` that is alive as /proc shows it now (one that exited a moment ago is, until its exit is seen
   * here: gone): the first one asleep in the kernel ("D") if any, else the first. A killed agent is still on its way out
   * for a moment while its rm sleeps on the share; the message names the one that is stuck.
   */
  private alive(share: string): Stuck | undefined {
    let first: Stuck | undefined;
    for (const s of this.on.get(share) ?? []) {
      const now = processStat(s.pid);
      if (!living(now) || now!.start !== s.start) continue;
      if (now!.state === "D") return s;
      first ??= s;
    }
    return first;
  }

  /** Resolves once no tool killed on `share` is alive. */
  async gone(share: string): Promise<void> {
    let set: Set<Stuck> | undefined;
    while ((set = this.on.get(share))) await Promise.all([...set].map((s) => s.exited));
  }
}

/** A process as /proc/PID/stat shows it: its command, state, process group and start time (clock ticks since boot); undefined once gone. */
function processStat(pid: number): { command: string; state: string; pgrp: number; start: string } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // After the command's name (which may hold anything): state, ppid, pgrp, …; starttime is the 20th field from the state.
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return { command: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")), state: f[0]!, pgrp: Number(f[2]), start: f[19]! };
}

/** Not exited: a zombie or a dead task has. */
const living = (s: { state: string } | undefined): boolean => s !== undefined && s.state !== "Z" && s.state !== "X";

/** The processes of group `pgid` that have not exited. */
function groupMembers(pgid: number): { pid: number; command: string; start: string }[] {
  const found: { pid: number; command: string; start: string }[] = [];
  for (const e of readdirSync("/proc")) {
    if (!/^\d+$/.test(e)) continue;
    const s = processStat(Number(e));
    if (s && s.pgrp === pgid && living(s)) found.push({ pid: Number(e), command: s.command, start: s.start });
  }
  return found;
}

/** Resolves once process `pid`, started at `start`, has exited (its pid gone, a zombie, or another process's). */
function exitOf(pid: number, start: string): Promise<void> {
  return new Promise((resolve) => {
    const timer = setInterval(() => {
      const s = processStat(pid);
      if (!living(s) || s!.start !== start) {
        clearInterval(timer);
        resolve();
      }
    }, POLL_MS);
    timer.unref();
  });
}
