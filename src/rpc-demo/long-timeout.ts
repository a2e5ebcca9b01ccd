/**
 * Timers for deadlines and delays, however far away.
 *
 * A deadline is a duration the caller chose: grpc-timeout can say up to
 * 99,999,999 hours, our TCP and UDP call header up to 2^32 − 1 ms. Node's
 * setTimeout holds at most 2^31 − 1 ms (about 24.8 days); asked for more,
 * it fires after 1 ms, which would turn a far deadline into one already
 * expired. So a longer wait is taken in steps of at most that much.
 */

/** The longest wait one setTimeout can hold. */
export const MAX_TIMER_MS = 0x7fffffff;

export interface LongTimeout {
  clear(): void;
}

/** Run `fn` once, `ms` from now (any ms ≥ 0); `clear()` stops it. */
export function setLongTimeout(fn: () => void, ms: number): LongTimeout {
  let handle: NodeJS.Timeout | undefined;
  const arm = (left: number) => {
    handle = left > MAX_TIMER_MS ? setTimeout(() => arm(left - MAX_TIMER_MS), MAX_TIMER_MS) : setTimeout(fn, left);
  };
  arm(ms);
  return { clear: () => clearTimeout(handle) };
}
