/**
 * Injected faults: what a real network and real servers do to calls.
 *
 * A packet can be dropped, duplicated or delayed, and a server can crash
 * after it did the work but before the reply left. The caller sees the same
 * thing every time — no reply — and cannot tell which happened. If it
 * retries, the work may run twice (at-least-once); if it does not, maybe
 * never (at-most-once, unless the server remembers replies: see the UDP
 * duplicate-request cache). Only an idempotent procedure makes retrying
 * always safe.
 *
 * A FaultPlan is applied where a transport sends a message: `decide` says
 * how many copies go out (0: dropped, 2: duplicated), after what delay, and
 * whether the server crashes instead of replying. Choices come from a seeded
 * generator, so a demo or a test replays the same faults every run.
 */
import { setLongTimeout, type LongTimeout } from "../../server/long-timeout";
import type { Trace } from "../trace";

export interface FaultPlan {
  /** Chance that a message is lost, 0..1. */
  readonly drop: number;
  /** Lose the first this many messages (a walkthrough's "drop"). */
  readonly dropFirst: number;
  /** Chance that a message arrives twice, 0..1. */
  readonly duplicate: number;
  /** Deliver the first this many messages twice. */
  readonly duplicateFirst: number;
  /** Extra delay for every message, in ms. */
  readonly delayMs: number;
  /** The server crashes after running a call, before replying (once). */
  readonly crash: boolean;
  /** Which messages the faults hit. */
  readonly direction: "request" | "reply" | "both";
  readonly seed: number;
}

export const NO_FAULTS: FaultPlan = { drop: 0, dropFirst: 0, duplicate: 0, duplicateFirst: 0, delayMs: 0, crash: false, direction: "both", seed: 1 };

/**
 * Parse the CLI's --fault value, comma-separated:
 *   drop            lose the first message (each way)
 *   drop=0.3        lose each message with chance 0.3
 *   duplicate[=p]   likewise, deliver twice
 *   delay[=ms]      hold every message up (200 ms)
 *   crash           the server dies after running the call, before replying
 *   request-only, reply-only   restrict to one direction
 *   seed=n          another sequence of random faults
 * Each at most once, numbers in plain decimal: anything else is refused
 * rather than read as something that was not meant ("crash=7", "delay=0x10",
 * "drop=0.1,drop=0.9", "request-only,reply-only").
 */
export function parseFaults(spec: string | undefined): FaultPlan {
  if (!spec || spec === "none") return NO_FAULTS;
  const plan: { -readonly [K in keyof FaultPlan]: FaultPlan[K] } = { ...NO_FAULTS };
  const seen = new Map<string, string>();
  for (const part of spec.split(",").map((s) => s.trim()).filter(Boolean)) {
    const eq = part.indexOf("=");
    const name = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? undefined : part.slice(eq + 1);
    const noValue = () => {
      if (value !== undefined) throw new Error(`--fault ${part}: ${name} takes no value`);
    };
    const whole = (max: number, dflt?: number) => {
      if (value === undefined && dflt !== undefined) return dflt;
      const n = value !== undefined && /^\d+$/.test(value) ? Number(value) : NaN;
      if (!(n <= max)) throw new Error(`--fault ${part}: ${name} needs a whole number from 0 to ${max}`);
      return n;
    };
    const chance = () => {
      const n = value !== undefined && /^(\d+(\.\d*)?|\.\d+)$/.test(value) ? Number(value) : NaN;
      if (!(n <= 1)) throw new Error(`--fault ${part}: a chance is a number between 0 and 1`);
      return n;
    };
    const direction = name === "request-only" || name === "reply-only" ? "direction" : name;
    if (seen.has(direction)) throw new Error(`--fault ${spec}: ${seen.get(direction)} and ${part} both given; give one`);
    seen.set(direction, part);
    switch (name) {
      case "drop":
        if (value === undefined) plan.dropFirst = 1;
        else plan.drop = chance();
        break;
      case "duplicate":
        if (value === undefined) plan.duplicateFirst = 1;
        else plan.duplicate = chance();
        break;
      case "delay":
        plan.delayMs = whole(Number.MAX_SAFE_INTEGER, 200);
        break;
      case "crash":
        noValue();
        plan.crash = true;
        break;
      case "request-only":
        noValue();
        plan.direction = "request";
        break;
      case "reply-only":
        noValue();
        plan.direction = "reply";
        break;
      case "seed":
        // The generator takes 32 bits: a larger seed would quietly repeat a smaller one's faults.
        plan.seed = whole(0xffffffff);
        break;
      default:
        throw new Error(`unknown fault ${JSON.stringify(name)}: use drop[=p], duplicate[=p], delay[=ms], crash, request-only, reply-only, seed=n`);
    }
  }
  return plan;
}

export function describeFaults(p: FaultPlan): string {
  const parts: string[] = [];
  if (p.drop > 0) parts.push(`drop ${Math.round(p.drop * 100)}%`);
  if (p.dropFirst > 0) parts.push("drop the first message");
  if (p.duplicate > 0) parts.push(`duplicate ${Math.round(p.duplicate * 100)}%`);
  if (p.duplicateFirst > 0) parts.push("duplicate the first message");
  if (p.delayMs > 0) parts.push(`delay ${p.delayMs} ms`);
  if (p.crash) parts.push("server crash before the reply");
  if (parts.length === 0) return "none";
  return parts.join(", ") + (p.direction === "both" ? "" : ` (${p.direction === "reply" ? "replies" : "requests"} only)`);
}

export interface Delivery {
  /** 0 when dropped, 2 when duplicated. */
  readonly copies: number;
  readonly delayMs: number;
}

/** A small seeded generator (mulberry32): same seed, same faults. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class FaultInjector {
  private readonly random: () => number;
  private crashed = false;
  private sent = 0;
  /** Counts, for narration and tests. */
  readonly stats = { dropped: 0, duplicated: 0, delayed: 0 };

  constructor(readonly plan: FaultPlan = NO_FAULTS) {
    this.random = mulberry32(plan.seed);
  }

  get active(): boolean {
    const p = this.plan;
    return p.drop > 0 || p.dropFirst > 0 || p.duplicate > 0 || p.duplicateFirst > 0 || p.delayMs > 0 || p.crash;
  }

  private applies(direction: "request" | "reply"): boolean {
    return this.plan.direction === "both" || this.plan.direction === direction;
  }

  decide(direction: "request" | "reply"): Delivery {
    if (!this.applies(direction)) return { copies: 1, delayMs: 0 };
    const n = ++this.sent;
    if (n <= this.plan.dropFirst || (this.plan.drop > 0 && this.random() < this.plan.drop)) {
      this.stats.dropped++;
      return { copies: 0, delayMs: 0 };
    }
    const twice = n - this.plan.dropFirst <= this.plan.duplicateFirst || (this.plan.duplicate > 0 && this.random() < this.plan.duplicate);
    const copies = twice ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    if (this.plan.delayMs > 0) this.stats.delayed++;
    return { copies, delayMs: this.plan.delayMs };
  }

  /** True once: the server should crash instead of sending this reply. */
  crashNow(): boolean {
    if (!this.plan.crash || this.crashed) return false;
    this.crashed = true;
    return true;
  }

  /**
   * Send a message through the faults: `send` runs once per copy, after the
   * delay (kept in `held` meanwhile). Notes what happened on the trace.
   */
  deliver(direction: "request" | "reply", send: () => void, trace?: Trace, opts: { canDuplicate?: boolean; held?: HeldMessages } = {}): void {
    const what = direction;
    const decided = this.decide(direction);
    // One HTTP/2 stream carries one response: there is no second copy to deliver.
    const d = opts.canDuplicate === false && decided.copies > 1 ? { ...decided, copies: 1 } : decided;
    if (d.copies === 0) {
      trace?.step("network", "fault", `✗ the ${what} is lost on the way (injected drop)`, { event: "lost" });
      return;
    }
    if (d.copies === 2) trace?.step("network", "fault", `the ${what} arrives twice (injected duplicate: a network or proxy resends it)`, { event: "duplicated" });
    if (d.delayMs > 0) trace?.step("network", "fault", `the ${what} is held up ${d.delayMs} ms (injected delay)`, { event: "delayed" });
    const go = () => {
      for (let i = 0; i < d.copies; i++) send();
    };
    if (d.delayMs > 0) (opts.held ?? new HeldMessages()).hold(what, trace, d.delayMs, go);
    else go();
  }
}

/**
 * The messages an injected delay holds up at one end (a connection, a
 * socket, a server), each until its time comes. The delay holds a message
 * at its sender: when the end closes first, the message never goes out.
 * `drop` says so on each message's trace and forgets the timers, so nothing
 * waits to send what cannot arrive: a call, or a walkthrough, ends when its
 * story does, not when a held-up message would have come due.
 */
export class HeldMessages {
  private readonly held = new Set<{ readonly what: string; readonly trace: Trace | undefined; readonly timer: LongTimeout }>();

  hold(what: string, trace: Trace | undefined, delayMs: number, send: () => void): void {
    const message = {
      what,
      trace,
      timer: setLongTimeout(() => {
        this.held.delete(message);
        send();
      }, delayMs),
    };
    this.held.add(message);
  }

  /** The end closes (`closes`: "the TCP connection closes"): what it still holds never arrives. */
  drop(closes: string): void {
    const counts = new Map<Trace | undefined, Map<string, number>>();
    for (const m of this.held) {
      m.timer.clear();
      const byWhat = counts.get(m.trace) ?? new Map<string, number>();
      counts.set(m.trace, byWhat.set(m.what, (byWhat.get(m.what) ?? 0) + 1));
    }
    this.held.clear();
    for (const [trace, byWhat] of counts) {
      for (const [what, n] of byWhat) {
        const them = n === 1 ? `the ${what}` : `${n} ${what === "reply" ? "replies" : `${what}s`}`;
        trace?.step("network", "fault", `✗ ${closes} with ${them} still held up: ${n === 1 ? "it never arrives" : "they never arrive"}`);
      }
    }
  }
}

/**
 * What the faults will cost the caller in waiting, said before the wait: a
 * lost message over TCP or HTTP/2 is never resent (the stream is reliable;
 * an injected drop stands for a connection that died), so only the
 * caller's deadline ends the wait, and each retry waits again.
 */
export function waitNote(plan: FaultPlan, transport: "tcp" | "udp" | "http2", timeoutMs: number, retries: number): string | undefined {
  const drops = plan.drop > 0 || plan.dropFirst > 0;
  const late = plan.delayMs >= timeoutMs;
  if (!drops && !late) return undefined;
  const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
  if (transport === "udp") {
    return `Over UDP the client resends a lost datagram itself, after 100 ms, then 200, 400, 800, 1000 ms…, until its ${timeoutMs} ms deadline: up to ${seconds(timeoutMs)}.`;
  }
  const name = transport === "tcp" ? "TCP" : "HTTP/2";
  const why = late ? `the reply is held up ${plan.delayMs} ms, past the deadline` : "nothing resends a lost message";
  return (
    `Over ${name} ${why}: the caller waits out its ${timeoutMs} ms deadline` +
    (retries > 0 ? `, then retries ${retries === 1 ? "once" : `${retries} times`} on a new connection: up to ${seconds(timeoutMs * (retries + 1))} in all.` : `: up to ${seconds(timeoutMs)}.`)
  );
}
