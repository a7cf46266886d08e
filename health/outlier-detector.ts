import type { Logger } from "../proxy/log.js";
import {
  type AttemptResult,
  type FlagReason,
  HealthFlag,
  type HealthFlagSink,
  isFailure,
  isGatewayError,
  ResultKind,
} from "./health.js";

/**
 * Passive health (Istio's `outlierDetection`, Envoy's outlier detection) for one cluster. Durations
 * in ms; the config schema produces this from the YAML keys of the same names.
 */
export interface OutlierSettings {
  /**
   * `consecutive` (retry-based, the default): eject after `consecutiveErrors` failures in a row
   * (or `consecutiveGatewayErrors` gateway errors in a row). `fail-fast`: the first failure
   * ejects.
   */
  readonly mode: "fail-fast" | "consecutive";
  /** 5xx responses or locally originated failures in a row that eject (Istio's consecutive5xxErrors); 0 = off. */
  readonly consecutiveErrors: number;
  /** 502/503/504 or locally originated failures in a row that eject; 0 = off (Istio's default). */
  readonly consecutiveGatewayErrors: number;
  /** Locally originated failures in a row that eject; used only with `splitExternalLocalOriginErrors`; 0 = off. */
  readonly consecutiveLocalOriginFailures: number;
  /**
   * Envoy's split_external_local_origin_errors: local-origin failures (connect, reset, timeout)
   * count only toward `consecutiveLocalOriginFailures`, HTTP 5xx only toward `consecutiveErrors`
   * and `consecutiveGatewayErrors`.
   */
  readonly splitExternalLocalOriginErrors: boolean;
  /** The sweep that decays ejection multipliers of endpoints that stay healthy. */
  readonly intervalMs: number;
  /** Ejection time = baseEjectionTimeMs × the multiplier (times ejected, decaying). */
  readonly baseEjectionTimeMs: number;
  /** Cap on one ejection's time (below `baseEjectionTimeMs` it acts as `baseEjectionTimeMs`, Envoy's rule). */
  readonly maxEjectionTimeMs: number;
  /** Percentage of the cluster's endpoints that may be ejected at once (at least one when > 0). */
  readonly maxEjectionPercent: number;
}

/** Istio's defaults (DestinationRule outlierDetection), plus remora's `mode`. */
export const DEFAULT_OUTLIER_SETTINGS: OutlierSettings = Object.freeze({
  mode: "consecutive",
  consecutiveErrors: 5,
  consecutiveGatewayErrors: 0,
  consecutiveLocalOriginFailures: 5,
  splitExternalLocalOriginErrors: false,
  intervalMs: 10_000,
  baseEjectionTimeMs: 30_000,
  maxEjectionTimeMs: 300_000,
  maxEjectionPercent: 10,
});

/**
 * What the detector did, for the admin API, dashboard and metrics:
 * - `eject`: the endpoint is ejected until `untilMs`;
 * - `detected`: it met an ejection condition but `maxEjectionPercent` stopped the ejection
 *   (reported once per failure streak; `untilMs` is 0);
 * - `return`: its ejection time passed and it takes requests again, on probation.
 */
export interface OutlierEvent {
  readonly kind: "eject" | "return" | "detected";
  readonly endpointId: string;
  readonly reason: string;
  /** Epoch ms the ejection ends (`eject`), 0 otherwise. */
  readonly untilMs: number;
  /** The ejection multiplier after the event. */
  readonly ejections: number;
}

/** One endpoint's outlier state, for `/clusters` and the dashboard. */
export interface OutlierDescription {
  readonly ejected: boolean;
  /** Epoch ms the ejection ends; 0 when not ejected. */
  readonly untilMs: number;
  /** The multiplier: the next ejection lasts baseEjectionTime × (ejections + 1), capped. */
  readonly ejections: number;
  /** Why it is ejected, or why it would be (maxEjectionPercent stopped it); "" when healthy. */
  readonly reason: string;
  /** Returned from an ejection and waiting for its first result, which decides. */
  readonly probation: boolean;
}

export interface OutlierStats {
  /** Ejections carried out (flag set). */
  readonly ejectionsEnforced: number;
  /** Ejection conditions met, whether carried out or stopped by `maxEjectionPercent`. */
  readonly ejectionsDetected: number;
  /** Endpoints ejected right now. */
  readonly ejectedNow: number;
}

/** The two methods used, with pino's shape (a child logger can carry the service name). */
export type OutlierLogger = Pick<Logger, "info" | "warn">;

export interface OutlierDetectorOptions {
  /** Monotonic ms; default `performance.now()`. Epoch times are `performance.timeOrigin` + this. */
  readonly clock?: () => number;
  readonly logger?: OutlierLogger;
  readonly onEvent?: (event: OutlierEvent) => void;
}

/** The `source` of the flags this detector sets. */
export const OUTLIER_SOURCE = "outlier-detection";
/** Node clamps longer timer delays to 1 ms (TimeoutOverflowWarning); longer waits re-arm. */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

// Which condition a result met (numbers, so the hot path passes no strings around).
const NONE = 0;
const CONSECUTIVE_ERRORS = 1;
const CONSECUTIVE_GATEWAY = 2;
const CONSECUTIVE_LOCAL_ORIGIN = 3;
const FAIL_FAST = 4;
const PROBATION = 5;
type Trigger = 0 | 1 | 2 | 3 | 4 | 5;

/** One endpoint's counters and ejection state; kept while the endpoint is in the set. */
class EndpointState {
  readonly id: string;
  /** `update` call that last saw this id (spots departures and duplicates). */
  seen = 0;
  /** Failures in a row (isFailure; in split mode HTTP 5xx only). */
  errors = 0;
  /** Gateway errors in a row (isGatewayError; in split mode 502/503/504 only). */
  gateway = 0;
  /** Local-origin failures in a row (split mode only). */
  local = 0;
  ejected = false;
  /** Clock time the ejection ends. */
  until = 0;
  /** Returned and waiting for the first result, which decides. */
  probation = false;
  /** Met a condition that `maxEjectionPercent` stopped; cleared when the streak ends. */
  pending = false;
  /** Envoy's ejection-time backoff: +1 per ejection (capped), -1 per healthy sweep. */
  multiplier = 0;
  /** The ejection's (or the stopped detection's) reason; "" otherwise. */
  reason = "";

  constructor(id: string) {
    this.id = id;
  }
}

/**
 * Ejects failing endpoints of one cluster on the outcomes the data path reports (`putResult`),
 * through the cluster's `HealthFlagSink` (flag FAILED_OUTLIER_CHECK), and returns them when their
 * ejection time has passed.
 *
 * Conditions (`putResult`):
 * - fail-fast: any failure (`isFailure`: 5xx, connect failure, reset, timeout) ejects.
 * - consecutive: `consecutiveErrors` failures in a row, or `consecutiveGatewayErrors` gateway
 *   errors in a row (a 500 breaks a gateway streak, as in Envoy); a result that is not a failure
 *   resets the count. With `splitExternalLocalOriginErrors`, local-origin failures count only
 *   toward `consecutiveLocalOriginFailures` (and leave the HTTP counts alone); any HTTP response
 *   resets the local-origin count, since the connection worked.
 * - probation: an endpoint that returned from an ejection is judged by its first result. One that
 *   counts toward an enabled condition ejects it again at once; anything else ends probation and
 *   counting starts from zero.
 *
 * Ejection time = baseEjectionTime × multiplier, capped by maxEjectionTime. The multiplier goes
 * up by one per ejection (not past the cap, so that decay starts working at once, as Envoy does)
 * and down by one at each `interval` sweep that finds the endpoint healthy: not ejected, not on
 * probation, not held by maxEjectionPercent (Envoy's checkHostForUneject). The sweep runs only
 * while some multiplier is above 0.
 *
 * Returns happen on a timer set for the earliest ejection end, not at the interval sweep as in
 * Envoy: the issue promises that no request reaches an ejected endpoint until its ejection time
 * has passed, and a sweep would keep it out for up to one interval longer than that. A timer that
 * fires early (clock granularity) re-arms; nothing returns before its time.
 *
 * maxEjectionPercent: an ejection goes ahead when no endpoint is ejected (at least one may always
 * be, as older Envoy allowed: a 3-endpoint cluster at 10% can eject one) or when the ejected
 * count after it stays within the percentage of `update`'s endpoints. 0 ejects nothing (detect
 * only). When the bound stops an ejection it is counted as detected, logged and reported once
 * for the streak, and the endpoint keeps taking traffic; every further failure in the same streak
 * tries again, so it is ejected as soon as room frees up (Envoy instead resets the count and
 * detects again N failures later).
 *
 * Results for an ejected endpoint (requests in flight when it was ejected) are ignored, so they
 * neither count nor eject it twice. Results for ids not in the set are ignored.
 *
 * Cost: `putResult` is a map lookup and a few integer operations, allocation-free unless it
 * ejects. Re-entrancy: state is settled before the sink, the logger and `onEvent` are called, so
 * they may call back into the detector.
 */
export class OutlierDetector {
  readonly #sink: HealthFlagSink;
  readonly #clock: () => number;
  readonly #logger: OutlierLogger | undefined;
  readonly #onEvent: ((event: OutlierEvent) => void) | undefined;

  readonly #failFast: boolean;
  readonly #split: boolean;
  readonly #consecutiveErrors: number;
  readonly #consecutiveGateway: number;
  readonly #consecutiveLocal: number;
  readonly #intervalMs: number;
  readonly #baseMs: number;
  /** maxEjectionTime, at least baseEjectionTime. */
  readonly #maxMs: number;
  /** The multiplier stops growing here: base × cap reaches maxMs. */
  readonly #maxMultiplier: number;
  readonly #maxPercent: number;

  readonly #states = new Map<string, EndpointState>();
  readonly #ejected = new Set<EndpointState>();
  #updates = 0;
  #closed = false;

  #returnTimer: NodeJS.Timeout | null = null;
  /** Clock time the return timer is set for; +Infinity when none is pending. */
  #returnAt = Number.POSITIVE_INFINITY;
  #sweepTimer: NodeJS.Timeout | null = null;

  #enforced = 0;
  #detected = 0;

  constructor(
    settings: OutlierSettings,
    sink: HealthFlagSink,
    options: OutlierDetectorOptions = {},
  ) {
    const {
      mode,
      consecutiveErrors,
      consecutiveGatewayErrors,
      consecutiveLocalOriginFailures,
      splitExternalLocalOriginErrors,
      intervalMs,
      baseEjectionTimeMs,
      maxEjectionTimeMs,
      maxEjectionPercent,
    } = settings;
    if (mode !== "fail-fast" && mode !== "consecutive") {
      throw new RangeError(
        `outlier detection mode must be "fail-fast" or "consecutive"; got ${mode}`,
      );
    }
    count("consecutiveErrors", consecutiveErrors);
    count("consecutiveGatewayErrors", consecutiveGatewayErrors);
    count("consecutiveLocalOriginFailures", consecutiveLocalOriginFailures);
    duration("intervalMs", intervalMs);
    duration("baseEjectionTimeMs", baseEjectionTimeMs);
    duration("maxEjectionTimeMs", maxEjectionTimeMs);
    if (!(maxEjectionPercent >= 0 && maxEjectionPercent <= 100)) {
      throw new RangeError(
        `outlier detection needs maxEjectionPercent between 0 and 100; got ${maxEjectionPercent}`,
      );
    }
    this.#sink = sink;
    this.#clock = options.clock ?? (() => performance.now());
    this.#logger = options.logger;
    this.#onEvent = options.onEvent;
    this.#failFast = mode === "fail-fast";
    this.#split = splitExternalLocalOriginErrors === true;
    this.#consecutiveErrors = consecutiveErrors;
    this.#consecutiveGateway = consecutiveGatewayErrors;
    this.#consecutiveLocal = consecutiveLocalOriginFailures;
    this.#intervalMs = intervalMs;
    this.#baseMs = baseEjectionTimeMs;
    this.#maxMs = Math.max(baseEjectionTimeMs, maxEjectionTimeMs);
    this.#maxMultiplier = Math.ceil(this.#maxMs / baseEjectionTimeMs);
    this.#maxPercent = maxEjectionPercent;
  }

  get stats(): OutlierStats {
    return {
      ejectionsEnforced: this.#enforced,
      ejectionsDetected: this.#detected,
      ejectedNow: this.#ejected.size,
    };
  }

  /**
   * The cluster's endpoint ids now (every endpoint discovery has for it: the base of
   * maxEjectionPercent). State of ids that stay is kept; ids that left lose theirs, and the flag
   * of one that was ejected is cleared, so an id that comes back later starts clean.
   */
  update(endpointIds: readonly string[]): void {
    if (this.#closed) return;
    const seen = ++this.#updates;
    const states = this.#states;
    for (const id of endpointIds) {
      let state = states.get(id);
      if (state === undefined) {
        state = new EndpointState(id);
        states.set(id, state);
      }
      state.seen = seen;
    }
    const departedEjected: EndpointState[] = [];
    for (const state of states.values()) {
      if (state.seen === seen) continue;
      states.delete(state.id);
      if (state.ejected) {
        state.ejected = false;
        this.#ejected.delete(state);
        departedEjected.push(state);
      }
    }
    if (this.#ejected.size === 0) this.#disarmReturn();
    // Last, with the detector settled: the sink may re-filter the cluster synchronously.
    for (const state of departedEjected) {
      this.#sink.clear(state.id, HealthFlag.FAILED_OUTLIER_CHECK);
    }
  }

  /** The outcome of one attempt on `endpointId` (reported once per attempt by the data path). */
  putResult(endpointId: string, result: AttemptResult): void {
    const state = this.#states.get(endpointId);
    // Unknown (left the set, or closed) or ejected: in-flight results must not eject twice.
    if (state === undefined || state.ejected) return;
    const trigger = this.#count(state, result);
    if (trigger === NONE) {
      state.pending = false;
      return;
    }
    this.#eject(state, trigger, result);
  }

  /** One endpoint's state for the admin API; undefined for ids not in the set. */
  describe(endpointId: string): OutlierDescription | undefined {
    const state = this.#states.get(endpointId);
    if (state === undefined) return undefined;
    let reason = "";
    if (state.ejected) reason = state.reason;
    else if (state.pending) {
      reason = `${state.reason} (not ejected: maxEjectionPercent ${this.#maxPercent} reached)`;
    }
    return {
      ejected: state.ejected,
      untilMs: state.ejected ? this.#epoch(state.until) : 0,
      ejections: state.multiplier,
      reason,
      probation: state.probation,
    };
  }

  /** Stop the timers. Flags stay as they are; later calls do nothing. */
  close(): void {
    this.#closed = true;
    this.#disarmReturn();
    this.#stopSweep();
    this.#states.clear();
    this.#ejected.clear();
  }

  /** Update `state`'s counters with `result`; which condition (if any) it now meets. */
  #count(state: EndpointState, result: AttemptResult): Trigger {
    if (this.#failFast) {
      if (!isFailure(result)) {
        state.errors = 0;
        state.probation = false;
        return NONE;
      }
      state.errors++;
      return FAIL_FAST;
    }
    let counted: boolean;
    if (this.#split && result.kind !== ResultKind.HTTP) {
      state.local++;
      counted = this.#consecutiveLocal > 0;
    } else {
      // A response head arrived (or split is off): the HTTP counts, with local failures in them
      // when split is off (isFailure and isGatewayError include them).
      if (this.#split) state.local = 0;
      const failure = isFailure(result);
      const gateway = isGatewayError(result);
      state.errors = failure ? state.errors + 1 : 0;
      state.gateway = gateway ? state.gateway + 1 : 0;
      counted =
        (failure && this.#consecutiveErrors > 0) || (gateway && this.#consecutiveGateway > 0);
    }
    if (state.probation) {
      if (counted) return PROBATION;
      state.probation = false;
      return NONE;
    }
    if (!counted) return NONE;
    if (this.#consecutiveErrors > 0 && state.errors >= this.#consecutiveErrors) {
      return CONSECUTIVE_ERRORS;
    }
    if (this.#consecutiveGateway > 0 && state.gateway >= this.#consecutiveGateway) {
      return CONSECUTIVE_GATEWAY;
    }
    if (this.#split && this.#consecutiveLocal > 0 && state.local >= this.#consecutiveLocal) {
      return CONSECUTIVE_LOCAL_ORIGIN;
    }
    return NONE;
  }

  /** The ejected count may grow by one (maxEjectionPercent, at least one when > 0). */
  #mayEject(): boolean {
    if (this.#maxPercent <= 0) return false;
    const ejected = this.#ejected.size;
    return ejected === 0 || (ejected + 1) * 100 <= this.#maxPercent * this.#states.size;
  }

  #eject(state: EndpointState, trigger: Trigger, result: AttemptResult): void {
    if (!this.#mayEject()) {
      if (state.pending) return; // reported when the streak first met the condition
      state.pending = true;
      state.reason = this.#reason(state, trigger, result);
      this.#detected++;
      this.#logger?.warn(
        {
          endpoint: state.id,
          reason: state.reason,
          ejectedNow: this.#ejected.size,
          endpoints: this.#states.size,
          maxEjectionPercent: this.#maxPercent,
        },
        "outlier detected, not ejected: maxEjectionPercent reached",
      );
      this.#onEvent?.({
        kind: "detected",
        endpointId: state.id,
        reason: state.reason,
        untilMs: 0,
        ejections: state.multiplier,
      });
      return;
    }
    const reason = this.#reason(state, trigger, result);
    if (!state.pending) this.#detected++; // a held one was counted when first detected
    this.#enforced++;
    state.pending = false;
    state.probation = false;
    state.errors = 0;
    state.gateway = 0;
    state.local = 0;
    if (state.multiplier < this.#maxMultiplier) state.multiplier++;
    const ejectionMs = Math.min(this.#baseMs * state.multiplier, this.#maxMs);
    state.until = this.#clock() + ejectionMs;
    state.ejected = true;
    state.reason = reason;
    this.#ejected.add(state);
    if (state.until < this.#returnAt) this.#armReturn(state.until);
    if (this.#sweepTimer === null) this.#startSweep();
    const untilMs = this.#epoch(state.until);
    const flag: FlagReason = {
      flag: HealthFlag.FAILED_OUTLIER_CHECK,
      source: OUTLIER_SOURCE,
      reason,
      untilMs,
    };
    this.#sink.set(state.id, flag);
    this.#logger?.warn(
      {
        endpoint: state.id,
        reason,
        ejections: state.multiplier,
        ejectionMs,
        until: new Date(untilMs).toISOString(),
      },
      "outlier ejected",
    );
    this.#onEvent?.({
      kind: "eject",
      endpointId: state.id,
      reason,
      untilMs,
      ejections: state.multiplier,
    });
  }

  /** Human words for the condition `result` completed (built only when ejecting). */
  #reason(state: EndpointState, trigger: Trigger, result: AttemptResult): string {
    const last = describeResult(result);
    switch (trigger) {
      case FAIL_FAST:
        return state.errors === 1
          ? `first failure (fail-fast): ${last}`
          : `${state.errors} consecutive errors (fail-fast, last: ${last})`;
      case PROBATION:
        return `probation failed: ${last}`;
      case CONSECUTIVE_GATEWAY:
        return `${state.gateway} consecutive gateway errors (last: ${last})`;
      case CONSECUTIVE_LOCAL_ORIGIN:
        return `${state.local} consecutive local-origin failures (last: ${last})`;
      default:
        return `${state.errors} consecutive errors (last: ${last})`;
    }
  }

  /** The ejection time passed: back into rotation, on probation. */
  /**
   * An active health check passed for `endpointId` (Envoy's
   * successful_active_health_check_uneject_host): an ejected endpoint returns now, on probation,
   * instead of waiting out its ejection time. No-op when it is not ejected.
   */
  activeCheckPassed(endpointId: string): void {
    const state = this.#states.get(endpointId);
    if (state === undefined || !state.ejected) return;
    this.#return(state, "active health check passed");
    if (this.#ejected.size === 0) this.#disarmReturn();
  }

  #return(state: EndpointState, reason = "ejection time passed"): void {
    state.ejected = false;
    state.until = 0;
    state.reason = "";
    state.probation = true;
    state.errors = 0;
    state.gateway = 0;
    state.local = 0;
    this.#ejected.delete(state);
    this.#sink.clear(state.id, HealthFlag.FAILED_OUTLIER_CHECK);
    this.#logger?.info(
      { endpoint: state.id, reason, ejections: state.multiplier },
      "outlier returned (on probation)",
    );
    this.#onEvent?.({
      kind: "return",
      endpointId: state.id,
      reason,
      untilMs: 0,
      ejections: state.multiplier,
    });
  }

  #armReturn(at: number): void {
    if (this.#returnTimer !== null) clearTimeout(this.#returnTimer);
    const delay = Math.min(MAX_TIMER_DELAY_MS, Math.max(1, Math.ceil(at - this.#clock())));
    this.#returnTimer = setTimeout(this.#onReturnTimer, delay);
    this.#returnTimer.unref();
    this.#returnAt = at;
  }

  #disarmReturn(): void {
    if (this.#returnTimer !== null) clearTimeout(this.#returnTimer);
    this.#returnTimer = null;
    this.#returnAt = Number.POSITIVE_INFINITY;
  }

  /** Return every endpoint whose time has passed, then re-arm for the next one. */
  #onReturnTimer = (): void => {
    this.#returnTimer = null;
    this.#returnAt = Number.POSITIVE_INFINITY;
    const now = this.#clock();
    const due: EndpointState[] = [];
    for (const state of this.#ejected) if (state.until <= now) due.push(state);
    try {
      for (const state of due) {
        // A callback may have changed the set (update) while we were returning others.
        if (state.ejected) this.#return(state);
      }
    } finally {
      let next = Number.POSITIVE_INFINITY;
      for (const state of this.#ejected) if (state.until < next) next = state.until;
      if (next < this.#returnAt) this.#armReturn(next);
    }
  };

  #startSweep(): void {
    this.#sweepTimer = setInterval(this.#sweep, this.#intervalMs);
    this.#sweepTimer.unref();
  }

  #stopSweep(): void {
    if (this.#sweepTimer !== null) clearInterval(this.#sweepTimer);
    this.#sweepTimer = null;
  }

  /** Envoy's interval: healthy endpoints' multipliers go down by one; stop when all are 0. */
  #sweep = (): void => {
    let any = false;
    for (const state of this.#states.values()) {
      if (state.multiplier === 0) continue;
      if (!state.ejected && !state.probation && !state.pending) state.multiplier--;
      if (state.multiplier > 0) any = true;
    }
    if (!any) this.#stopSweep();
  };

  #epoch(clockMs: number): number {
    return Math.round(performance.timeOrigin + clockMs);
  }
}

/** "503", "connect failed", "reset", "timeout": the last result in a reason. */
export function describeResult(result: AttemptResult): string {
  switch (result.kind) {
    case ResultKind.HTTP:
      return String(result.status);
    case ResultKind.CONNECT_FAILED:
      return "connect failed";
    case ResultKind.RESET:
      return "reset";
    case ResultKind.TIMEOUT:
      return "timeout";
    default:
      return `result ${String(result.kind)}`;
  }
}

function count(name: string, value: number): void {
  if (!Number.isInteger(value) || value < 0) {
    throw new RangeError(
      `outlier detection needs ${name}, an integer >= 0 (0 = off); got ${value}`,
    );
  }
}

function duration(name: string, value: number): void {
  if (!Number.isFinite(value) || value <= 0) {
    throw new RangeError(`outlier detection needs ${name}, finite and > 0; got ${value}`);
  }
}
