/**
 * Reconnect delays: exponential 1, 2, 4, 8, 16, then 30 (max), scaled, with full jitter.
 * Full jitter (uniform between 0 and the step) spreads a crowd of clients that lost the
 * same edge at once, so their retries do not arrive as one wave.
 */

const STEPS = [1, 2, 4, 8, 16] as const;
const MAX_STEP = 30;

/** The un-jittered delay before `attempt` (1-based), in units of the reconnect interval. */
export function backoffStep(attempt: number): number {
  if (attempt < 1) throw new RangeError("attempt is 1-based");
  return STEPS[attempt - 1] ?? MAX_STEP;
}

/** Milliseconds to wait before `attempt`: uniform in [0, step × interval]. */
export function backoffDelay(attempt: number, interval: number, random: () => number = Math.random): number {
  return random() * backoffStep(attempt) * interval;
}
