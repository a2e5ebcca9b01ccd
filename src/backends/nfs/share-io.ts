/**
 * Bounded file operations on shares.
 *
 * Every file operation the driver makes on a share — a probe, a statfs, a
 * mkdir, a rename — goes through here to a share agent (share-agent.ts), a
 * helper process, and is waited for at most `timeoutMs`. Agents are kept
 * for reuse (a warm agent answers in about 0.1 ms; starting one costs tens
 * of milliseconds), each serving one request at a time, so one hung share
 * holds up only the calls that touch it. An agent that misses its deadline
 * is killed and forgotten; the call fails with UNAVAILABLE saying which
 * share did not answer. Each agent leads a process group of its own, with
 * the rm it may be running (share-walk.ts): the deadline kills the group.
 *
 * A process killed while asleep in the kernel on a hung share does not die
 * until the share answers, and a retry that started a fresh agent there
 * would only leave one more beside it. So whatever of the group is still
 * alive after the kill is remembered under the share (storage/stuck-tools.ts)
 * until it exits, and meanwhile no agent is started for that share: the
 * call answers UNAVAILABLE at once, naming the process.
 *
 * A call that must not interleave with another controller's on the same
 * volume holds a share lock (share-locks.ts) in an agent of its own, kept
 * out of the pool for the call (`locked`).
 *
 * Agents run under `setpriv --pdeathsig KILL`: they die with the driver,
 * and the driver never waits for them to exit.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as path from "node:path";
import { createInterface } from "node:readline";
import { CsiError, unavailable } from "../../csi/errors";
import { StuckTools } from "../../storage/stuck-tools";
import type { AgentReply } from "./share-agent";

/** A share lock held for a call (ShareIo.locked). */
export interface HeldLock {
  /** The volume or snapshot is gone: remove the lock's file as it is released (share-locks.ts). */
  gone(): void;
}

/** An errno from the agent (ENOENT, ESTALE, …), with the agent's message. */
export class ShareError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const AGENT = path.join(__dirname, "share-agent.js");
const MAX_IDLE = 4;

class Agent {
  private readonly pending = new Map<number, (r: AgentReply) => void>();
  private next = 1;
  readonly proc: ChildProcess;
  dead = false;

  constructor() {
    // Detached: a process group of its own (setpriv execs the agent, so its PID is the group's), killed whole at the deadline.
    this.proc = spawn("setpriv", ["--pdeathsig", "KILL", "--", process.execPath, AGENT], { stdio: ["pipe", "pipe", "ignore"], detached: true });
    const rl = createInterface({ input: this.proc.stdout! });
    rl.on("line", (line) => {
      const reply = JSON.parse(line) as AgentReply;
      this.pending.get(reply.id)?.(reply);
      this.pending.delete(reply.id);
    });
    const fail = () => {
      this.dead = true;
      for (const [id, done] of this.pending) done({ id, ok: false, code: "EPIPE", message: "the share agent exited" });
      this.pending.clear();
    };
    this.proc.on("exit", fail);
    this.proc.on("error", fail);
    this.proc.stdin!.on("error", fail);
  }

  send(op: string, args: Record<string, unknown>): Promise<AgentReply> {
    const id = this.next++;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      this.proc.stdin!.write(JSON.stringify({ id, op, args }) + "\n");
    });
  }

  /** An idle agent must not keep the driver alive, a busy one must deliver its reply. */
  setIdle(idle: boolean): void {
    const fn = idle ? "unref" : "ref";
    this.proc[fn]();
    (this.proc.stdout as unknown as { [k: string]: () => void })[fn]?.();
    (this.proc.stdin as unknown as { [k: string]: () => void })[fn]?.();
  }

  kill(): void {
    this.dead = true;
    try {
      this.proc.kill("SIGKILL");
    } catch {
      // gone already
    }
  }

  /** Kill the agent and whatever it started (its process group). */
  killGroup(): void {
    this.dead = true;
    try {
      if (this.proc.pid !== undefined) process.kill(-this.proc.pid, "SIGKILL");
    } catch {
      // gone already
    }
  }
}

export class ShareIo {
  private readonly idle: Agent[] = [];
  /** Copies' tools and agents killed on a share and not yet exited: while one lives, nothing more is started there (storage/stuck-tools.ts). */
  readonly stuck = new StuckTools();

  constructor(readonly timeoutMs: number) {}

  /**
   * Run `op` in an agent. Resolves with its value; rejects with a
   * ShareError carrying the errno the operation failed with, or with
   * UNAVAILABLE when no answer came within the deadline (`what` names the
   * share for that message, and is where a killed agent is remembered), and
   * at once while one killed on that share has not exited.
   */
  async run<T>(op: string, args: Record<string, unknown>, what: string, timeoutMs = this.timeoutMs): Promise<T> {
    this.stuck.check(what);
    const agent = this.take();
    try {
      return await this.ask<T>(agent, op, args, what, timeoutMs);
    } finally {
      this.give(agent); // but one killed at the deadline
    }
  }

  /**
   * Run `fn` holding the share lock of `key` (share-locks.ts) on the share at `root`, exclusive or (`shared`, for a
   * call that only reads the object) shared: an agent takes it and is kept out of the pool, holding it, until `fn` is
   * done. Held by another process in a mode that excludes this one, `busy()` is thrown and `fn` not run. `fn` calls
   * `lock.gone()` when the object is gone (deleted, or a failed create left nothing): the lock's file is then removed
   * as it is released, if held exclusive.
   */
  async locked<T>(root: string, key: string, what: string, busy: () => Error, fn: (lock: HeldLock) => Promise<T>, shared = false): Promise<T> {
    this.stuck.check(what);
    const agent = this.take();
    try {
      await this.ask(agent, "lock", { root, key, shared }, what, this.timeoutMs);
    } catch (err) {
      this.give(agent);
      throw shareErrno(err) === "EWOULDBLOCK" ? busy() : err;
    }
    let remove = false;
    try {
      return await fn({
        gone: () => {
          remove = !shared;
        },
      });
    } finally {
      // Not released in time: the agent is killed, and its death releases the lock.
      if (!agent.dead) {
        // A share with a tool stuck on it would keep the removal waiting: the file stays, as a crash leaves it.
        remove &&= !this.stuck.holds(what);
        await this.ask(agent, "unlock", { root, key, remove }, what, this.timeoutMs).then(
          () => this.give(agent),
          () => agent.killGroup(),
        );
      }
    }
  }

  /** Send `op` to `agent` and wait for its answer at most `timeoutMs`; no answer: the agent is killed (UNAVAILABLE). */
  private async ask<T>(agent: Agent, op: string, args: Record<string, unknown>, what: string, timeoutMs: number): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), timeoutMs)));
    const reply = await Promise.race([agent.send(op, args), deadline]);
    clearTimeout(timer);
    if (reply === "timeout") {
      agent.killGroup();
      this.stuck.addGroup([what], agent.proc, (pid, command) => (pid === agent.proc.pid ? "share agent" : command));
      throw unavailable(`${what} did not answer within ${timeoutMs / 1000} s (${op}); the share may be hung or its server unreachable`);
    }
    if (!reply.ok) throw new ShareError(reply.code, reply.message);
    return reply.value as T;
  }

  private take(): Agent {
    let agent: Agent | undefined;
    while ((agent = this.idle.pop()) && agent.dead);
    agent ??= new Agent();
    agent.setIdle(false);
    return agent;
  }

  private give(agent: Agent): void {
    if (agent.dead) return;
    if (this.idle.length >= MAX_IDLE) {
      agent.kill();
      return;
    }
    agent.setIdle(true);
    this.idle.push(agent);
  }
}

/** The errno of a failed share operation, if it was one. */
export function shareErrno(err: unknown): string | undefined {
  return err instanceof ShareError ? err.code : undefined;
}

/** Stale, gone or not answering: what a probe of a mounted share can say. */
export function isUnhealthy(err: unknown): boolean {
  if (err instanceof CsiError) return true; // the deadline passed
  return ["ESTALE", "EIO", "ENOTCONN", "ETIMEDOUT", "EHOSTDOWN", "ECONNABORTED", "EPIPE"].includes(shareErrno(err) ?? "");
}
