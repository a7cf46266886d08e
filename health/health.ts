/**
 * The contract between the data path and health/: what one attempt on one endpoint reports,
 * and the health flags that decide whether an endpoint takes new requests.
 *
 * Envoy's model, in remora's terms:
 * - Every attempt ends with exactly one `AttemptResult`, reported once to the endpoint's health
 *   monitor (`putResult`) and to the balancer (`onEnd`). remora's own refusals (queue full,
 *   circuit breaker, retry budget) are not results about a host and are never reported.
 * - Health is one flag per source on each endpoint (`HealthFlag`): active checks and outlier
 *   detection each set and clear only their own. An endpoint is healthy when no flag is set;
 *   discovery's readiness (`Endpoint.ready`) is separate and never overridden here.
 * - Ejection filters endpoints before `Balancer.update` (lb/host-set.ts), so balancers stay pure.
 * - Time is injected (`clock`, monotonic ms) and so is randomness, so tests are exact.
 */

/** How an attempt ended, as the outlier detector classifies it (Envoy's `Result`). */
export enum ResultKind {
  /** A response head arrived (any status; `status` says which). */
  HTTP = 0,
  /** Locally originated: the TCP connect failed or timed out. Nothing reached the upstream. */
  CONNECT_FAILED = 1,
  /** Locally originated: the connection closed or reset before a complete response head. */
  RESET = 2,
  /** Locally originated: the per-try (or whole-request) timeout fired before a response head. */
  TIMEOUT = 3,
}

/** One attempt's outcome. `status` is the response status for HTTP, 0 otherwise. */
export interface AttemptResult {
  readonly kind: ResultKind;
  readonly status: number;
}

/** Locally originated failures (connect, reset, timeout): Envoy's "local origin" errors. */
export function isLocalOrigin(result: AttemptResult): boolean {
  return result.kind !== ResultKind.HTTP;
}

/** A 5xx response, or any locally originated failure: a failure for `consecutiveErrors`. */
export function isFailure(result: AttemptResult): boolean {
  return result.kind !== ResultKind.HTTP || result.status >= 500;
}

/** 502, 503, 504, or a locally originated failure (Envoy's gateway errors). */
export function isGatewayError(result: AttemptResult): boolean {
  return (
    result.kind !== ResultKind.HTTP ||
    result.status === 502 ||
    result.status === 503 ||
    result.status === 504
  );
}

/** One bit per health source (Envoy's HealthFlag). An endpoint is healthy with none set. */
export enum HealthFlag {
  /** Active health checks failed `unhealthyThreshold` times in a row. */
  FAILED_ACTIVE_CHECK = 1,
  /** Outlier detection ejected it. */
  FAILED_OUTLIER_CHECK = 2,
}

/** Why a flag is set, for logs, `/clusters` and the dashboard. */
export interface FlagReason {
  readonly flag: HealthFlag;
  /** "active-check" or "outlier-detection". */
  readonly source: string;
  /** Human words: "5 consecutive errors (last: 503)", "GET /healthz answered 500". */
  readonly reason: string;
  /** When the flag will be cleared at the earliest (ms since the epoch), or 0 when unknown. */
  readonly untilMs: number;
}

/**
 * Where health sources write their flags: one per cluster, keyed by endpoint id. Setting or
 * clearing a flag that is already so is a no-op; a change makes the cluster re-filter its
 * endpoints (and rebuild its balancers) once, synchronously.
 */
export interface HealthFlagSink {
  set(endpointId: string, reason: FlagReason): void;
  clear(endpointId: string, flag: HealthFlag): void;
}
