/**
 * A timer for a call's deadline, however far ahead it lies.
 *
 * grpc-timeout allows up to 99999999 hours, but Node's setTimeout holds at
 * most 2^31 − 1 ms (about 24.8 days): it fires a longer one after 1 ms
 * instead, with a TimeoutOverflowWarning on stderr. A client whose deadline
 * is 25 days away would have its call answered DEADLINE_EXCEEDED at once.
 * This timer waits in steps no longer than Node allows.
 */
const MAX_DELAY_MS = 2 ** 31 - 1;

export interface DeadlineTimer {
  clear(): void;
}

/** Call `fire` once `deadline` has passed (at once if it already has). */
export function atDeadline(deadline: Date, fire: () => void): DeadlineTimer {
  let timer: NodeJS.Timeout | undefined;
  const arm = () => {
    const ms = deadline.getTime() - Date.now();
    timer = ms > MAX_DELAY_MS ? setTimeout(arm, MAX_DELAY_MS) : setTimeout(fire, Math.max(0, ms));
  };
  arm();
  return { clear: () => clearTimeout(timer) };
}
