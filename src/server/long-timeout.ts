/**
 * Timers for deadlines and delays, however far away.
 *
 * A deadline is a time the caller chose: grpc-timeout can say up to
 * 99,999,999 hours, the RPC playground's TCP and UDP call header up to
 * 2^32 − 1 ms. Node's setTimeout holds at most 2^31 − 1 ms (about 24.8
 * days); asked for more, it fires after 1 ms instead (with a
 * TimeoutOverflowWarning), which would turn a far deadline into one
 * already passed. So a longer wait is taken in steps of at most that much.
 * The driver's server and the playground both use these.
 */

/** The longest wait one setTimeout can hold. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface LongTimeout {
  clear(): void;
}

/** Call `fire` once the clock reads `at` (ms since the epoch), or at once if it has passed. */
function atTime(at: number, fire: () => void): LongTimeout {
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    const ms = at - Date.now();
    timer = ms > MAX_TIMER_MS ? setTimeout(arm, MAX_TIMER_MS) : setTimeout(fire, Math.max(0, ms));
  };
  arm();
  return { clear: () => clearTimeout(timer) };
}

/** Run `fn` once, `ms` from now (any ms ≥ 0); `clear()` stops it. */
export function setLongTimeout(fn: () => void, ms: number): LongTimeout {
  return atTime(Date.now() + ms, fn);
}

/** Call `fire` once `deadline` has passed (at once if it already has). */
export function atDeadline(deadline: Date, fire: () => void): LongTimeout {
  return atTime(deadline.getTime(), fire);
}

/**
 * A caller's deadline ends its call at the caller too, and a little sooner:
 * its timer counts from when it sent the call, the server's from when it
 * read it. The caller then says so the only way its transport can, the way
 * a cancel looks too: grpc-go, grpc-js and the playground's HTTP/2 client
 * reset the stream (RST_STREAM CANCEL), `csi-lab rpc call` closes its TCP
 * connection — and reports DEADLINE_EXCEEDED to its own code. So a caller
 * that goes this close to its deadline (the server's count) went for it.
 */
export const DEADLINE_MARGIN_MS = 1000;

/** Did a caller that went away now, with `deadline` (ms since the epoch; undefined: none), go for its deadline? */
export function wentAtDeadline(deadline: number | undefined, now = Date.now()): boolean {
  return deadline !== undefined && deadline - now < DEADLINE_MARGIN_MS;
}
