import { type AttemptResult, ResultKind } from "./health.js";

/**
 * Whether a failed attempt is tried again: Istio's VirtualService `retries` (attempts, retryOn,
 * perTryTimeout) with Envoy's semantics for each `retryOn` condition, plus one rule of remora's
 * own that neither has: a request is replayed only when replaying it cannot repeat a side effect
 * (RFC 9110 §9.2.2), unless the config explicitly allows it.
 *
 * Pure logic: the data path asks `decide` once per failed attempt and does the I/O itself; the
 * concurrent-retry limits are health/retry-budget.ts.
 */

/** `retryOn` conditions, one bit each (Envoy's `RetryPolicy::RETRY_ON_*`). */
export enum RetryCondition {
  /** The TCP connect failed or timed out (Envoy: "Included in 5xx"). */
  CONNECT_FAILURE = 1 << 0,
  /**
   * An HTTP/2 stream reset with REFUSED_STREAM (RFC 9113 §8.7: the server guarantees it did not
   * process the request). HTTP/1.1 has no such signal, so over remora's HTTP/1.1 upstreams it
   * matches nothing, exactly as in Envoy, which never retries an HTTP/1 close under it.
   */
  REFUSED_STREAM = 1 << 1,
  /** No response head: connect failure, disconnect, reset, or per-try timeout (Envoy's). */
  RESET = 1 << 2,
  /** Any 5xx response, or no response head at all (Envoy's `5xx`). */
  STATUS_5XX = 1 << 3,
  /** 502, 503, 504, or no response head at all (Envoy's `gateway-error`). */
  GATEWAY_ERROR = 1 << 4,
  /** 409 Conflict (Envoy's `retriable-4xx`). */
  RETRIABLE_4XX = 1 << 5,
  /** A status listed in `retriableStatusCodes`. */
  RETRIABLE_STATUS_CODES = 1 << 6,
  /**
   * Istio's gRPC conditions match a `grpc-status` in the response head. remora forwards
   * HTTP/1.1 only, where no gRPC status exists, so they are accepted (Istio's default names two
   * of them) and match nothing.
   */
  GRPC_UNAVAILABLE = 1 << 7,
  GRPC_CANCELLED = 1 << 8,
  GRPC_DEADLINE_EXCEEDED = 1 << 9,
  GRPC_RESOURCE_EXHAUSTED = 1 << 10,
  GRPC_INTERNAL = 1 << 11,
}

/** Every name `retryOn` accepts besides a bare status code, in the order the docs list them. */
const CONDITIONS: ReadonlyMap<string, RetryCondition> = new Map([
  ["connect-failure", RetryCondition.CONNECT_FAILURE],
  ["refused-stream", RetryCondition.REFUSED_STREAM],
  ["reset", RetryCondition.RESET],
  ["5xx", RetryCondition.STATUS_5XX],
  ["gateway-error", RetryCondition.GATEWAY_ERROR],
  ["retriable-4xx", RetryCondition.RETRIABLE_4XX],
  ["retriable-status-codes", RetryCondition.RETRIABLE_STATUS_CODES],
  ["unavailable", RetryCondition.GRPC_UNAVAILABLE],
  ["cancelled", RetryCondition.GRPC_CANCELLED],
  ["deadline-exceeded", RetryCondition.GRPC_DEADLINE_EXCEEDED],
  ["resource-exhausted", RetryCondition.GRPC_RESOURCE_EXHAUSTED],
  ["internal", RetryCondition.GRPC_INTERNAL],
]);

/** The condition names `retryOn` accepts (a bare status code such as `503` is accepted too). */
export const RETRY_ON_CONDITIONS: readonly string[] = Object.freeze([...CONDITIONS.keys()]);

/** Envoy conditions Istio passes through that remora does not implement: named in the error. */
const UNSUPPORTED = new Set([
  "retriable-headers",
  "reset-before-request",
  "envoy-ratelimited",
  "http3-post-connect-failure",
]);

/** Lowest and highest status a bare code in `retryOn` or `retriableStatusCodes` may name. */
const MIN_STATUS = 100;
const MAX_STATUS = 599;

/** A parsed `retryOn` list. */
export interface RetryOn {
  /** `RetryCondition` bits. */
  readonly conditions: number;
  /**
   * Status codes written bare in the list (`"reset,503"`), ascending, without duplicates. Istio
   * turns them into retriable status codes; remora retries them whether or not the list also
   * names `retriable-status-codes` (which enables `retriableStatusCodes` instead).
   */
  readonly statusCodes: readonly number[];
}

/** A `retryOn` list could not be parsed. */
export class InvalidRetryOnError extends Error {
  override readonly name = "InvalidRetryOnError";
  readonly code = "REMORA_ERR_INVALID_RETRY_ON";
  /** The entry that is wrong, trimmed ("" for an empty entry). */
  readonly token: string;

  constructor(token: string, message: string) {
    super(message);
    this.token = token;
  }
}

const ACCEPTED = `accepted: ${RETRY_ON_CONDITIONS.join(", ")}, or a status code such as 503`;

/**
 * Istio's/Envoy's comma-separated `retryOn`: `"connect-failure,refused-stream,503"`. Whitespace
 * around entries is ignored; an empty (or all-blank) string retries on nothing. Names are
 * case-sensitive, as in Envoy. Throws `InvalidRetryOnError` naming the bad entry and the accepted
 * list; the config schema adds the key's path.
 */
export function parseRetryOn(text: string): RetryOn {
  if (text.trim() === "") return { conditions: 0, statusCodes: [] };
  let conditions = 0;
  const codes = new Set<number>();
  for (const entry of text.split(",")) {
    const token = entry.trim();
    const condition = CONDITIONS.get(token);
    if (condition !== undefined) {
      conditions |= condition;
    } else if (/^[0-9]+$/.test(token)) {
      const status = Number(token);
      if (token.length !== 3 || status < MIN_STATUS || status > MAX_STATUS) {
        throw new InvalidRetryOnError(
          token,
          `retryOn entry "${token}" is not an HTTP status code (${MIN_STATUS}-${MAX_STATUS})`,
        );
      }
      codes.add(status);
    } else if (token === "") {
      throw new InvalidRetryOnError(
        token,
        `retryOn "${text}" has an empty entry (two commas in a row, or a comma at an end); ${ACCEPTED}`,
      );
    } else if (UNSUPPORTED.has(token)) {
      throw new InvalidRetryOnError(
        token,
        `retryOn condition "${token}" is Envoy's but remora does not support it; ${ACCEPTED}`,
      );
    } else {
      const lower = token.toLowerCase();
      const hint = CONDITIONS.has(lower) ? ` (did you mean "${lower}"?)` : "";
      throw new InvalidRetryOnError(
        token,
        `unknown retryOn condition "${token}"${hint}; ${ACCEPTED}`,
      );
    }
  }
  return { conditions, statusCodes: [...codes].sort((x, y) => x - y) };
}

/**
 * `services[].retries` (Istio's HTTPRetry) with the retry budget and the concurrent-retry cap, as
 * the config schema produces them (durations in ms).
 */
export interface RetrySettings {
  /**
   * Retries after the first attempt (Istio's `attempts`, Envoy's `num_retries`): 2 means up to
   * three tries. 0 disables every retry, connect failures included.
   */
  readonly attempts: number;
  /** Comma-separated conditions (`parseRetryOn`). */
  readonly retryOn: string;
  /** Statuses retried when `retryOn` names `retriable-status-codes`. */
  readonly retriableStatusCodes: readonly number[];
  /** Each attempt's timeout; 0 = none (only the route's `timeout` bounds it). */
  readonly perTryTimeoutMs: number;
  /** Full-jitter backoff: the first retry waits up to this long (Envoy's base_interval). */
  readonly backoffBaseMs: number;
  /** ... and no retry waits longer than this (Envoy's max_interval). */
  readonly backoffMaxMs: number;
  /**
   * remora's own: replay a request that reached the upstream although its method is not
   * idempotent (POST, PATCH, ...). Off by default: a double payment is worse than an error.
   */
  readonly retryNonIdempotent: boolean;
  /** Retries in flight may be at most this percent of the cluster's active requests (Envoy's). */
  readonly budgetPercent: number;
  /** ... but this many retries may always be in flight (Envoy's min_retry_concurrency). */
  readonly minRetryConcurrency: number;
  /** Hard cap on retries in flight per cluster (Istio's connectionPool.http.maxRetries). */
  readonly maxRetries: number;
}

/** Istio's default retry policy, Envoy's default backoff and budget, Istio's default maxRetries. */
export const DEFAULT_RETRY_SETTINGS: RetrySettings = Object.freeze({
  attempts: 2,
  retryOn: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
  retriableStatusCodes: Object.freeze([503]),
  perTryTimeoutMs: 0,
  backoffBaseMs: 25,
  backoffMaxMs: 250,
  retryNonIdempotent: false,
  budgetPercent: 20,
  minRetryConcurrency: 3,
  maxRetries: 2 ** 32 - 1,
});

/**
 * What the data path knows when an attempt has failed. A caller may keep one mutable object per
 * exchange and refill it, so asking allocates nothing.
 */
export interface RetryAttempt {
  /** How the attempt ended (the same value reported to the health monitor). */
  readonly result: AttemptResult;
  /** Retries already made for this request: 0 when its first attempt failed. */
  readonly attemptsMade: number;
  /** The request method as received (case-sensitive, RFC 9110 §9.1). */
  readonly method: string;
  /** Some bytes of the request body reached the upstream during this attempt. */
  readonly requestBodySent: boolean;
  /** The whole request body is held for replay, or there is none. */
  readonly replayable: boolean;
  /** Bytes of a response (an interim 1xx included) already went to the client. */
  readonly responseStarted: boolean;
}

/** `decide`'s answer. Only `RETRY` leads to another attempt (budget permitting). */
export enum RetryVerdict {
  /** Try again (after `backoffMs`, on another endpoint when one is eligible). */
  RETRY = 0,
  /** The result is a success, or a failure `retryOn` does not name (or `attempts` is 0). */
  NO_RETRY_NOT_RETRIABLE = 1,
  /** Retriable and safe, but `attempts` retries were made already: response flag URX. */
  NO_RETRY_LIMIT = 2,
  /**
   * Retriable, but the request reached the upstream and replaying it could repeat a side effect
   * (method not idempotent) or cannot be done (body streamed beyond the replay buffer).
   */
  NO_RETRY_UNSAFE = 3,
  /** Part of a response already went to the client: a retry cannot take it back. */
  NO_RETRY_STARTED = 4,
}

/** RFC 9110 §9.2.2: the methods whose repetition has the effect of one request. */
export function isIdempotent(method: string): boolean {
  switch (method) {
    case "GET":
    case "HEAD":
    case "OPTIONS":
    case "TRACE":
    case "PUT":
    case "DELETE":
      return true;
    default:
      return false;
  }
}

/**
 * Envoy's full jitter (JitteredExponentialBackOffStrategy): whole milliseconds, uniform in
 * [0, min(maxMs, baseMs × 2^(retryNumber-1))). `retryNumber` counts from 1 (below 1 counts as 1).
 */
export function fullJitterBackoffMs(
  retryNumber: number,
  baseMs: number,
  maxMs: number,
  random: () => number,
): number {
  const doublings = retryNumber > 1 ? retryNumber - 1 : 0;
  let window = baseMs * 2 ** doublings;
  if (window > maxMs) window = maxMs; // Infinity for huge retry numbers: the cap
  const ms = Math.floor(random() * window);
  // A random() that returns 1 (or more) must not reach the window's end.
  return ms < window ? ms : Math.max(0, Math.ceil(window) - 1);
}

/** Results by kind that no response head came with: which conditions retry each. */
const CONNECT_FAILED_BY =
  RetryCondition.CONNECT_FAILURE |
  RetryCondition.RESET |
  RetryCondition.STATUS_5XX |
  RetryCondition.GATEWAY_ERROR;
/** Reset or per-try timeout: Envoy treats a per-try timeout as a local reset of the stream. */
const NO_RESPONSE_BY =
  RetryCondition.RESET | RetryCondition.STATUS_5XX | RetryCondition.GATEWAY_ERROR;

/** One past the highest status any condition can name (Envoy's 5xx is 500-599). */
const STATUS_TABLE_SIZE = MAX_STATUS + 1;

/**
 * One cluster's retry policy, built once per config: `retryOn` and the status codes are folded
 * into lookup tables so `decide` is a few branches and two array reads, allocation-free.
 *
 * Conditions against results (Envoy's semantics; "local" = CONNECT_FAILED, RESET, TIMEOUT):
 * - connect-failure: CONNECT_FAILED.
 * - reset, 5xx, gateway-error: every local result (Envoy retries a per-try timeout as a local
 *   reset); 5xx also any status 500-599; gateway-error also 502, 503, 504.
 * - retriable-4xx: 409. retriable-status-codes: `retriableStatusCodes`. Bare codes: themselves.
 * - refused-stream and the gRPC names: nothing over HTTP/1.1 (see `RetryCondition`).
 *
 * Safety (remora's rule, checked only for retriable results): CONNECT_FAILED is always safe, as
 * nothing reached the upstream. Any other result means the request head reached it, so the
 * request is replayed only when its method is idempotent (or `retryNonIdempotent`) and, if body
 * bytes went out, the whole body is held for replay.
 *
 * Verdict precedence: response started, then not retriable, then unsafe, then the limit; so
 * NO_RETRY_LIMIT (URX) means "only the count stopped it".
 */
export class RetryPolicy {
  readonly settings: RetrySettings;
  readonly retryOn: RetryOn;
  readonly #attempts: number;
  readonly #retryNonIdempotent: boolean;
  readonly #backoffBaseMs: number;
  readonly #backoffMaxMs: number;
  /** 1 where a local result kind (`ResultKind`, used as index) is retriable. */
  readonly #localRetriable = new Uint8Array(4);
  /** 1 where a response status is retriable. */
  readonly #statusRetriable = new Uint8Array(STATUS_TABLE_SIZE);

  constructor(settings: RetrySettings = DEFAULT_RETRY_SETTINGS) {
    const { attempts, retriableStatusCodes, perTryTimeoutMs, backoffBaseMs, backoffMaxMs } =
      settings;
    if (!Number.isInteger(attempts) || attempts < 0) {
      throw new RangeError(`retries.attempts must be an integer >= 0; got ${attempts}`);
    }
    for (const status of retriableStatusCodes) {
      if (!Number.isInteger(status) || status < MIN_STATUS || status > MAX_STATUS) {
        throw new RangeError(
          `retries.retriableStatusCodes must be HTTP status codes (${MIN_STATUS}-${MAX_STATUS}); got ${status}`,
        );
      }
    }
    if (!Number.isFinite(perTryTimeoutMs) || perTryTimeoutMs < 0) {
      throw new RangeError(`retries.perTryTimeout must be finite and >= 0; got ${perTryTimeoutMs}`);
    }
    if (!Number.isFinite(backoffBaseMs) || backoffBaseMs < 0) {
      throw new RangeError(`retry backoff base must be finite and >= 0 ms; got ${backoffBaseMs}`);
    }
    if (!Number.isFinite(backoffMaxMs) || backoffMaxMs < backoffBaseMs) {
      throw new RangeError(
        `retry backoff max must be finite and >= the base (${backoffBaseMs} ms); got ${backoffMaxMs}`,
      );
    }
    this.settings = settings;
    this.retryOn = parseRetryOn(settings.retryOn);
    this.#attempts = attempts;
    this.#retryNonIdempotent = settings.retryNonIdempotent;
    this.#backoffBaseMs = backoffBaseMs;
    this.#backoffMaxMs = backoffMaxMs;
    // attempts 0: Istio emits no retry policy at all, so nothing is retriable (and nothing is URX).
    if (attempts > 0) this.#fill(this.retryOn.conditions, retriableStatusCodes);
  }

  #fill(conditions: number, retriableStatusCodes: readonly number[]): void {
    const local = this.#localRetriable;
    if (conditions & CONNECT_FAILED_BY) local[ResultKind.CONNECT_FAILED] = 1;
    if (conditions & NO_RESPONSE_BY) {
      local[ResultKind.RESET] = 1;
      local[ResultKind.TIMEOUT] = 1;
    }
    const status = this.#statusRetriable;
    if (conditions & RetryCondition.STATUS_5XX) status.fill(1, 500, 600);
    if (conditions & RetryCondition.GATEWAY_ERROR) status.fill(1, 502, 505);
    if (conditions & RetryCondition.RETRIABLE_4XX) status[409] = 1;
    if (conditions & RetryCondition.RETRIABLE_STATUS_CODES) {
      for (const code of retriableStatusCodes) status[code] = 1;
    }
    for (const code of this.retryOn.statusCodes) status[code] = 1;
  }

  /** Whether `result` is a failure this policy's `retryOn` names, safety aside. */
  retriable(result: AttemptResult): boolean {
    const kind = result.kind;
    if (kind === ResultKind.HTTP) {
      const status = result.status;
      return status >= 0 && status < STATUS_TABLE_SIZE && this.#statusRetriable[status] === 1;
    }
    return this.#localRetriable[kind] === 1;
  }

  /** Whether an attempt that failed as `attempt` says is tried again; see the class comment. */
  decide(attempt: RetryAttempt): RetryVerdict {
    if (attempt.responseStarted) return RetryVerdict.NO_RETRY_STARTED;
    const result = attempt.result;
    if (!this.retriable(result)) return RetryVerdict.NO_RETRY_NOT_RETRIABLE;
    if (result.kind !== ResultKind.CONNECT_FAILED) {
      // The head reached the upstream: it may have acted on the request.
      if (attempt.requestBodySent && !attempt.replayable) return RetryVerdict.NO_RETRY_UNSAFE;
      if (!this.#retryNonIdempotent && !isIdempotent(attempt.method)) {
        return RetryVerdict.NO_RETRY_UNSAFE;
      }
    }
    if (attempt.attemptsMade >= this.#attempts) return RetryVerdict.NO_RETRY_LIMIT;
    return RetryVerdict.RETRY;
  }

  /** How long retry number `retryNumber` (1 for the first retry) waits: Envoy's full jitter. */
  backoffMs(retryNumber: number, random: () => number): number {
    return fullJitterBackoffMs(retryNumber, this.#backoffBaseMs, this.#backoffMaxMs, random);
  }
}
