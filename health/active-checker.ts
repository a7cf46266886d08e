import { connect as tcpConnect } from "node:net";
import { finished } from "node:stream/promises";
import { Agent, type Dispatcher } from "undici";
import { type FlagReason, HealthFlag, type HealthFlagSink } from "./health.js";

/**
 * Active health checks for one cluster (service), Envoy's `HealthCheck` in remora's names. Istio
 * has no active checks, so the names are Envoy's where Envoy has one (`interval`, `timeout`,
 * `unhealthy_threshold`, `healthy_threshold`, `expected_statuses`, `path`, `host`); `tcp` is
 * Envoy's connect-only `tcp_health_check`. Durations are ms; the config schema produces these.
 */
export interface HealthCheckSettings {
  /** Request path (origin-form, query allowed) for HTTP checks. Envoy's `http_health_check.path`. */
  readonly path: string;
  /** Time from the end of one check of an endpoint to the start of its next, before jitter. */
  readonly intervalMs: number;
  /** A check that has not passed within this (connect, response head and body) fails. */
  readonly timeoutMs: number;
  /** Consecutive failed checks that mark a healthy endpoint unhealthy. */
  readonly unhealthyThreshold: number;
  /** Consecutive passed checks that return an unhealthy endpoint to rotation. */
  readonly healthyThreshold: number;
  /** Statuses that pass, as inclusive `[from, to]` ranges (Envoy's are half-open `[start, end)`). */
  readonly expectedStatuses: readonly (readonly [number, number])[];
  /** A plain TCP connect instead of an HTTP request: connecting within `timeoutMs` passes. */
  readonly tcp: boolean;
  /**
   * Each interval is `intervalMs ± jitterMs` (uniform). Absent: 10% of `intervalMs`. At most half
   * the interval, so jitter can at most double one endpoint's check rate.
   */
  readonly jitterMs?: number | undefined;
  /** The Host header of HTTP checks. Absent: the endpoint's id (`host:port`). */
  readonly host?: string | undefined;
}

export const DEFAULT_HEALTH_CHECK_SETTINGS: HealthCheckSettings = Object.freeze({
  path: "/healthz",
  intervalMs: 10_000,
  timeoutMs: 1_000,
  unhealthyThreshold: 3,
  healthyThreshold: 2,
  expectedStatuses: Object.freeze([Object.freeze([200, 299] as const)]),
  tcp: false,
});

/** Share of the interval used as jitter when `jitterMs` is absent. */
export const DEFAULT_JITTER_SHARE = 0.1;

/** What a checker needs of an endpoint (`Endpoint` from discovery satisfies it). */
export interface CheckTarget {
  /** `host:port` (IPv6 bracketed): the key for the sink and `describe`, and the default Host. */
  readonly id: string;
  /** IP address (IPv6 without brackets) or DNS name to connect to. */
  readonly host: string;
  readonly port: number;
}

/** One endpoint's check state, for the admin API (`/clusters`). */
export interface ActiveCheckStatus {
  /** False while this checker's FAILED_ACTIVE_CHECK flag is set on the endpoint. */
  readonly healthy: boolean;
  readonly consecutiveFailures: number;
  readonly consecutiveSuccesses: number;
  /**
   * When the last check ended, on the checker's clock (monotonic ms; with the default clock,
   * `performance.timeOrigin + lastCheckMs` is ms since the epoch); undefined before the first.
   */
  readonly lastCheckMs: number | undefined;
  /** The most recent failure's reason, kept after passes; undefined while none has failed. */
  readonly lastError: string | undefined;
}

/** A state change, as logged: `reason` is the failure that tipped it, or what passed. */
export interface ActiveCheckEvent {
  readonly kind: "unhealthy" | "healthy";
  readonly endpointId: string;
  readonly reason: string;
}

/** Totals since the checker was built (metrics). Checks cut short by `update`/`close` count in neither. */
export interface ActiveCheckStats {
  /** Checks that ended with a verdict (passed or failed). */
  readonly checks: number;
  /** Checks that failed: unexpected status, connect error, reset, timeout. */
  readonly failures: number;
}

/** pino's shape, the part the checker uses (proxy/log.ts `Logger` fits). */
export interface CheckLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

export interface ActiveHealthCheckerOptions {
  /** Monotonic ms; `lastCheckMs` is on this clock. Default `performance.now()`. */
  readonly clock?: () => number;
  /** Uniform in [0, 1): first-check spread and interval jitter. Default `Math.random`. */
  readonly random?: () => number;
  /** Pass `logger.child({ service })`: lines carry the endpoint, not the service. */
  readonly logger?: CheckLogger;
  readonly onEvent?: (event: ActiveCheckEvent) => void;
  /** Every passed check (not only state changes): outlier detection un-ejects on it. */
  readonly onPass?: (endpointId: string) => void;
  /**
   * HTTP checks go through this dispatcher, which the caller owns (the checker never closes it).
   * Default: an undici `Agent` of the checker's own, destroyed by `close()`.
   */
  readonly dispatcher?: Dispatcher;
}

export const USER_AGENT = "remora-health-check";
const SOURCE = "active-check";
/** Node clamps longer timer delays to 1 ms (TimeoutOverflowWarning). */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/** Abort reasons: which side ended a check early. */
const TIMED_OUT = Symbol("timed out");
const STOPPED = Symbol("stopped");

const UNDICI_TIMEOUTS: ReadonlySet<string> = new Set([
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);

const SILENT: CheckLogger = { warn() {}, info() {} };

function ignore(): void {}

/** One endpoint being checked. A departed endpoint's object is dropped; a returning one is new. */
class EndpointCheck {
  readonly target: CheckTarget;
  /** `http://host:port` (IPv6 bracketed), built once. */
  readonly origin: string;
  /** The Host header, fixed per endpoint. */
  readonly hostHeader: string;
  healthy = true;
  consecutiveFailures = 0;
  consecutiveSuccesses = 0;
  lastCheckMs: number | undefined = undefined;
  lastError: string | undefined = undefined;
  /** The wait for the next check, or null while a check runs (or after stop). */
  timer: NodeJS.Timeout | null = null;
  /** The running check (its identity: a late result of an older one is ignored), or null. */
  running: AbortController | null = null;
  /** The running check's timeout. */
  deadline: NodeJS.Timeout | null = null;
  stopped = false;
  /** `update` call that last saw this id (spots departures and duplicates). */
  seen = 0;

  constructor(target: CheckTarget, hostHeader: string) {
    this.target = target;
    const { host, port } = target;
    this.origin = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
    this.hostHeader = hostHeader;
  }
}

/**
 * Checks every endpoint of one cluster on its own schedule and keeps the FAILED_ACTIVE_CHECK flag
 * (health/health.ts) in the sink: set after `unhealthyThreshold` consecutive failed checks,
 * cleared after `healthyThreshold` consecutive passes. New endpoints start healthy.
 *
 * Checks never go through the data path: HTTP checks use undici straight to `host:port` (GET
 * `path` with the Host header and `user-agent: remora-health-check`, body read and discarded),
 * TCP checks a bare `net.connect`. A check passes on an expected status with its whole response
 * within `timeoutMs`; any other status, a connect error, a reset or the timeout fails it.
 *
 * Connections: one `Agent` (one client per endpoint) and `connection: close` on every check, so
 * each check opens a fresh connection and no socket stays open between checks. An interval
 * (10s) outlives most servers' keep-alive (Node's 5s, undici's 4s), so reuse would mostly find
 * the socket closed, and could fail a check on a close that raced it; 10,000 endpoints would
 * otherwise hold 10,000 idle sockets. Envoy's default is the opposite (`reuse_connection`).
 *
 * Scheduling: an endpoint's first check starts at a uniform random point in [0, interval), so
 * a cold start or a large update never checks everything at once; after each check ends, the
 * next starts `interval ± jitter` later, so one endpoint's checks never overlap and drift apart
 * even if a stall lines them up. Timers are unref'd: a checker never keeps the process alive.
 */
export class ActiveHealthChecker {
  readonly #settings: HealthCheckSettings;
  readonly #jitterMs: number;
  readonly #sink: HealthFlagSink;
  readonly #clock: () => number;
  readonly #random: () => number;
  readonly #logger: CheckLogger;
  readonly #onEvent: ((event: ActiveCheckEvent) => void) | undefined;
  readonly #onPass: ((endpointId: string) => void) | undefined;
  readonly #dispatcher: Dispatcher;
  readonly #ownsDispatcher: boolean;
  readonly #checks = new Map<string, EndpointCheck>();
  #updates = 0;
  #closed: Promise<void> | null = null;
  #checksDone = 0;
  #failures = 0;

  constructor(
    settings: HealthCheckSettings,
    sink: HealthFlagSink,
    options: ActiveHealthCheckerOptions = {},
  ) {
    this.#jitterMs = validate(settings);
    this.#settings = settings;
    this.#sink = sink;
    this.#clock = options.clock ?? (() => performance.now());
    this.#random = options.random ?? Math.random;
    this.#logger = options.logger ?? SILENT;
    this.#onEvent = options.onEvent;
    this.#onPass = options.onPass;
    if (options.dispatcher !== undefined) {
      this.#dispatcher = options.dispatcher;
      this.#ownsDispatcher = false;
    } else {
      // One client per endpoint is enough: an endpoint's checks never overlap. The connect
      // timeout only bounds a connect left behind by a timed-out check (#finish ends the check).
      this.#dispatcher = new Agent({
        connections: 1,
        connect: { timeout: settings.timeoutMs },
      });
      this.#ownsDispatcher = true;
    }
  }

  get stats(): ActiveCheckStats {
    return { checks: this.#checksDone, failures: this.#failures };
  }

  /**
   * Replace the set of endpoints to check. New ids start healthy with their first check spread
   * over the next interval; ids that stay keep their state and schedule; departed ids stop at
   * once: a running check is aborted and its result ignored, and a flag this checker had set is
   * cleared (nobody would clear it later). No-op after `close()`.
   */
  update(endpoints: readonly CheckTarget[]): void {
    if (this.#closed !== null) return;
    const seen = ++this.#updates;
    const added: EndpointCheck[] = [];
    for (const target of endpoints) {
      let check = this.#checks.get(target.id);
      if (check === undefined) {
        check = new EndpointCheck(target, this.#settings.host ?? target.id);
        this.#checks.set(target.id, check);
        added.push(check);
      }
      check.seen = seen; // a duplicate id is the same endpoint: checked once
    }
    const departed: EndpointCheck[] = [];
    for (const check of this.#checks.values()) {
      if (check.seen !== seen) departed.push(check);
    }
    for (const check of departed) this.#checks.delete(check.target.id);
    for (const check of added) {
      this.#schedule(check, this.#random() * this.#settings.intervalMs);
    }
    // Last, with the set already consistent: a sink that reacts to clear() by calling update()
    // again (a cluster rebuilding synchronously) starts from the new set.
    for (const check of departed) this.#stop(check);
  }

  /** The check state of `endpointId`, or undefined when it is not being checked. */
  describe(endpointId: string): ActiveCheckStatus | undefined {
    const check = this.#checks.get(endpointId);
    if (check === undefined) return undefined;
    return {
      healthy: check.healthy,
      consecutiveFailures: check.consecutiveFailures,
      consecutiveSuccesses: check.consecutiveSuccesses,
      lastCheckMs: check.lastCheckMs,
      lastError: check.lastError,
    };
  }

  /**
   * Stop everything: timers, running checks (their sockets are destroyed), flags this checker set
   * (cleared, as for departed endpoints), and the dispatcher if the checker owns it. Resolves when
   * that dispatcher is destroyed. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closed !== null) return this.#closed;
    const checks = [...this.#checks.values()];
    this.#checks.clear();
    // Closed before any sink call, so an update() from a callback is the no-op it should be.
    this.#closed = this.#ownsDispatcher ? this.#dispatcher.destroy() : Promise.resolve();
    for (const check of checks) this.#stop(check);
    return this.#closed;
  }

  #stop(check: EndpointCheck): void {
    check.stopped = true;
    if (check.timer !== null) clearTimeout(check.timer);
    check.timer = null;
    if (check.deadline !== null) clearTimeout(check.deadline);
    check.deadline = null;
    const running = check.running;
    check.running = null;
    running?.abort(STOPPED);
    if (!check.healthy) this.#sink.clear(check.target.id, HealthFlag.FAILED_ACTIVE_CHECK);
  }

  #schedule(check: EndpointCheck, delayMs: number): void {
    const delay = Math.min(MAX_TIMER_DELAY_MS, Math.max(1, Math.round(delayMs)));
    check.timer = setTimeout(() => this.#start(check), delay);
    check.timer.unref();
  }

  #start(check: EndpointCheck): void {
    check.timer = null;
    if (check.stopped) return;
    const controller = new AbortController();
    check.running = controller;
    // The timeout ends the check itself rather than waiting for the aborted I/O to settle, so no
    // stuck connect or client can stall an endpoint's schedule.
    check.deadline = setTimeout(
      () => {
        controller.abort(TIMED_OUT);
        this.#finish(check, controller, this.#timeoutReason());
      },
      Math.min(MAX_TIMER_DELAY_MS, this.#settings.timeoutMs),
    );
    check.deadline.unref();
    const outcome = this.#settings.tcp
      ? this.#connect(check.target, controller.signal)
      : this.#request(check, controller.signal);
    outcome.then((reason) => this.#finish(check, controller, reason));
  }

  /** A check ended: `reason` is null for a pass, else why it failed. Late or stopped: ignored. */
  #finish(check: EndpointCheck, controller: AbortController, reason: string | null): void {
    if (check.running !== controller) return;
    check.running = null;
    if (check.deadline !== null) clearTimeout(check.deadline);
    check.deadline = null;
    check.lastCheckMs = this.#clock();
    this.#checksDone++;
    if (reason === null) this.#passed(check);
    else this.#failed(check, reason);
    // A sink or onEvent callback may have stopped this endpoint (update, close).
    if (check.stopped) return;
    const jitter = this.#jitterMs * (2 * this.#random() - 1);
    this.#schedule(check, this.#settings.intervalMs + jitter);
  }

  #passed(check: EndpointCheck): void {
    check.consecutiveFailures = 0;
    check.consecutiveSuccesses++;
    this.#onPass?.(check.target.id);
    if (check.healthy || check.consecutiveSuccesses < this.#settings.healthyThreshold) return;
    check.healthy = true;
    const id = check.target.id;
    const reason = `${this.#what()} passed ${check.consecutiveSuccesses} checks in a row`;
    this.#sink.clear(id, HealthFlag.FAILED_ACTIVE_CHECK);
    this.#logger.info({ endpoint: id, reason }, "active health check: endpoint healthy again");
    this.#onEvent?.({ kind: "healthy", endpointId: id, reason });
  }

  #failed(check: EndpointCheck, reason: string): void {
    this.#failures++;
    check.consecutiveSuccesses = 0;
    check.consecutiveFailures++;
    check.lastError = reason;
    if (!check.healthy || check.consecutiveFailures < this.#settings.unhealthyThreshold) return;
    check.healthy = false;
    const id = check.target.id;
    const flag: FlagReason = {
      flag: HealthFlag.FAILED_ACTIVE_CHECK,
      source: SOURCE,
      reason,
      untilMs: 0,
    };
    this.#sink.set(id, flag);
    this.#logger.warn(
      { endpoint: id, reason, consecutiveFailures: check.consecutiveFailures },
      "active health check: endpoint unhealthy",
    );
    this.#onEvent?.({ kind: "unhealthy", endpointId: id, reason });
  }

  /** GET `path`; resolves null on an expected status with the whole body read, else why not. */
  async #request(check: EndpointCheck, signal: AbortSignal): Promise<string | null> {
    const { path } = this.#settings;
    try {
      const response = await this.#dispatcher.request({
        origin: check.origin,
        path,
        method: "GET",
        headers: { host: check.hostHeader, "user-agent": USER_AGENT },
        // `connection: close`: a fresh connection per check (see the class comment).
        reset: true,
        signal,
      });
      const { statusCode, body } = response;
      if (!this.#expected(statusCode)) {
        // The verdict is in; the connection closes anyway. undici's body errors on an early destroy.
        body.on("error", ignore).destroy();
        return `GET ${path} answered ${statusCode}`;
      }
      body.resume();
      await finished(body); // rejects when the body is cut short
      return null;
    } catch (error) {
      if (signal.aborted) return null; // the deadline or #stop has already ended this check
      // undici's own timers (connect timeout) may beat the deadline by a hair: same verdict.
      const code = (error as { code?: unknown }).code;
      if (typeof code === "string" && UNDICI_TIMEOUTS.has(code)) return this.#timeoutReason();
      return `GET ${path}: ${describeError(error)}`;
    }
  }

  /** A bare TCP connect; resolves null once connected (the socket is closed at once). */
  #connect(target: CheckTarget, signal: AbortSignal): Promise<string | null> {
    return new Promise((resolve) => {
      const socket = tcpConnect({ host: target.host, port: target.port });
      let settled = false;
      const done = (reason: string | null): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener("abort", onAbort);
        socket.destroy();
        resolve(reason);
      };
      const onAbort = (): void => done(null); // ignored: the check has already ended
      signal.addEventListener("abort", onAbort);
      socket.once("connect", () => done(null));
      socket.on("error", (error: NodeJS.ErrnoException) =>
        done(
          error.code === "ECONNREFUSED"
            ? "tcp connect refused"
            : `tcp connect: ${error.code ?? describeError(error)}`,
        ),
      );
    });
  }

  #expected(status: number): boolean {
    const ranges = this.#settings.expectedStatuses;
    for (let i = 0; i < ranges.length; i++) {
      const range = ranges[i]!;
      if (status >= range[0] && status <= range[1]) return true;
    }
    return false;
  }

  #timeoutReason(): string {
    return `${this.#what()} timed out after ${this.#settings.timeoutMs}ms`;
  }

  /** "GET /healthz" or "tcp connect": what a check does, for reasons. */
  #what(): string {
    return this.#settings.tcp ? "tcp connect" : `GET ${this.#settings.path}`;
  }
}

/** Check settings once (undici's habit); returns the jitter in ms. */
function validate(settings: HealthCheckSettings): number {
  const { path, intervalMs, timeoutMs, unhealthyThreshold, healthyThreshold } = settings;
  if (typeof path !== "string" || !/^\/[\x21-\x7e]*$/.test(path)) {
    throw new RangeError(
      `healthCheck.path must start with "/" and hold no spaces or control characters; got ${JSON.stringify(path)}`,
    );
  }
  if (!Number.isFinite(intervalMs) || intervalMs <= 0) {
    throw new RangeError(`healthCheck.interval must be finite and > 0; got ${intervalMs}ms`);
  }
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new RangeError(`healthCheck.timeout must be finite and > 0; got ${timeoutMs}ms`);
  }
  for (const [name, value] of [
    ["unhealthyThreshold", unhealthyThreshold],
    ["healthyThreshold", healthyThreshold],
  ] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new RangeError(`healthCheck.${name} must be an integer >= 1; got ${value}`);
    }
  }
  const ranges = settings.expectedStatuses;
  if (!Array.isArray(ranges) || ranges.length === 0) {
    throw new RangeError("healthCheck.expectedStatuses needs at least one [from, to] range");
  }
  for (const range of ranges) {
    const [from, to] = range;
    if (
      (range as readonly number[]).length !== 2 ||
      !Number.isInteger(from) ||
      !Number.isInteger(to) ||
      from < 100 ||
      to > 599 ||
      from > to
    ) {
      throw new RangeError(
        `healthCheck.expectedStatuses: each range is [from, to] with 100 <= from <= to <= 599; got ${JSON.stringify(range)}`,
      );
    }
  }
  const host = settings.host;
  if (host !== undefined && (typeof host !== "string" || !/^[\x21-\x7e]+$/.test(host))) {
    throw new RangeError(
      `healthCheck.host must be a non-empty header value without spaces; got ${JSON.stringify(host)}`,
    );
  }
  const jitterMs = settings.jitterMs ?? intervalMs * DEFAULT_JITTER_SHARE;
  if (!Number.isFinite(jitterMs) || jitterMs < 0 || jitterMs > intervalMs / 2) {
    throw new RangeError(
      `healthCheck.jitter must be between 0 and half the interval (${intervalMs / 2}ms); got ${jitterMs}ms`,
    );
  }
  return jitterMs;
}

/** "connect ECONNREFUSED", "other side closed (UND_ERR_SOCKET)": short words for a log line. */
function describeError(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const { code, syscall } = error as NodeJS.ErrnoException;
  if (typeof code === "string" && typeof syscall === "string") return `${syscall} ${code}`;
  if (typeof code === "string" && code.startsWith("UND_ERR")) return `${error.message} (${code})`;
  if (typeof code === "string") return code;
  // Happy eyeballs (several addresses) fails with an AggregateError of per-address errors.
  if (error instanceof AggregateError && error.errors[0] !== undefined) {
    return describeError(error.errors[0]);
  }
  return error.message;
}
