/**
 * The demo service's handlers: plain async functions, one per procedure.
 *
 * They know nothing of transports or bytes; the dispatcher hands them
 * decoded requests. PlaygroundState counts what really ran, so a test (or a
 * class) can check how many times each Increment executed on the server —
 * the difference between at-least-once and at-most-once.
 */
import { EventEmitter } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { Playground } from "./call-ids/playground";
import { Dispatcher, type Handlers } from "./call-ids/dispatch";
import { Code, RpcError } from "./rpc-error";

export class PlaygroundState {
  readonly counters = new Map<string, number>();
  /** request_token → how many times Increment ran with it. */
  readonly runs = new Map<string, number>();
  /** "sleep-aborted" when a Sleep stops early (deadline or cancel). */
  readonly events = new EventEmitter();
}

export function playgroundHandlers(state: PlaygroundState): Handlers<typeof Playground> {
  return {
    add: async ({ a = 0, b = 0 }) => ({ sum: a + b }),

    echo: async (sample) => sample,

    increment: async ({ counter = "", requestToken = "" }) => {
      const value = (state.counters.get(counter) ?? 0) + 1;
      state.counters.set(counter, value);
      if (requestToken) state.runs.set(requestToken, (state.runs.get(requestToken) ?? 0) + 1);
      return { value };
    },

    sleep: async ({ millis = 0 }, { signal }) => {
      const started = Date.now();
      try {
        await sleep(millis, undefined, { signal });
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

export function playgroundDispatcher(state = new PlaygroundState()): Dispatcher {
  return Dispatcher.of(Playground, playgroundHandlers(state));
}
