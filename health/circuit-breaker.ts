/** Istio's `connectionPool.http` limits that remora enforces per cluster. */
export interface CircuitBreakerSettings {
  /**
   * Requests that may wait for an upstream connection at once (Istio's http1MaxPendingRequests,
   * Envoy's max_pending_requests). Beyond it a request is answered 503 UO at once.
   */
  readonly http1MaxPendingRequests: number;
}

/** Istio's defaults: effectively unlimited (2^32-1). */
export const DEFAULT_CIRCUIT_BREAKER_SETTINGS: CircuitBreakerSettings = Object.freeze({
  http1MaxPendingRequests: 2 ** 32 - 1,
});

/** What a pending limit refused, counted since it was built (metrics). */
export interface PendingLimitStats {
  /** `tryEnter` calls refused because the limit was reached (each one a 503 UO). */
  readonly overflows: number;
}

/**
 * One cluster's count of requests waiting for an upstream connection (Envoy's pending-requests
 * circuit breaker): a request enters when it starts waiting (a connect under way for it, or no
 * connection free) and leaves when it gets a connection or gives up. A request that finds an idle
 * connection never enters.
 *
 * The value is taken literally: 0 lets nothing wait. Istio reads an unset (0) field as the
 * default; mapping that is the config schema's job. `tryEnter` and `leave` allocate nothing.
 */
export class PendingLimit {
  readonly #max: number;
  #pending = 0;
  #overflows = 0;

  constructor(settings: CircuitBreakerSettings = DEFAULT_CIRCUIT_BREAKER_SETTINGS) {
    const max = settings.http1MaxPendingRequests;
    if (!Number.isInteger(max) || max < 0) {
      throw new RangeError(
        `connectionPool.http.http1MaxPendingRequests must be an integer >= 0; got ${max}`,
      );
    }
    this.#max = max;
  }

  /** Requests waiting now. */
  get pending(): number {
    return this.#pending;
  }

  /** The limit. */
  get max(): number {
    return this.#max;
  }

  get stats(): PendingLimitStats {
    return { overflows: this.#overflows };
  }

  /** Count one more waiting request, or refuse (overflow: answer 503 UO) when the limit is reached. */
  tryEnter(): boolean {
    if (this.#pending >= this.#max) {
      this.#overflows++;
      return false;
    }
    this.#pending++;
    return true;
  }

  /** A request counted by `tryEnter` stopped waiting. Call once per entry; never goes below 0. */
  leave(): void {
    if (this.#pending > 0) this.#pending--;
  }
}
