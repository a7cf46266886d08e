/** Timers the reflector schedules on, injectable so tests step time instead of sleeping. */
export interface Timers {
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  setTimeout: (callback, ms) => {
    const timer = setTimeout(callback, ms);
    // Discovery never keeps the process alive on its own: listeners do.
    timer.unref();
    return timer;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** client-go's reflector backoff: 0.8 s doubling to 30 s. */
export const BACKOFF_INITIAL_MS = 800;
export const BACKOFF_MAX_MS = 30_000;

/**
 * Exponential backoff with jitter in the shape of client-go's reflector
 * (`NewExponentialBackoffManager(800ms, 30s, ..., 2.0, 1.0)`): the n-th consecutive failure waits
 * `base = min(0.8 s × 2^n, 30 s)` plus up to `base` of jitter, and the total is capped at 30 s so
 * the documented ceiling holds. Progress (a completed list, an applied event) resets it.
 */
export class Backoff {
  readonly #random: () => number;
  #failures = 0;

  constructor(random: () => number = Math.random) {
    this.#random = random;
  }

  /** The delay before the next attempt, in ms; each call counts one more failure. */
  next(): number {
    const base = Math.min(BACKOFF_INITIAL_MS * 2 ** this.#failures, BACKOFF_MAX_MS);
    this.#failures++;
    return Math.min(Math.round(base * (1 + this.#random())), BACKOFF_MAX_MS);
  }

  reset(): void {
    this.#failures = 0;
  }
}
