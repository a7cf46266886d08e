/**
 * From raw measurements to what a person reads: per-run samples reduced to medians with
 * min–max, ratios to direct and to HAProxy measured in the same run, a Markdown table per
 * scenario and an SVG chart. Pure functions only (no I/O), so report.test.ts can check them
 * on a canned autocannon result.
 */
import type { Result as AutocannonResult } from "autocannon";
import { drawSoakPanel, SOAK_PANEL_HEIGHT, type SoakSample, soakNote } from "./soak.js";

/** Latency figures of one run, in milliseconds. */
export interface LatencySummary {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
  readonly mean: number;
}

/** One measured run of one target in one scenario. */
export interface RunSample {
  /** Completed responses (any status) per second. */
  readonly requestsPerSec: number;
  /** Bytes moved per second: 2xx response bytes plus request body bytes. */
  readonly bytesPerSec: number;
  readonly latency: LatencySummary;
  /**
   * "exact": computed from every response time at sub-millisecond resolution;
   * "autocannon": autocannon's own histogram, which rounds to whole milliseconds;
   * "wrk": wrk's histogram (microseconds; p50/p90/p99 and max as wrk prints them, p99.9 from
   * its Lua `done` hook), see wrk.ts.
   */
  readonly latencySource: "exact" | "autocannon" | "wrk";
  readonly completed: number;
  readonly non2xx: number;
  /** Connection errors, resets and timeouts: requests that got no response at all. */
  readonly errors: number;
  readonly totalBytes: number;
  readonly durationSec: number;
  /** CPU milliseconds the target's process tree used during the run; null for direct. */
  readonly cpuMs: number | null;
  /** Peak resident memory of the target's process tree during the run; null for direct. */
  readonly peakRssBytes: number | null;
  /**
   * Share (0–1) of each pinned core that processes outside the benchmark used during the
   * run; null when not pinned or not measurable. High values mean a disturbed run.
   */
  readonly otherLoad: {
    readonly proxyCore: number | null;
    readonly loadCore: number | null;
  } | null;
  /**
   * Scenarios whose backend turns bad (failover-503, failover-hang): what that backend received
   * from the moment it did, health checks apart; null when it could not be asked. Absent in
   * other scenarios (a killed backend counts nothing) and in results from before it existed.
   */
  readonly faultyBackend?: { readonly requests: number; readonly checks: number } | null;
  /**
   * The handshake scenario (a new mTLS connection per request): TLS handshakes completed in the
   * run, and the session parameters of the first one ("TLSv1.3 TLS_AES_256_GCM_SHA384, X25519,
   * ALPN http/1.1, server key rsa 2048"). Absent in other scenarios.
   */
  readonly handshakes?: number;
  readonly negotiated?: string | null;
  /**
   * The churn scenario: the run's quiet and churn windows (the sample's own figures are the
   * churn windows', bar failures, peak memory and other load, which cover every window). Absent
   * in other scenarios.
   */
  readonly churn?: ChurnSample;
  /** The soak scenario: samples of the process over the run (bench/soak.ts). */
  readonly soak?: SoakSample;
}

/**
 * A churn run's figures for one kind of window, quiet or under endpoint churn (bench/churn.ts
 * phaseOver says how the windows of that kind are combined); or, in a ChurnWindow, one window's.
 */
export interface ChurnPhase {
  /** Mean of the windows' req/s. */
  readonly requestsPerSec: number;
  /** Request latency p99, ms: the median of the windows' p99s. */
  readonly p99Ms: number;
  /** Requests with no response, plus non-2xx responses. */
  readonly failed: number;
  /**
   * The proxy's event-loop delay p99 over the windows from its own histogram (remora:
   * remora_event_loop_delay_seconds, the windows' deltas summed), ms: interpolated within the
   * bucket, and that bucket's upper bound (what the histogram proves). Null when the target does
   * not export it.
   */
  readonly loopP99Ms: number | null;
  readonly loopP99BoundMs: number | null;
  /** Watch events the proxy applied per second (remora_kubernetes_events_applied_total). */
  readonly eventsAppliedPerSec: number | null;
}

/** One measured window of a churn run, in the order it ran. */
export interface ChurnWindow extends ChurnPhase {
  readonly kind: "quiet" | "churn";
  readonly durationSec: number;
  /**
   * A churn window's req/s over the mean of the quiet windows directly before and after it (so
   * drift that is slow next to a window cancels); null for a quiet window.
   */
  readonly ratio: number | null;
  /** EndpointSlice updates the API server wrote per second in this window; 0 when quiet. */
  readonly updatesPerSec: number;
}

/** A churn run: its quiet and churn windows, and the cluster it ran against. */
export interface ChurnSample {
  readonly quiet: ChurnPhase;
  readonly churn: ChurnPhase;
  /**
   * The run's churn ÷ quiet: the median of its churn windows' ratios. Absent in results from
   * before the windows (one quiet phase, then one churn phase), whose ratio is churn req/s over
   * quiet req/s.
   */
  readonly ratio?: number | null;
  /** Every window in order (quiet, churn, quiet, ...); absent in results from before them. */
  readonly windows?: readonly ChurnWindow[];
  /** EndpointSlice updates the API server wrote per second during the churn windows. */
  readonly updatesPerSec: number;
  readonly services: number;
  readonly endpoints: number;
  /** The proxy's RSS once it had synced every endpoint, before any load. */
  readonly rssAfterSyncBytes: number | null;
}

/** Issue 12's goals for the churn scenario. */
export const CHURN_GOALS = Object.freeze({ loopP99Ms: 20, throughputRatio: 0.9 });

/** What a scenario's rows lead with; picks the table's columns. */
export type ScenarioFocus =
  | "throughput"
  | "latency"
  | "bytes"
  | "failover"
  | "handshake"
  | "churn"
  | "soak";

/**
 * The rows a target's ratios are taken against, where not direct and `haproxy`: a proxy that
 * terminates TLS compares with HAProxy terminating TLS (`haproxy: "haproxy-tls"`), and with the
 * same path without TLS (`plaintext`: "× plaintext", the cost of TLS).
 */
export interface Comparison {
  readonly haproxy?: string;
  readonly plaintext?: string;
}

export interface TargetOutcome {
  readonly targetId: string;
  readonly label: string;
  readonly samples: RunSample[];
  /** Why this target has no samples in this scenario; absent when it ran. */
  readonly skipped?: string;
  /** Set where the defaults (direct, haproxy) are not the rows to compare with. */
  readonly compare?: Comparison;
  /**
   * What drove this target when not the scenario's load generator (wrk cannot present a client
   * certificate, so autocannon drives the mTLS targets). Throughput ratios are only taken
   * between rows driven by the same load generator.
   */
  readonly loadGenerator?: string;
}

export interface ScenarioOutcome {
  readonly id: string;
  readonly title: string;
  readonly focus: ScenarioFocus;
  /** Load shape as run: connections, duration, rate, body size... */
  readonly params: Readonly<Record<string, number | string>>;
  /**
   * What generated the load and measured it, e.g. "wrk 4.1.0 (1 thread)" or "autocannon
   * 9.0.0"; absent in results from before the harness recorded it.
   */
  readonly loadGenerator?: string;
  readonly targets: TargetOutcome[];
}

export interface MachineInfo {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryBytes: number;
  readonly os: string;
  readonly node: string;
  /** How processes were pinned, e.g. "proxy: core 0; backend+load: core 1", or why not. */
  readonly pinning: string;
}

/** Everything one `npm run bench` measured; written to bench/results/latest.json. */
export interface BenchReport {
  readonly startedAt: string;
  readonly finishedAt: string;
  readonly command: string;
  readonly machine: MachineInfo;
  /** Version of every peer and tool, e.g. { haproxy: "2.6.12", autocannon: "9.0.0" }. */
  readonly versions: Readonly<Record<string, string>>;
  readonly backend: string;
  readonly scenarios: ScenarioOutcome[];
  /** Targets skipped for the whole run, with the reason. */
  readonly skipped: ReadonlyArray<{ readonly targetId: string; readonly reason: string }>;
}

/* ------------------------------------------------------------------ raw results */

/**
 * Percentiles of response times (ms) by nearest rank on a sorted copy. `count` lets the
 * caller pass a preallocated buffer that is only partly filled.
 */
export function latencyFromSamples(samples: Float64Array, count = samples.length): LatencySummary {
  if (count === 0) return { p50: 0, p90: 0, p99: 0, p999: 0, max: 0, mean: 0 };
  const sorted = samples.slice(0, count).sort();
  let sum = 0;
  for (let i = 0; i < count; i++) sum += sorted[i] ?? 0;
  const rank = (p: number): number => sorted[Math.min(count - 1, Math.ceil(p * count) - 1)] ?? 0;
  return {
    p50: rank(0.5),
    p90: rank(0.9),
    p99: rank(0.99),
    p999: rank(0.999),
    max: sorted[count - 1] ?? 0,
    mean: sum / count,
  };
}

export interface FromAutocannonOptions {
  /** Sub-millisecond latency computed from every response; replaces autocannon's. */
  readonly exactLatency?: LatencySummary;
  /** Bytes of request body sent per request (uploads count toward bytes moved). */
  readonly requestBodyBytes?: number;
}

/** Reduces autocannon's result object to this harness's run sample (without CPU/RSS). */
export function fromAutocannon(
  result: AutocannonResult,
  options: FromAutocannonOptions = {},
): Omit<RunSample, "cpuMs" | "peakRssBytes" | "otherLoad"> {
  const durationSec = result.duration > 0 ? result.duration : 1;
  const completed = result.requests.total;
  const bodyBytes = (options.requestBodyBytes ?? 0) * result["2xx"];
  const totalBytes = result.throughput.total + bodyBytes;
  const ac = result.latency;
  const latency = options.exactLatency ?? {
    p50: ac.p50,
    p90: ac.p90,
    p99: ac.p99,
    p999: ac.p99_9,
    max: ac.max,
    mean: ac.mean,
  };
  return {
    requestsPerSec: completed / durationSec,
    bytesPerSec: totalBytes / durationSec,
    latency,
    latencySource: options.exactLatency ? "exact" : "autocannon",
    completed,
    non2xx: result.non2xx,
    // autocannon's `errors` already includes its `timeouts`.
    errors: result.errors,
    totalBytes,
    durationSec,
  };
}

/* ------------------------------------------------------------------ summaries */

export interface Spread {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

export function spread(values: readonly number[]): Spread | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median =
    sorted.length % 2 === 1
      ? (sorted[mid] ?? 0)
      : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
  return { median, min: sorted[0] ?? 0, max: sorted[sorted.length - 1] ?? 0 };
}

function shift(s: Spread, by: number): Spread {
  return { median: s.median - by, min: s.min - by, max: s.max - by };
}

export interface TargetSummary {
  readonly targetId: string;
  readonly label: string;
  readonly skipped?: string;
  /** What drove this target's load (the row's own, else the scenario's). */
  readonly loadGenerator: string | undefined;
  readonly runs: number;
  readonly rps: Spread | null;
  readonly mibps: Spread | null;
  readonly p50: Spread | null;
  readonly p90: Spread | null;
  readonly p99: Spread | null;
  readonly max: Spread | null;
  /** p50/p99 minus the direct target's median in the same scenario. */
  readonly addedP50: Spread | null;
  readonly addedP99: Spread | null;
  readonly cpuMsPer1k: Spread | null;
  readonly cpuMsPerGiB: Spread | null;
  readonly peakRssMiB: Spread | null;
  readonly errors: Spread | null;
  readonly non2xx: Spread | null;
  /** Requests (health checks apart) the backend that turned bad received; null when not counted. */
  readonly faultyRequests: Spread | null;
  /** Health checks that backend received once bad. */
  readonly faultyChecks: Spread | null;
  /** TLS handshakes per second (the handshake scenario); null elsewhere. */
  readonly handshakesPerSec: Spread | null;
  readonly cpuMsPer1kHandshakes: Spread | null;
  /** The target's CPU time over the run's duration: 1 is one core fully busy. */
  readonly coreBusy: Spread | null;
  /** The churn scenario's figures; null elsewhere. */
  readonly churn: ChurnSummary | null;
  /**
   * Median throughput (req/s; bytes/s for byte-focused scenarios; handshakes/s for the
   * handshake scenario) over direct's, HAProxy's (the target's Comparison.haproxy) and the same
   * path's without TLS (Comparison.plaintext); null when either has no figure or a different
   * load generator drove them.
   */
  readonly vsDirect: number | null;
  readonly vsHaproxy: number | null;
  readonly vsPlaintext: number | null;
  readonly addedP99VsHaproxy: number | null;
  readonly cpuVsHaproxy: number | null;
}

/** A churn scenario's figures over the runs of one target. */
export interface ChurnSummary {
  readonly quietRps: Spread | null;
  readonly churnRps: Spread | null;
  /**
   * Per run, its churn ÷ quiet (ChurnSample.ratio: the median over its churn windows of each
   * one's req/s over its neighbouring quiet windows').
   */
  readonly ratio: Spread | null;
  readonly quietP99: Spread | null;
  readonly churnP99: Spread | null;
  readonly quietLoopP99: Spread | null;
  readonly churnLoopP99: Spread | null;
  readonly churnLoopP99Bound: Spread | null;
  readonly updatesPerSec: Spread | null;
  readonly appliedPerSec: Spread | null;
  readonly rssAfterSyncMiB: Spread | null;
  readonly endpoints: number;
}

/** A churn run's ratio; results from before the windows had one phase of each kind. */
function runRatio(run: ChurnSample): number | null {
  return run.ratio !== undefined
    ? run.ratio
    : ratio(run.churn.requestsPerSec, run.quiet.requestsPerSec);
}

function churnSummary(samples: readonly RunSample[]): ChurnSummary | null {
  const runs = samples.flatMap((s) => (s.churn === undefined ? [] : [s.churn]));
  if (runs.length === 0) return null;
  return {
    quietRps: spread(runs.map((r) => r.quiet.requestsPerSec)),
    churnRps: spread(runs.map((r) => r.churn.requestsPerSec)),
    ratio: spread(nonNull(runs.map(runRatio))),
    quietP99: spread(runs.map((r) => r.quiet.p99Ms)),
    churnP99: spread(runs.map((r) => r.churn.p99Ms)),
    quietLoopP99: spread(nonNull(runs.map((r) => r.quiet.loopP99Ms))),
    churnLoopP99: spread(nonNull(runs.map((r) => r.churn.loopP99Ms))),
    churnLoopP99Bound: spread(nonNull(runs.map((r) => r.churn.loopP99BoundMs))),
    updatesPerSec: spread(runs.map((r) => r.updatesPerSec)),
    appliedPerSec: spread(nonNull(runs.map((r) => r.churn.eventsAppliedPerSec))),
    rssAfterSyncMiB: spread(
      nonNull(runs.map((r) => (r.rssAfterSyncBytes === null ? null : r.rssAfterSyncBytes / MiB))),
    ),
    endpoints: runs[0]?.endpoints ?? 0,
  };
}

export const DIRECT_ID = "direct";
export const HAPROXY_ID = "haproxy";
const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

function ratio(a: number | undefined, b: number | undefined): number | null {
  if (a === undefined || b === undefined || b === 0 || !Number.isFinite(a / b)) return null;
  return a / b;
}

function nonNull(values: ReadonlyArray<number | null>): number[] {
  return values.filter((v): v is number => v !== null);
}

/** Medians, min–max and the same-run ratios for every target of one scenario. */
export function summarizeScenario(scenario: ScenarioOutcome): TargetSummary[] {
  const base = scenario.targets.map((t) => {
    const s = t.samples;
    return {
      targetId: t.targetId,
      label: t.label,
      ...(t.skipped === undefined ? {} : { skipped: t.skipped }),
      runs: s.length,
      rps: spread(s.map((r) => r.requestsPerSec)),
      mibps: spread(s.map((r) => r.bytesPerSec / MiB)),
      p50: spread(s.map((r) => r.latency.p50)),
      p90: spread(s.map((r) => r.latency.p90)),
      p99: spread(s.map((r) => r.latency.p99)),
      max: spread(s.map((r) => r.latency.max)),
      cpuMsPer1k: spread(
        nonNull(
          s.map((r) =>
            r.cpuMs === null || r.completed === 0 ? null : (r.cpuMs / r.completed) * 1000,
          ),
        ),
      ),
      cpuMsPerGiB: spread(
        nonNull(
          s.map((r) =>
            r.cpuMs === null || r.totalBytes === 0 ? null : r.cpuMs / (r.totalBytes / GiB),
          ),
        ),
      ),
      peakRssMiB: spread(
        nonNull(s.map((r) => (r.peakRssBytes === null ? null : r.peakRssBytes / MiB))),
      ),
      errors: spread(s.map((r) => r.errors)),
      non2xx: spread(s.map((r) => r.non2xx)),
      faultyRequests: spread(nonNull(s.map((r) => r.faultyBackend?.requests ?? null))),
      faultyChecks: spread(nonNull(s.map((r) => r.faultyBackend?.checks ?? null))),
      handshakesPerSec: spread(
        nonNull(s.map((r) => (r.handshakes === undefined ? null : r.handshakes / r.durationSec))),
      ),
      cpuMsPer1kHandshakes: spread(
        nonNull(
          s.map((r) =>
            r.cpuMs === null || !r.handshakes ? null : (r.cpuMs / r.handshakes) * 1000,
          ),
        ),
      ),
      coreBusy: spread(
        nonNull(s.map((r) => (r.cpuMs === null ? null : r.cpuMs / (r.durationSec * 1000)))),
      ),
      churn: churnSummary(s),
      loadGenerator: t.loadGenerator ?? scenario.loadGenerator,
      compare: t.compare,
    };
  });
  type Base = (typeof base)[number];
  const byId = (id: string): Base | undefined => base.find((t) => t.targetId === id);
  const direct = byId(DIRECT_ID);
  const throughputOf = (t: Base | undefined): number | undefined =>
    scenario.focus === "bytes"
      ? t?.mibps?.median
      : scenario.focus === "handshake"
        ? t?.handshakesPerSec?.median
        : t?.rps?.median;
  /** t's throughput over ref's, when both ran under the same load generator. */
  const throughputRatio = (t: Base, ref: Base | undefined): number | null =>
    t.runs === 0 || ref === undefined || ref.loadGenerator !== t.loadGenerator
      ? null
      : ratio(throughputOf(t), throughputOf(ref));
  const cpuOf = (t: Base | undefined): Spread | null | undefined =>
    scenario.focus === "bytes"
      ? t?.cpuMsPerGiB
      : scenario.focus === "handshake"
        ? t?.cpuMsPer1kHandshakes
        : t?.cpuMsPer1k;
  const added = (t: (typeof base)[number], key: "p50" | "p99"): Spread | null => {
    const own = t[key];
    const ref = direct?.[key];
    if (own === null || ref === null || ref === undefined || t.targetId === DIRECT_ID) return null;
    if (direct?.loadGenerator !== t.loadGenerator) return null;
    return shift(own, ref.median);
  };
  return base.map((t) => {
    const compare = t.compare;
    const haproxy = byId(compare?.haproxy ?? HAPROXY_ID);
    const plaintext = compare?.plaintext === undefined ? undefined : byId(compare.plaintext);
    const haproxyAddedP99 = haproxy ? added(haproxy, "p99") : null;
    const addedP99 = added(t, "p99");
    return {
      ...t,
      addedP50: added(t, "p50"),
      addedP99,
      vsDirect: throughputRatio(t, direct),
      vsHaproxy: throughputRatio(t, haproxy),
      vsPlaintext: throughputRatio(t, plaintext),
      // A ratio to an added latency at or below zero (HAProxy within noise of direct) means nothing.
      addedP99VsHaproxy:
        haproxyAddedP99 !== null && haproxyAddedP99.median > 0
          ? ratio(addedP99?.median, haproxyAddedP99.median)
          : null,
      cpuVsHaproxy: ratio(cpuOf(t)?.median, cpuOf(haproxy)?.median),
    };
  });
}

/* ------------------------------------------------------------------ Markdown */

export function formatNumber(n: number): string {
  const abs = Math.abs(n);
  if (abs >= 100) return Math.round(n).toLocaleString("en-US");
  if (abs >= 10) return n.toFixed(1);
  if (abs >= 1) return n.toFixed(2);
  return n.toFixed(3);
}

function fmtSpread(s: Spread | null, format: (n: number) => string = formatNumber): string {
  if (s === null) return "—";
  if (s.min === s.max) return format(s.median);
  return `${format(s.median)} (${format(s.min)}–${format(s.max)})`;
}

/** Counts (errors, responses) as whole numbers; a median of two runs may be x.5. */
function formatCount(n: number): string {
  return Number.isInteger(n)
    ? n.toLocaleString("en-US")
    : n.toLocaleString("en-US", { maximumFractionDigits: 1 });
}

function fmtMedian(s: Spread | null): string {
  return s === null ? "—" : formatNumber(s.median);
}

function fmtPercent(s: Spread | null): string {
  return s === null ? "—" : `${Math.round(s.median * 100)}%`;
}

function fmtRatio(r: number | null): string {
  return r === null ? "—" : `${r.toFixed(2)}×`;
}

interface Column {
  readonly head: string;
  readonly cell: (t: TargetSummary) => string;
  /** Shown only when this holds for some row (a figure only some scenarios have). */
  readonly when?: (t: TargetSummary) => boolean;
}

const COLUMNS: Record<ScenarioFocus, Column[]> = {
  throughput: [
    { head: "req/s", cell: (t) => fmtSpread(t.rps) },
    { head: "× direct", cell: (t) => fmtRatio(t.vsDirect) },
    { head: "× HAProxy", cell: (t) => fmtRatio(t.vsHaproxy) },
    {
      head: "× plaintext",
      cell: (t) => fmtRatio(t.vsPlaintext),
      when: (t) => t.vsPlaintext !== null,
    },
    { head: "p50 ms", cell: (t) => fmtMedian(t.p50) },
    { head: "p99 ms", cell: (t) => fmtMedian(t.p99) },
    { head: "CPU ms / 1k req", cell: (t) => fmtSpread(t.cpuMsPer1k) },
    // Below ~90% the proxy was not what limited req/s (the load generator was): compare CPU.
    { head: "proxy core busy", cell: (t) => fmtPercent(t.coreBusy) },
    { head: "CPU × HAProxy", cell: (t) => fmtRatio(t.cpuVsHaproxy) },
    { head: "peak RSS MiB", cell: (t) => fmtMedian(t.peakRssMiB) },
    { head: "errors", cell: (t) => errorsCell(t) },
  ],
  latency: [
    { head: "req/s", cell: (t) => fmtMedian(t.rps) },
    { head: "p50 ms", cell: (t) => fmtMedian(t.p50) },
    { head: "p90 ms", cell: (t) => fmtMedian(t.p90) },
    { head: "p99 ms", cell: (t) => fmtSpread(t.p99) },
    { head: "max ms", cell: (t) => fmtMedian(t.max) },
    { head: "added p50 ms", cell: (t) => fmtMedian(t.addedP50) },
    { head: "added p99 ms", cell: (t) => fmtSpread(t.addedP99) },
    { head: "added p99 × HAProxy", cell: (t) => fmtRatio(t.addedP99VsHaproxy) },
    { head: "CPU ms / 1k req", cell: (t) => fmtMedian(t.cpuMsPer1k) },
    { head: "peak RSS MiB", cell: (t) => fmtMedian(t.peakRssMiB) },
    { head: "errors", cell: (t) => errorsCell(t) },
  ],
  bytes: [
    { head: "MiB/s", cell: (t) => fmtSpread(t.mibps) },
    { head: "× direct", cell: (t) => fmtRatio(t.vsDirect) },
    { head: "× HAProxy", cell: (t) => fmtRatio(t.vsHaproxy) },
    { head: "transfers/s", cell: (t) => fmtMedian(t.rps) },
    { head: "CPU ms / GiB", cell: (t) => fmtMedian(t.cpuMsPerGiB) },
    { head: "peak RSS MiB", cell: (t) => fmtSpread(t.peakRssMiB) },
    { head: "errors", cell: (t) => errorsCell(t) },
  ],
  failover: [
    { head: "req/s", cell: (t) => fmtSpread(t.rps) },
    // What the client saw: requests with no response at all, and responses other than 2xx.
    { head: "errors seen by client", cell: (t) => fmtSpread(t.errors, formatCount) },
    { head: "non-2xx", cell: (t) => fmtSpread(t.non2xx, formatCount) },
    { head: "p99 ms", cell: (t) => fmtSpread(t.p99) },
    { head: "max ms", cell: (t) => fmtMedian(t.max) },
    {
      head: "requests to bad backend",
      cell: (t) => fmtSpread(t.faultyRequests, formatCount),
      when: (t) => t.faultyRequests !== null,
    },
    {
      head: "health checks to it",
      cell: (t) => fmtSpread(t.faultyChecks, formatCount),
      when: (t) => t.faultyChecks !== null,
    },
    { head: "peak RSS MiB", cell: (t) => fmtMedian(t.peakRssMiB) },
  ],
  handshake: [
    { head: "handshakes/s", cell: (t) => fmtSpread(t.handshakesPerSec) },
    { head: "× HAProxy", cell: (t) => fmtRatio(t.vsHaproxy) },
    { head: "req/s", cell: (t) => fmtMedian(t.rps) },
    // From the TCP connect to the server's close: handshake, request and response.
    { head: "connection p50 ms", cell: (t) => fmtMedian(t.p50) },
    { head: "connection p99 ms", cell: (t) => fmtMedian(t.p99) },
    { head: "CPU ms / 1k handshakes", cell: (t) => fmtSpread(t.cpuMsPer1kHandshakes) },
    // Below ~90% the proxy was not the bottleneck (too few connections, or the load core was).
    { head: "proxy core busy", cell: (t) => fmtPercent(t.coreBusy) },
    { head: "CPU × HAProxy", cell: (t) => fmtRatio(t.cpuVsHaproxy) },
    { head: "peak RSS MiB", cell: (t) => fmtMedian(t.peakRssMiB) },
    { head: "errors", cell: (t) => errorsCell(t) },
  ],
  churn: [
    { head: "quiet req/s", cell: (t) => fmtSpread(t.churn?.quietRps ?? null) },
    { head: "churn req/s", cell: (t) => fmtSpread(t.churn?.churnRps ?? null) },
    { head: "churn ÷ quiet", cell: (t) => fmtRatioSpread(t.churn?.ratio ?? null) },
    { head: "loop p99 ms, quiet", cell: (t) => fmtMedian(t.churn?.quietLoopP99 ?? null) },
    { head: "loop p99 ms, churn", cell: (t) => fmtSpread(t.churn?.churnLoopP99 ?? null) },
    { head: "p99 ms, quiet", cell: (t) => fmtMedian(t.churn?.quietP99 ?? null) },
    { head: "p99 ms, churn", cell: (t) => fmtMedian(t.churn?.churnP99 ?? null) },
    { head: "updates/s written", cell: (t) => fmtMedian(t.churn?.updatesPerSec ?? null) },
    { head: "events/s applied", cell: (t) => fmtMedian(t.churn?.appliedPerSec ?? null) },
    { head: "proxy core busy", cell: (t) => fmtPercent(t.coreBusy) },
    { head: "RSS after sync MiB", cell: (t) => fmtMedian(t.churn?.rssAfterSyncMiB ?? null) },
    { head: "peak RSS MiB", cell: (t) => fmtMedian(t.peakRssMiB) },
    { head: "errors", cell: (t) => errorsCell(t) },
  ],
  // The soak's drift and descriptors are in its note (soakNote), with the samples.
  soak: [
    { head: "req/s", cell: (t) => fmtMedian(t.rps) },
    { head: "p99 ms", cell: (t) => fmtMedian(t.p99) },
    { head: "CPU ms / 1k req", cell: (t) => fmtMedian(t.cpuMsPer1k) },
    { head: "peak RSS MiB", cell: (t) => fmtMedian(t.peakRssMiB) },
    { head: "errors", cell: (t) => errorsCell(t) },
  ],
};

function fmtRatioSpread(s: Spread | null): string {
  if (s === null) return "—";
  const f = (n: number) => `${n.toFixed(2)}×`;
  return s.min === s.max ? f(s.median) : `${f(s.median)} (${f(s.min)}–${f(s.max)})`;
}

/**
 * Issue 12's verdicts, per target that ran the churn scenario: event-loop delay p99 under churn
 * below 20 ms (the bucket bound, which a 20 ms bucket makes exact), throughput under churn at
 * least 0.9× that of the quiet windows beside it in the same run (medians over the runs), and
 * memory with every endpoint synced.
 */
export function churnGoalsNote(scenario: ScenarioOutcome): string | null {
  const lines = summarizeScenario(scenario).flatMap((t) => {
    const c = t.churn;
    if (c === null || t.runs === 0) return [];
    const mark = (ok: boolean | null) => (ok === null ? "?" : ok ? "✓" : "✗");
    const bound = c.churnLoopP99Bound?.median ?? null;
    const loop = c.churnLoopP99?.median ?? null;
    const ratioMedian = c.ratio?.median ?? null;
    const loopOk = bound === null ? null : bound <= CHURN_GOALS.loopP99Ms;
    const ratioOk = ratioMedian === null ? null : ratioMedian >= CHURN_GOALS.throughputRatio;
    const rss = c.rssAfterSyncMiB?.median;
    return [
      `- ${t.label}: event-loop delay p99 under churn ${loop === null ? "not measured" : `${formatNumber(loop)} ms (bucket ≤ ${formatNumber(bound ?? 0)} ms)`}, goal < ${CHURN_GOALS.loopP99Ms} ms ${mark(loopOk)}; ` +
        `throughput under churn ${ratioMedian === null ? "—" : `${ratioMedian.toFixed(2)}×`} the quiet windows' beside it, goal ≥ ${CHURN_GOALS.throughputRatio.toFixed(2)}× ${mark(ratioOk)}; ` +
        `RSS with ${c.endpoints.toLocaleString("en-US")} endpoints synced ${rss === undefined ? "—" : `${formatNumber(rss)} MiB`} (peak under load ${t.peakRssMiB === null ? "—" : `${formatNumber(t.peakRssMiB.median)} MiB`}).`,
    ];
  });
  return lines.length === 0 ? null : ["Goals (issue 12):", "", ...lines].join("\n");
}

function errorsCell(t: TargetSummary): string {
  const errors = t.errors?.median ?? 0;
  const non2xx = t.non2xx?.median ?? 0;
  if (t.runs === 0) return "—";
  if (errors === 0 && non2xx === 0) return "0";
  return `${formatCount(errors)} (+${formatCount(non2xx)} non-2xx)`;
}

function describeParams(params: ScenarioOutcome["params"]): string {
  return Object.entries(params)
    .map(([k, v]) => `${k} ${typeof v === "number" ? v.toLocaleString("en-US") : v}`)
    .join(", ");
}

/** Runs where other processes used more than this share of a pinned core are flagged. */
export const DISTURBED_THRESHOLD = 0.1;

/** The most other processes took of either pinned core in any run of this target, or null. */
export function worstOtherLoad(samples: readonly RunSample[]): number | null {
  let worst: number | null = null;
  for (const s of samples) {
    for (const v of [s.otherLoad?.proxyCore, s.otherLoad?.loadCore]) {
      if (v !== null && v !== undefined && (worst === null || v > worst)) worst = v;
    }
  }
  return worst;
}

function disturbedNote(scenario: ScenarioOutcome): string | null {
  const disturbed = scenario.targets
    .map((t) => ({ label: t.label, worst: worstOtherLoad(t.samples) }))
    .filter((t) => t.worst !== null && t.worst > DISTURBED_THRESHOLD)
    .map((t) => `${t.label} ${Math.round((t.worst ?? 0) * 100)}%`);
  if (disturbed.length === 0) return null;
  return (
    `⚠ Other processes on this machine used a pinned core during some runs (worst share of a core: ` +
    `${disturbed.join(", ")}); those figures are noisy.`
  );
}

/**
 * "Load: wrk 4.1.0 (1 thread)", and where some targets had another load generator, which ones
 * (the mTLS targets under autocannon in a wrk scenario).
 */
function loadNote(scenario: ScenarioOutcome): string {
  const others = new Map<string, string[]>();
  for (const t of scenario.targets) {
    if (t.loadGenerator === undefined || t.loadGenerator === scenario.loadGenerator) continue;
    others.set(t.loadGenerator, [...(others.get(t.loadGenerator) ?? []), t.label]);
  }
  const parts = scenario.loadGenerator === undefined ? [] : [scenario.loadGenerator];
  for (const [load, labels] of others) parts.push(`${load} for ${labels.join(", ")}`);
  if (parts.length === 0) return "";
  const why =
    others.size === 0
      ? ""
      : " (wrk cannot present a client certificate; throughput ratios only between rows with the same load generator)";
  return ` Load: ${parts.join("; ")}${why}.`;
}

/** What each TLS target negotiated in the handshake scenario, so equal conditions can be seen. */
function negotiatedNote(scenario: ScenarioOutcome): string | null {
  const lines = scenario.targets.flatMap((t) => {
    const text = t.samples.find((s) => s.negotiated)?.negotiated;
    return text ? [`${t.label}: ${text}`] : [];
  });
  return lines.length === 0 ? null : `Negotiated: ${lines.join("; ")}.`;
}

/** One Markdown section per scenario: a heading, the load shape, and a table of targets. */
export function markdownScenario(scenario: ScenarioOutcome): string {
  const rows = summarizeScenario(scenario);
  const columns = COLUMNS[scenario.focus].filter(
    (c) => c.when === undefined || rows.some((t) => c.when?.(t) === true),
  );
  const head = `| target | runs | ${columns.map((c) => c.head).join(" | ")} |`;
  const rule = `|---|---:|${columns.map(() => "---:").join("|")}|`;
  const body = rows.map((t) => {
    if (t.skipped !== undefined) {
      return `| ${t.label} | 0 | skipped: ${t.skipped}${" |".repeat(columns.length)}`;
    }
    return `| ${t.label} | ${t.runs} | ${columns.map((c) => c.cell(t)).join(" | ")} |`;
  });
  const notes = [
    negotiatedNote(scenario),
    churnGoalsNote(scenario),
    soakNote(scenario),
    disturbedNote(scenario),
  ].filter((n) => n !== null);
  return [
    `### ${scenario.title}`,
    "",
    `${describeParams(scenario.params)}.${loadNote(scenario)}`,
    "",
    head,
    rule,
    ...body,
  ]
    .concat(notes.flatMap((n) => ["", n]))
    .join("\n")
    .concat("\n");
}

/** The whole report as Markdown: machine, every scenario's table, and what was skipped. */
export function markdownReport(report: BenchReport): string {
  const m = report.machine;
  const parts = [
    `## remora benchmark — ${report.startedAt}`,
    "",
    `Machine: ${m.cpuModel}, ${m.cores} cores, ${(m.memoryBytes / GiB).toFixed(1)} GiB, ${m.os}, Node ${m.node}. ` +
      `Pinning: ${m.pinning}. Backend: ${report.backend}.`,
    `Medians of the runs, min–max in parentheses. Command: \`${report.command}\`.`,
    "",
    ...report.scenarios.map(markdownScenario),
  ];
  if (report.skipped.length > 0) {
    parts.push("Skipped targets:", "");
    for (const s of report.skipped) parts.push(`- ${s.targetId}: ${s.reason}`);
    parts.push("");
  }
  const versions = Object.entries(report.versions).map(([k, v]) => `${k} ${v}`);
  parts.push(`Versions: ${versions.join(", ")}.`, "");
  return parts.join("\n");
}

/* ------------------------------------------------------------------ SVG */

/** Stable colours per target id; remora in the project's accent colour. */
const PALETTE: Record<string, string> = {
  direct: "#9aa5b1",
  remora: "#d9480f",
  "remora-mtls": "#f08c00",
  "remora-tls": "#e8590c",
  "haproxy-tls": "#66a80f",
  "node-http-proxy": "#5c7cfa",
  "fastify-http-proxy": "#15aabf",
  haproxy: "#2b8a3e",
  nginx: "#7048e8",
};
const FALLBACK_COLOURS = ["#e64980", "#495057", "#82c91e", "#1098ad"];

function colourOf(targetId: string, index: number): string {
  return PALETTE[targetId] ?? FALLBACK_COLOURS[index % FALLBACK_COLOURS.length] ?? "#000";
}

function escapeXml(s: string): string {
  return s
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;");
}

/** A "nice" tick step (1, 2, 2.5 or 5 × 10^n) at or above `value`. */
export function niceStep(value: number): number {
  if (!(value > 0)) return 1;
  const exp = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5]) {
    if (step * exp >= value * (1 - 1e-9)) return step * exp;
  }
  return 10 * exp;
}

export interface AxisScale {
  readonly min: number;
  readonly max: number;
  readonly step: number;
  readonly ticks: number[];
}

/**
 * An axis covering [lo, hi] (always including 0) with ticks at round steps, so labels read
 * 0, 10k, 20k... rather than 0, 7.4k, 14.9k.
 */
export function niceScale(lo: number, hi: number, ticks = 5): AxisScale {
  const low = Math.min(0, lo);
  const high = Math.max(0, hi);
  const step = niceStep((high - low) / ticks || 1);
  // Below zero only as far as the data goes (a proxy "faster" than direct is noise, and a
  // whole negative step would waste a quarter of the chart on it).
  const min = low * 1.05;
  const max = Math.max(step, Math.ceil(high / step - 1e-9) * step);
  const list: number[] = [];
  for (let i = Math.ceil(min / step - 1e-9); i * step <= max + step / 2; i++)
    list.push(i === 0 ? 0 : i * step);
  return { min, max, step, ticks: list };
}

function compact(n: number): string {
  if (n === 0) return "0";
  if (Math.abs(n) >= 1000) return `${formatNumber(n / 1000)}k`;
  return formatNumber(n);
}

/** Axis labels: as few digits as the step needs (0.5, 1, 1.5 rather than 0.500, 1.00, 1.50). */
function tickLabel(v: number, step: number): string {
  if (v === 0) return "0";
  if (Math.abs(v) >= 1000)
    return `${(v / 1000).toLocaleString("en-US", { maximumFractionDigits: 2 })}k`;
  const digits = Math.max(0, -Math.floor(Math.log10(step) + 1e-9) + (step % 1 === 0.5 ? 1 : 0));
  return v.toLocaleString("en-US", { maximumFractionDigits: Math.min(3, digits + 1) });
}

interface ChartTarget {
  readonly id: string;
  readonly label: string;
  readonly colour: string;
}

/**
 * A two-panel chart: (top) grouped bars of req/s per throughput scenario, one bar per target,
 * whiskers at min–max; (bottom) horizontal bars of the p99 latency each proxy adds over
 * direct at a fixed rate. Hand-written SVG so it renders anywhere, including GitHub.
 */
export function svgChart(report: BenchReport): string {
  const W = 1000;
  const H = 700;
  // A soak scenario adds its panel below the two others.
  const soak = report.scenarios.find((s) => s.focus === "soak");
  const total = H + (soak === undefined ? 0 : SOAK_PANEL_HEIGHT);
  const out: string[] = [];
  const text = (x: number, y: number, s: string, attrs = ""): void => {
    out.push(`<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" ${attrs}>${escapeXml(s)}</text>`);
  };

  // Every target that produced a sample anywhere, in table order, with a fixed colour.
  const targets: ChartTarget[] = [];
  for (const sc of report.scenarios) {
    for (const t of sc.targets) {
      if (t.samples.length > 0 && !targets.some((c) => c.id === t.targetId)) {
        targets.push({
          id: t.targetId,
          label: t.label,
          colour: colourOf(t.targetId, targets.length),
        });
      }
    }
  }

  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${total}" viewBox="0 0 ${W} ${total}" font-family="system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif" font-size="13">`,
    `<rect width="${W}" height="${total}" fill="#ffffff"/>`,
  );
  text(
    24,
    32,
    "remora vs. peers — one proxy core",
    'font-size="20" font-weight="600" fill="#212529"',
  );
  const m = report.machine;
  text(
    24,
    52,
    `${m.cpuModel}, ${m.cores} cores · ${m.pinning} · ${report.startedAt.slice(0, 16).replace("T", " ")} UTC · medians, whiskers min–max`,
    'fill="#495057" font-size="12"',
  );

  // Legend, wrapped onto as many rows as it needs.
  let lx = 24;
  let ly = 76;
  for (const t of targets) {
    const w = 26 + t.label.length * 7.2;
    if (lx + w > W - 24) {
      lx = 24;
      ly += 20;
    }
    out.push(`<rect x="${lx}" y="${ly - 10}" width="14" height="14" rx="2" fill="${t.colour}"/>`);
    text(lx + 20, ly + 1, t.label, 'fill="#212529"');
    lx += w + 14;
  }
  // Targets that could not run are named too, so their absence is not mistaken for an omission.
  for (const skip of report.skipped) {
    const label = `${skip.targetId}: ${skip.reason}`;
    const w = 20 + label.length * 6.6;
    if (lx + w > W - 24) {
      lx = 24;
      ly += 20;
    }
    out.push(
      `<rect x="${lx}" y="${ly - 10}" width="14" height="14" rx="2" fill="none" stroke="#adb5bd" stroke-dasharray="3 2"/>`,
    );
    text(lx + 20, ly + 1, label, 'fill="#868e96" font-style="italic"');
    lx += w + 14;
  }

  // Top panel: grouped bars of req/s.
  const throughputScenarios = report.scenarios.filter((s) => s.focus === "throughput");
  const top = { x: 90, y: ly + 40, w: W - 90 - 24, h: 300 };
  text(
    top.x - 66,
    top.y - 14,
    "Throughput (requests/s, higher is better)",
    'font-weight="600" fill="#212529"',
  );
  drawGroupedBars(out, text, top, throughputScenarios, targets);

  // Bottom panel: added p99 over direct, horizontal bars.
  const latency = report.scenarios.find((s) => s.focus === "latency");
  const bottomY = top.y + top.h + 70;
  const bottom = { x: 190, y: bottomY, w: W - 190 - 60, h: H - bottomY - 30 };
  const rate = latency?.params.rate;
  const rateNote = latency
    ? ` at ${typeof rate === "number" ? rate.toLocaleString("en-US") : "a fixed"} req/s`
    : "";
  text(
    24,
    bottom.y - 14,
    `Added p99 latency over direct${rateNote} (ms, lower is better)`,
    'font-weight="600" fill="#212529"',
  );
  drawAddedLatency(out, text, bottom, latency, targets);
  if (soak !== undefined) {
    drawSoakPanel(out, text, { x: 90, y: H + 40, w: W - 90 - 70, h: SOAK_PANEL_HEIGHT - 90 }, soak);
  }

  out.push("</svg>");
  return `${out.join("\n")}\n`;
}

type TextFn = (x: number, y: number, s: string, attrs?: string) => void;
interface Box {
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

function drawGroupedBars(
  out: string[],
  text: TextFn,
  box: Box,
  scenarios: ScenarioOutcome[],
  targets: ChartTarget[],
): void {
  const groups = scenarios.map((sc) => ({
    title: sc.title,
    load: sc.loadGenerator,
    rows: summarizeScenario(sc).filter((r) => r.rps !== null),
  }));
  const peak = Math.max(0, ...groups.flatMap((g) => g.rows.map((r) => r.rps?.max ?? 0)));
  if (groups.length === 0 || peak === 0) {
    text(
      box.x + box.w / 2,
      box.y + box.h / 2,
      "no throughput scenario in this run",
      'text-anchor="middle" fill="#868e96"',
    );
    return;
  }
  const scale = niceScale(0, peak);
  const y = (v: number): number => box.y + box.h - (v / scale.max) * box.h;
  for (const v of scale.ticks) {
    out.push(
      `<line x1="${box.x}" x2="${box.x + box.w}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="${v === 0 ? "#495057" : "#e9ecef"}"/>`,
    );
    text(
      box.x - 8,
      y(v) + 4,
      tickLabel(v, scale.step),
      'text-anchor="end" fill="#495057" font-size="12"',
    );
  }
  const groupW = box.w / groups.length;
  groups.forEach((g, gi) => {
    const present = targets.filter((t) => g.rows.some((r) => r.targetId === t.id));
    const inner = groupW * 0.84;
    const barW = Math.min(56, inner / Math.max(1, present.length));
    const start = box.x + gi * groupW + (groupW - barW * present.length) / 2;
    present.forEach((t, ti) => {
      const row = g.rows.find((r) => r.targetId === t.id);
      const s = row?.rps;
      if (!s) return;
      const x = start + ti * barW;
      const bw = barW - 6;
      out.push(
        `<rect x="${(x + 3).toFixed(1)}" y="${y(s.median).toFixed(1)}" width="${bw.toFixed(1)}" height="${(box.y + box.h - y(s.median)).toFixed(1)}" fill="${t.colour}"><title>${escapeXml(`${t.label}: ${formatNumber(s.median)} req/s`)}</title></rect>`,
      );
      const cx = x + 3 + bw / 2;
      if (s.max > s.min) {
        out.push(
          `<path d="M${cx.toFixed(1)} ${y(s.max).toFixed(1)}V${y(s.min).toFixed(1)}M${(cx - 4).toFixed(1)} ${y(s.max).toFixed(1)}h8M${(cx - 4).toFixed(1)} ${y(s.min).toFixed(1)}h8" stroke="#212529" stroke-width="1.2" fill="none"/>`,
        );
      }
      text(
        cx,
        y(s.max) - 6,
        compact(s.median),
        'text-anchor="middle" fill="#212529" font-size="11"',
      );
    });
    text(
      box.x + gi * groupW + groupW / 2,
      box.y + box.h + 20,
      g.title,
      'text-anchor="middle" fill="#212529"',
    );
    if (g.load !== undefined) {
      text(
        box.x + gi * groupW + groupW / 2,
        box.y + box.h + 36,
        `load: ${g.load}`,
        'text-anchor="middle" fill="#868e96" font-size="11"',
      );
    }
  });
}

function drawAddedLatency(
  out: string[],
  text: TextFn,
  box: Box,
  latency: ScenarioOutcome | undefined,
  targets: ChartTarget[],
): void {
  const rows = latency
    ? summarizeScenario(latency).filter((r) => r.addedP99 !== null && r.targetId !== DIRECT_ID)
    : [];
  if (rows.length === 0) {
    text(
      box.x + box.w / 2,
      box.y + 30,
      "no fixed-rate latency scenario in this run",
      'text-anchor="middle" fill="#868e96"',
    );
    return;
  }
  const lo = Math.min(0, ...rows.map((r) => r.addedP99?.min ?? 0));
  const hi = Math.max(...rows.map((r) => r.addedP99?.max ?? 0));
  const scale = niceScale(lo, hi, 5);
  const x = (v: number): number => box.x + ((v - scale.min) / (scale.max - scale.min)) * box.w;
  const rowH = Math.min(30, box.h / rows.length);
  for (const v of scale.ticks) {
    out.push(
      `<line x1="${x(v).toFixed(1)}" x2="${x(v).toFixed(1)}" y1="${box.y}" y2="${(box.y + rowH * rows.length).toFixed(1)}" stroke="#e9ecef"/>`,
    );
    text(
      x(v),
      box.y + rowH * rows.length + 16,
      tickLabel(v, scale.step),
      'text-anchor="middle" fill="#495057" font-size="12"',
    );
  }
  out.push(
    `<line x1="${x(0).toFixed(1)}" x2="${x(0).toFixed(1)}" y1="${box.y}" y2="${(box.y + rowH * rows.length).toFixed(1)}" stroke="#495057"/>`,
  );
  rows.forEach((r, i) => {
    const s = r.addedP99;
    if (!s) return;
    const colour = targets.find((t) => t.id === r.targetId)?.colour ?? "#000";
    const cy = box.y + i * rowH;
    const x0 = x(Math.min(0, s.median));
    const x1 = x(Math.max(0, s.median));
    text(box.x - 10, cy + rowH / 2 + 4, r.label, 'text-anchor="end" fill="#212529"');
    out.push(
      `<rect x="${x0.toFixed(1)}" y="${(cy + 4).toFixed(1)}" width="${Math.max(1, x1 - x0).toFixed(1)}" height="${(rowH - 8).toFixed(1)}" fill="${colour}"><title>${escapeXml(`${r.label}: +${formatNumber(s.median)} ms p99`)}</title></rect>`,
    );
    if (s.max > s.min) {
      const my = cy + rowH / 2;
      out.push(
        `<path d="M${x(s.min).toFixed(1)} ${my.toFixed(1)}H${x(s.max).toFixed(1)}M${x(s.min).toFixed(1)} ${(my - 4).toFixed(1)}v8M${x(s.max).toFixed(1)} ${(my - 4).toFixed(1)}v8" stroke="#212529" stroke-width="1.2" fill="none"/>`,
      );
    }
    text(
      x(Math.max(s.max, s.median, 0)) + 8,
      cy + rowH / 2 + 4,
      `${s.median >= 0 ? "+" : ""}${formatNumber(s.median)} ms`,
      'fill="#212529" font-size="12"',
    );
  });
}
