import type { ExchangeRecord, ExchangeReporter } from "./exchange.js";

/** Seconds kept: the dashboard and `remora status` show "the last minute". */
export const WINDOW_SECONDS = 60;

/**
 * Latency histogram: log-spaced bins, four per doubling. Bin `i` holds durations in
 * (2^((i-21)/4), 2^((i-20)/4)] ms: bin 0 is everything up to 2^-5 ms (31 µs), bin 20 ends at 1 ms,
 * bin 60 at 1,024 ms, bin 86 at 2^16.5 ms (92.7 s); bin 87 holds everything longer.
 * A quantile is reported as its bin's geometric midpoint, so it is within ±9.1% (2^(1/8)) of the
 * true nearest-rank value for durations between 31 µs and 92.7 s. Bins of second buckets add up,
 * which is what makes "p99 over the last minute" cheap to read.
 */
export const LATENCY_BINS = 88;
const BIN_OFFSET = 20;
const LAST_BIN = LATENCY_BINS - 1;

/** Distinct response-flag strings tracked ("UF", "UC,URX"...); later ones count as "other". */
const FLAG_KINDS = 16;
const OTHER_FLAG = FLAG_KINDS - 1;

/** The histogram bin of a duration in ms. */
export function latencyBin(ms: number): number {
  if (!(ms > 0)) return 0;
  const bin = Math.ceil(4 * Math.log2(ms)) + BIN_OFFSET;
  return bin < 0 ? 0 : Math.min(bin, LAST_BIN);
}

/** The value a bin reports: its geometric midpoint; the edge bins report their finite bound. */
export function binValue(bin: number): number {
  if (bin <= 0) return 2 ** (-BIN_OFFSET / 4);
  if (bin >= LAST_BIN) return 2 ** ((LAST_BIN - 1 - BIN_OFFSET) / 4);
  return 2 ** ((bin - BIN_OFFSET - 0.5) / 4);
}

/** What one series (a service, an endpoint, or everything) did over the window. */
export interface WindowSummary {
  /** Exchanges and errors (5xx, or any response flag: resets always carry one) in the window. */
  requests: number;
  errors: number;
  requestsPerSecond: number;
  /** errors / requests, 0..1; 0 when there were no requests. */
  errorRate: number;
  /** Latency quantiles in ms (±9.1%, see LATENCY_BINS); null with no requests. */
  p50Ms: number | null;
  p99Ms: number | null;
  /** Exchanges by response-flag string, e.g. { "UF": 3, "UC": 1 }. */
  responseFlags: Record<string, number>;
  /** Requests in each second of the window, oldest first; the last entry is the current second. */
  perSecond: number[];
}

/**
 * One ring of per-second buckets. Everything is allocated up front (the flag counts on the first
 * flagged exchange), so `add` only indexes typed arrays.
 */
class SecondRing {
  /** The second (since the window's origin) each slot currently holds; -1 = never used. */
  readonly seconds = new Int32Array(WINDOW_SECONDS).fill(-1);
  readonly requests = new Uint32Array(WINDOW_SECONDS);
  readonly errors = new Uint32Array(WINDOW_SECONDS);
  readonly latency = new Uint32Array(WINDOW_SECONDS * LATENCY_BINS);
  flags: Uint32Array | null = null;
  /** The newest second written, to drop series that went quiet. */
  lastSecond = -1;

  add(second: number, error: boolean, bin: number, flag: number): void {
    const slot = second % WINDOW_SECONDS;
    if (this.seconds[slot] !== second) this.#reset(slot, second);
    this.requests[slot]!++;
    if (error) this.errors[slot]!++;
    this.latency[slot * LATENCY_BINS + bin]!++;
    if (flag >= 0) {
      if (this.flags === null) this.flags = new Uint32Array(WINDOW_SECONDS * FLAG_KINDS);
      this.flags[slot * FLAG_KINDS + flag]!++;
    }
  }

  #reset(slot: number, second: number): void {
    this.seconds[slot] = second;
    this.requests[slot] = 0;
    this.errors[slot] = 0;
    this.latency.fill(0, slot * LATENCY_BINS, (slot + 1) * LATENCY_BINS);
    this.flags?.fill(0, slot * FLAG_KINDS, (slot + 1) * FLAG_KINDS);
    if (second > this.lastSecond) this.lastSecond = second;
  }
}

class ServiceRings {
  readonly ring = new SecondRing();
  readonly endpoints = new Map<string, SecondRing>();
}

export interface TrafficWindowOptions {
  /**
   * Now, in ms since the epoch, on the clock the records' `startMs` use (the session's
   * `performance.timeOrigin + performance.now()`); read only for summaries, never per exchange.
   */
  readonly clock?: () => number;
  /** The next reporter in the chain. */
  readonly next?: ExchangeReporter;
}

/**
 * The last minute of traffic in one-second buckets, per service (cluster key), per endpoint and
 * in total: requests, errors, response flags and a latency histogram. It feeds the dashboard
 * (`GET /`, `GET /dashboard.json`) and `remora status`; Prometheus gets its own counters.
 *
 * `report` is on the hot path: no clock read (an exchange's second is its end, `startMs +
 * durationMs`), at most two map lookups (service, then endpoint within it), typed-array
 * increments; rings are allocated when a service or endpoint first sees traffic, and series quiet
 * for a whole window are dropped then, so memory follows live traffic.
 */
export class TrafficWindow implements ExchangeReporter {
  readonly #clock: () => number;
  readonly #next: ExchangeReporter | undefined;
  /** The clock at construction: seconds count from here, so they stay small integers. */
  readonly #originMs: number;
  readonly #total = new SecondRing();
  readonly #services = new Map<string, ServiceRings>();
  readonly #flagIndex = new Map<string, number>();
  readonly #flagNames: string[] = [];

  constructor(options: TrafficWindowOptions = {}) {
    this.#clock = options.clock ?? (() => performance.timeOrigin + performance.now());
    this.#next = options.next;
    this.#originMs = this.#clock();
  }

  report(record: ExchangeRecord): void {
    // The record's own end time: a clock read costs as much as the rest of this method.
    // Relative to the origin, seconds are small integers (no boxed doubles on the way).
    const ms = record.startMs + record.durationMs - this.#originMs;
    const second = ms > 0 ? Math.floor(ms / 1000) : 0;
    const flags = record.flags;
    const flag = flags === "-" ? -1 : this.#flag(flags);
    const error = record.status >= 500 || flag >= 0;
    const bin = latencyBin(record.durationMs);
    this.#total.add(second, error, bin, flag);
    const key = record.cluster;
    if (key !== "") {
      let service = this.#services.get(key);
      if (service === undefined) service = this.#addService(key, second);
      service.ring.add(second, error, bin, flag);
      const id = record.endpoint;
      if (id !== "") {
        let endpoint = service.endpoints.get(id);
        if (endpoint === undefined) endpoint = this.#addEndpoint(service, id, second);
        endpoint.add(second, error, bin, flag);
      }
    }
    this.#next?.report(record);
  }

  /** Everything that went through, routed or not. */
  total(): WindowSummary {
    return this.#summarize(this.#total);
  }

  /** A service by cluster key, or one of its endpoints ("host:port"); zeros when it had none. */
  service(key: string, endpoint?: string): WindowSummary {
    const service = this.#services.get(key);
    const ring = endpoint === undefined ? service?.ring : service?.endpoints.get(endpoint);
    return this.#summarize(ring);
  }

  /** Rings held (services and endpoints, not the total): memory follows live traffic. */
  get seriesCount(): number {
    let count = 0;
    for (const service of this.#services.values()) count += 1 + service.endpoints.size;
    return count;
  }

  /** Seconds the rates are computed over: the window, or less since start. */
  spanSeconds(): number {
    return this.#spanMs(this.#now()) / 1000;
  }

  /** Milliseconds since the origin. */
  #now(): number {
    return Math.max(0, this.#clock() - this.#originMs);
  }

  #spanMs(now: number): number {
    const second = Math.floor(now / 1000);
    const windowStart = Math.max(0, (second - WINDOW_SECONDS + 1) * 1000);
    // At least a second, so a burst right after start does not read as a huge rate.
    return Math.max(1000, now - windowStart);
  }

  #summarize(ring: SecondRing | undefined): WindowSummary {
    const now = this.#now();
    const second = Math.floor(now / 1000);
    const perSecond = new Array<number>(WINDOW_SECONDS).fill(0);
    const summary: WindowSummary = {
      requests: 0,
      errors: 0,
      requestsPerSecond: 0,
      errorRate: 0,
      p50Ms: null,
      p99Ms: null,
      responseFlags: {},
      perSecond,
    };
    if (ring === undefined) return summary;
    const bins = new Float64Array(LATENCY_BINS);
    const flags = new Float64Array(FLAG_KINDS);
    const oldest = second - WINDOW_SECONDS + 1;
    for (let s = Math.max(0, oldest); s <= second; s++) {
      const slot = s % WINDOW_SECONDS;
      if (ring.seconds[slot] !== s) continue;
      const requests = ring.requests[slot]!;
      perSecond[s - oldest] = requests;
      summary.requests += requests;
      summary.errors += ring.errors[slot]!;
      const base = slot * LATENCY_BINS;
      for (let b = 0; b < LATENCY_BINS; b++) bins[b]! += ring.latency[base + b]!;
      if (ring.flags !== null) {
        for (let f = 0; f < FLAG_KINDS; f++) flags[f]! += ring.flags[slot * FLAG_KINDS + f]!;
      }
    }
    summary.requestsPerSecond = summary.requests / (this.#spanMs(now) / 1000);
    summary.errorRate = summary.requests === 0 ? 0 : summary.errors / summary.requests;
    summary.p50Ms = quantile(bins, summary.requests, 0.5);
    summary.p99Ms = quantile(bins, summary.requests, 0.99);
    for (let f = 0; f < FLAG_KINDS; f++) {
      if (flags[f]! > 0) summary.responseFlags[this.#flagNames[f] ?? "other"] = flags[f]!;
    }
    return summary;
  }

  /** Index of a flag string; a Map lookup only for flagged exchanges (errors). */
  #flag(flags: string): number {
    const known = this.#flagIndex.get(flags);
    if (known !== undefined) return known;
    if (this.#flagNames.length >= OTHER_FLAG) return OTHER_FLAG;
    const index = this.#flagNames.length;
    this.#flagNames.push(flags);
    this.#flagIndex.set(flags, index);
    return index;
  }

  // A new series is when memory grows, so that is when quiet ones go: no timer, no hot-path cost.
  #addService(key: string, second: number): ServiceRings {
    for (const [other, service] of this.#services) {
      if (quiet(service.ring, second)) this.#services.delete(other);
    }
    const service = new ServiceRings();
    this.#services.set(key, service);
    return service;
  }

  #addEndpoint(service: ServiceRings, id: string, second: number): SecondRing {
    for (const [other, ring] of service.endpoints) {
      if (quiet(ring, second)) service.endpoints.delete(other);
    }
    const ring = new SecondRing();
    service.endpoints.set(id, ring);
    return ring;
  }
}

function quiet(ring: SecondRing, second: number): boolean {
  return ring.lastSecond <= second - WINDOW_SECONDS;
}

/** Nearest-rank quantile over histogram bins, as the bin's value; null for no samples. */
function quantile(bins: Float64Array, count: number, q: number): number | null {
  if (count === 0) return null;
  const rank = Math.max(1, Math.ceil(q * count));
  let seen = 0;
  for (let b = 0; b < LATENCY_BINS; b++) {
    seen += bins[b]!;
    if (seen >= rank) return binValue(b);
  }
  return binValue(LAST_BIN);
}
