import { DEFAULT_RETRY_SETTINGS, type RetrySettings } from "./retry-policy.js";

/** What a cluster's retry budget decided, counted since it was built (metrics). */
export interface RetryBudgetStats {
  /** Retries that `tryAcquire` let start. */
  readonly allowed: number;
  /** Refused because retries in flight reached the budget (percent of active requests, or the minimum). */
  readonly refusedBudget: number;
  /** Refused because retries in flight reached `maxRetries` (checked first). */
  readonly refusedMax: number;
}

/** The settings a budget reads (part of `RetrySettings`). */
export type RetryBudgetSettings = Pick<
  RetrySettings,
  "budgetPercent" | "minRetryConcurrency" | "maxRetries"
>;

/**
 * One cluster's limit on retries in flight, so that when every endpoint fails the backends see
 * about (1 + budgetPercent/100) times the client's load instead of (1 + attempts) times.
 *
 * A retry may start only while retries in flight are below both (a failed connect's retry only
 * the second; see `tryAcquire`)
 * - Envoy's retry budget: max(minRetryConcurrency, ⌊budgetPercent% × active requests⌋), and
 * - Istio's `connectionPool.http.maxRetries` (Envoy's max_retries circuit breaker).
 * Envoy ignores max_retries once a budget is configured; remora has both because Istio users set
 * maxRetries and the budget is always on. Either refusal is flag UO.
 *
 * A retry is in flight from `tryAcquire` (before its backoff wait) until `release` (when that
 * retried attempt ends, or the request gives up during the backoff), as in Envoy, where the
 * retry resource is held from the decision to the next one.
 *
 * `tryAcquire` and `release` allocate nothing.
 */
export class RetryBudget {
  readonly #budgetPercent: number;
  readonly #minRetryConcurrency: number;
  readonly #maxRetries: number;
  #active = 0;
  #allowed = 0;
  #refusedBudget = 0;
  #refusedMax = 0;

  constructor(settings: RetryBudgetSettings = DEFAULT_RETRY_SETTINGS) {
    const { budgetPercent, minRetryConcurrency, maxRetries } = settings;
    if (!Number.isFinite(budgetPercent) || budgetPercent < 0 || budgetPercent > 100) {
      throw new RangeError(`retry budgetPercent must be 0-100; got ${budgetPercent}`);
    }
    if (!Number.isInteger(minRetryConcurrency) || minRetryConcurrency < 0) {
      throw new RangeError(
        `retry minRetryConcurrency must be an integer >= 0; got ${minRetryConcurrency}`,
      );
    }
    if (!Number.isInteger(maxRetries) || maxRetries < 0) {
      throw new RangeError(
        `connectionPool.http.maxRetries must be an integer >= 0; got ${maxRetries}`,
      );
    }
    this.#budgetPercent = budgetPercent;
    this.#minRetryConcurrency = minRetryConcurrency;
    this.#maxRetries = maxRetries;
  }

  /** Retries in flight now. */
  get active(): number {
    return this.#active;
  }

  get stats(): RetryBudgetStats {
    return {
      allowed: this.#allowed,
      refusedBudget: this.#refusedBudget,
      refusedMax: this.#refusedMax,
    };
  }

  /**
   * Retries that may be in flight with `activeRequests` requests active on the cluster: the
   * budget, at least the minimum, capped by `maxRetries` (admin API, logs).
   */
  limit(activeRequests: number): number {
    const budget = this.#budget(activeRequests);
    return Math.min(budget, this.#maxRetries);
  }

  /**
   * Let one retry start and count it in flight, or refuse (count why, answer false). Pass the
   * cluster's requests in flight, the one being retried and those waiting for an endpoint or a
   * connection included (Envoy counts active plus pending requests).
   *
   * `budgeted` false: only `maxRetries` applies. remora's departure from Envoy, for retries of a
   * failed connect: the request reached no upstream, so sending it elsewhere cannot multiply
   * the load any backend sees, and bounding it would turn one dead endpoint into errors for a
   * share of all requests until outlier detection notices (measured: 9,000-22,000 errors in the
   * benchmark's failover run at 32 connections with the budget, 0 without).
   */
  tryAcquire(activeRequests: number, budgeted = true): boolean {
    const active = this.#active;
    if (active >= this.#maxRetries) {
      this.#refusedMax++;
      return false;
    }
    if (budgeted && active >= this.#budget(activeRequests)) {
      this.#refusedBudget++;
      return false;
    }
    this.#active = active + 1;
    this.#allowed++;
    return true;
  }

  /**
   * A retry that `tryAcquire` allowed has ended. Call exactly once per allowed retry: an extra
   * call cannot be told apart from another retry's and frees its place. Never goes below 0.
   */
  release(): void {
    if (this.#active > 0) this.#active--;
  }

  #budget(activeRequests: number): number {
    // Multiply first: (29 × 100) / 100 is exactly 29 where 0.29 × 100 is 28.999999999999996.
    // Envoy truncates too.
    // A NaN count (a caller's bug) must not lift the limit: it counts as 0 active requests.
    const budget = Math.floor((this.#budgetPercent * activeRequests) / 100) || 0;
    return Math.max(budget, this.#minRetryConcurrency);
  }
}
