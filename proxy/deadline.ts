/**
 * A deadline that moves with every request but rarely expires: idle, request-header and request
 * timeouts. Moving it later is a field store; the one Node timer behind it stays armed and, when it
 * fires before the current deadline, re-arms for the rest. Only a move to an earlier time re-arms
 * at once. (Node's own socket timeouts re-insert a timer on every read and write: four times per
 * proxied request, plus one timer per request for its timeout.)
 *
 * Times are `performance.now()` milliseconds; callers pass the `now` they already read.
 */
export class Deadline {
  #at = Number.POSITIVE_INFINITY;
  #armedAt = Number.POSITIVE_INFINITY;
  #timer: NodeJS.Timeout | null = null;
  readonly #onExpire: () => void;
  readonly #clock: () => number;

  constructor(onExpire: () => void, clock: () => number = performanceNow) {
    this.#onExpire = onExpire;
    this.#clock = clock;
  }

  /** Expire `ms` after `now` unless set again or cleared first; `ms` <= 0 means no deadline. */
  set(now: number, ms: number): void {
    if (ms <= 0) {
      this.clear();
      return;
    }
    const at = now + ms;
    this.#at = at;
    if (at < this.#armedAt) this.#arm(at, ms);
  }

  /** No deadline for now; a pending timer finds nothing to do when it fires. */
  clear(): void {
    this.#at = Number.POSITIVE_INFINITY;
  }

  /** Clear and release the timer (the owner is closing). */
  stop(): void {
    this.clear();
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#armedAt = Number.POSITIVE_INFINITY;
  }

  #arm(at: number, delay: number): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = setTimeout(this.#fire, Math.max(1, Math.ceil(delay)));
    this.#timer.unref();
    this.#armedAt = at;
  }

  #fire = (): void => {
    this.#timer = null;
    this.#armedAt = Number.POSITIVE_INFINITY;
    const at = this.#at;
    if (at === Number.POSITIVE_INFINITY) return;
    // Node's timers run on the event loop's cached clock, so they may fire a little early.
    const left = at - this.#clock();
    if (left >= 1) {
      this.#arm(at, left);
      return;
    }
    this.#at = Number.POSITIVE_INFINITY;
    this.#onExpire();
  };
}

function performanceNow(): number {
  return performance.now();
}
