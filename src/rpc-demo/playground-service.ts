/**
 * The demo service's handlers: plain async functions, one per procedure.
 *
 * They know nothing of transports or bytes; the dispatcher hands them
 * decoded requests (64-bit integers as BigInt, exact over their whole
 * range). PlaygroundState counts what really ran, so a test (or a
 * class) can check how many times each Increment executed on the server —
 * the difference between at-least-once and at-most-once.
 */
import { EventEmitter } from "node:events";
import { Playground } from "./call-ids/playground";
import { Dispatcher, type Handlers } from "./call-ids/dispatch";
import { intRange } from "./codecs/ranges";
import { Kind } from "./codecs/schema";
import { setLongTimeout } from "../server/long-timeout";
import { Code, RpcError } from "./rpc-error";

export class PlaygroundState {
  readonly counters = new Map<string, bigint>();
  /** request_token → how many times Increment ran with it. */
  readonly runs = new Map<string, number>();
  /** "sleep-aborted" when a Sleep stops early (deadline or cancel). */
  readonly events = new EventEmitter();
}

export function playgroundHandlers(state: PlaygroundState): Handlers<typeof Playground> {
  return {
    add: async ({ a = 0n, b = 0n }) => {
      const sum = a + b;
      const { min, max } = intRange(Kind.SINT64)!;
      // A sum past the type's range would wrap around on the wire: refuse it instead.
      if (sum < min || sum > max) throw new RpcError(Code.INVALID_ARGUMENT, `field sum: ${a} + ${b} = ${sum} is out of range; expected sint64 (a whole number from ${min} to ${max})`);
      return { sum };
    },

    echo: async (sample) => sample,

    increment: async ({ counter = "", requestToken = "" }) => {
      const value = (state.counters.get(counter) ?? 0n) + 1n;
      state.counters.set(counter, value);
      if (requestToken) state.runs.set(requestToken, (state.runs.get(requestToken) ?? 0) + 1);
      return { value };
    },

    sleep: async ({ millis = 0 }, { signal }) => {
      const started = Date.now();
      try {
        // A Node timer may fire up to a millisecond early by the wall clock (libuv counts from the
        // loop's cached time): sleep again for what is left, so the reply never says less than asked.
        let left = millis;
        do await sleep(left, signal);
        while ((left = millis - (Date.now() - started)) > 0);
      } catch (err) {
        state.events.emit("sleep-aborted", signal.reason);
        throw err;
      }
      return { sleptMillis: Date.now() - started };
    },

    fail: async ({ code = Code.UNKNOWN, message = "" }) => {
      if (code < 1 || code > 16) throw new RpcError(Code.INVALID_ARGUMENT, `code must be 1 to 16, not ${code}`);
      throw new RpcError(code as Code, message);
    },
  };
}

/** Wait `ms` (a uint32: up to 49.7 days), or reject with the signal's reason when it aborts first. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      timer.clear();
      reject(signal.reason);
    };
    const timer = setLongTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

export function playgroundDispatcher(state = new PlaygroundState()): Dispatcher {
  return Dispatcher.of(Playground, playgroundHandlers(state));
}
