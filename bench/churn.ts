/**
 * The `churn` scenario's cluster (issue 12): a fake Kubernetes API server
 * (discovery/kubernetes/testing/fake-api.ts) holding 1,000 Services of 10 endpoints each, and a
 * writer that changes their EndpointSlices at a fixed rate while the proxy carries load on one
 * of them, and how a run's quiet and churn windows add up. Plus what the scenario reads back from
 * remora: its event-loop delay histogram and its count of watch events applied, from
 * /stats/prometheus, per window.
 *
 * Every Service's endpoints are the same real backend on ten loopback addresses (127.0.0.1 to
 * 127.0.0.10, one port): one EndpointSlice of ten endpoints per Service, as Kubernetes groups
 * pods that share their ports, and every endpoint answers if traffic goes to it.
 */
import { performance } from "node:perf_hooks";
import {
  FakeKubeApi,
  serviceObject,
  sliceObject,
} from "../discovery/kubernetes/testing/fake-api.js";
import { type ChurnPhase, type ChurnWindow, type RunSample, spread } from "./report.js";

/** How big the cluster is and how fast it changes. */
export interface ChurnShape {
  /** Services listed at start (the loaded one included). */
  readonly services: number;
  readonly endpointsPerService: number;
  /** EndpointSlice writes per second during a churn window (one endpoint changes in each). */
  readonly updatesPerSec: number;
}

/** The namespace every Service lives in: remora's own (its kubeconfig context's), so `bench` routes. */
export const CHURN_NAMESPACE = "default";

/** The loopback addresses the endpoints use: 127.0.0.1 ... 127.0.0.N (all of 127/8 is loopback on Linux). */
export function churnHosts(count: number): string[] {
  if (count < 1 || count > 254)
    throw new Error(`endpoints per service must be 1..254, got ${count}`);
  return Array.from({ length: count }, (_, i) => `127.0.0.${i + 1}`);
}

/**
 * The name of Service `index`: the loaded one (index 0) is `loaded`, what the load generator's
 * Host names; the others `svc-0001`...
 */
export function churnServiceName(index: number, loaded: string): string {
  return index === 0 ? loaded : `svc-${String(index).padStart(4, "0")}`;
}

/**
 * Update `k` of a churn: which Service's slice is rewritten, and which of its endpoints is
 * not ready in it (the others are). Services are taken in turn, so each is rewritten every
 * `services / updatesPerSec` seconds (the loaded one too), and each rewrite moves the not-ready
 * endpoint to the next pod: every update is a real change, as a rolling readiness flap is.
 */
export function churnUpdate(
  k: number,
  shape: ChurnShape,
): { service: number; notReady: number | null } {
  const service = k % shape.services;
  const round = Math.floor(k / shape.services);
  return { service, notReady: round % shape.endpointsPerService };
}

/** The EndpointSlice of Service `index` with endpoint `notReady` (if any) not ready. */
export function churnSlice(
  index: number,
  loaded: string,
  hosts: readonly string[],
  port: number,
  notReady: number | null,
): ReturnType<typeof sliceObject> {
  const name = churnServiceName(index, loaded);
  return sliceObject(
    `${name}-x7k2p`,
    CHURN_NAMESPACE,
    name,
    hosts.map((ip, i) => ({
      ip,
      pod: `${name}-${i}`,
      ...(i === notReady ? { ready: false, serving: false } : {}),
    })),
    { name: "http", port },
  );
}

/** A ClusterIP per Service, unique for up to 65,534 of them. */
function clusterIp(index: number): string {
  const n = index + 1;
  return `10.96.${Math.floor(n / 256)}.${n % 256}`;
}

/** What the writer wrote between one startChurn and its stopChurn. */
export interface ChurnTally {
  readonly updates: number;
  readonly seconds: number;
}

/**
 * The fake API server, filled with `shape.services` Services (port 80, named port `http`) and
 * their slices, and the writer that churns them. Runs in the harness's process, on the load core.
 */
export class ChurnCluster {
  readonly api: FakeKubeApi;
  readonly shape: ChurnShape;
  readonly #loaded: string;
  readonly #hosts: readonly string[];
  readonly #port: number;
  /** Milliseconds on a monotonic clock; injected so a test can move time itself. */
  readonly #now: () => number;
  /** The next update of the sequence: kept across stopChurn, so a restart changes slices on. */
  #next = 0;
  #timer: NodeJS.Timeout | undefined;
  #startedAt = 0;
  #written = 0;

  private constructor(
    api: FakeKubeApi,
    shape: ChurnShape,
    loaded: string,
    hosts: readonly string[],
    port: number,
    now: () => number,
  ) {
    this.api = api;
    this.shape = shape;
    this.#loaded = loaded;
    this.#hosts = hosts;
    this.#port = port;
    this.#now = now;
  }

  /** Starts the API server and lists every Service and slice in it (all endpoints ready). */
  static async start(
    shape: ChurnShape,
    loaded: string,
    backendPort: number,
    now: () => number = () => performance.now(),
  ): Promise<ChurnCluster> {
    const api = new FakeKubeApi({ cutEvents: false });
    await api.start();
    const hosts = churnHosts(shape.endpointsPerService);
    const cluster = new ChurnCluster(api, shape, loaded, hosts, backendPort, now);
    for (let i = 0; i < shape.services; i++) {
      api.put(
        "services",
        serviceObject(
          churnServiceName(i, loaded),
          CHURN_NAMESPACE,
          [{ name: "http", port: 80, targetPort: "http" }],
          clusterIp(i),
        ),
      );
      api.put("endpointslices", churnSlice(i, loaded, hosts, backendPort, null));
    }
    return cluster;
  }

  /** A kubeconfig for remora (token inline, namespace `default`). */
  writeKubeconfig(path: string): void {
    this.api.writeKubeconfig(path, { namespace: CHURN_NAMESPACE });
  }

  /**
   * Starts writing `updatesPerSec` slice updates a second: every 10 ms, as many as are due since
   * this start (not the first: a quiet window between is not caught up), so a late timer catches
   * up instead of lowering the rate. The sequence goes on from where the last stop left it.
   */
  startChurn(): void {
    if (this.#timer !== undefined) return;
    this.#startedAt = this.#now();
    this.#written = 0;
    this.#timer = setInterval(() => this.#writeDue(), 10);
  }

  /** Stops writing; what was written since startChurn. */
  stopChurn(): ChurnTally {
    if (this.#timer === undefined) return { updates: 0, seconds: 0 };
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#writeDue();
    return { updates: this.#written, seconds: (this.#now() - this.#startedAt) / 1000 };
  }

  async stop(): Promise<void> {
    this.stopChurn();
    await this.api.stop();
  }

  #writeDue(): void {
    const due = Math.floor(((this.#now() - this.#startedAt) / 1000) * this.shape.updatesPerSec);
    while (this.#written < due) {
      const { service, notReady } = churnUpdate(this.#next++, this.shape);
      this.api.put(
        "endpointslices",
        churnSlice(service, this.#loaded, this.#hosts, this.#port, notReady),
      );
      this.#written++;
    }
  }
}

/* ------------------------------------------------------------------ remora's own figures */

/** A cumulative Prometheus histogram: upper bounds (s, the last +Inf) and counts at or below. */
export interface Histogram {
  readonly bounds: readonly number[];
  readonly counts: readonly number[];
}

/** What the scenario reads from one scrape of remora's /stats/prometheus. */
export interface RemoraScrape {
  /** remora_event_loop_delay_seconds; null when remora does not export it. */
  readonly loopDelay: Histogram | null;
  /** remora_kubernetes_events_applied_total, summed over resources. */
  readonly eventsApplied: number;
}

const BUCKET = /^remora_event_loop_delay_seconds_bucket\{le="([^"]+)"\} ([0-9.e+-]+|\+Inf|NaN)$/;
const APPLIED = /^remora_kubernetes_events_applied_total\{[^}]*\} ([0-9.e+-]+)$/;

/** The figures the scenario needs from Prometheus text (lines it does not know are ignored). */
export function parseRemoraScrape(text: string): RemoraScrape {
  const bounds: number[] = [];
  const counts: number[] = [];
  let eventsApplied = 0;
  for (const line of text.split("\n")) {
    const bucket = BUCKET.exec(line);
    if (bucket !== null) {
      bounds.push(bucket[1] === "+Inf" ? Number.POSITIVE_INFINITY : Number(bucket[1]));
      counts.push(Number(bucket[2]));
      continue;
    }
    const applied = APPLIED.exec(line);
    if (applied !== null) eventsApplied += Number(applied[1]);
  }
  return { loopDelay: bounds.length === 0 ? null : { bounds, counts }, eventsApplied };
}

/** What was observed between two scrapes of the same histogram. */
export function histogramDelta(before: Histogram, after: Histogram): Histogram {
  if (before.bounds.join() !== after.bounds.join()) throw new Error("histogram buckets changed");
  return { bounds: after.bounds, counts: after.counts.map((c, i) => c - (before.counts[i] ?? 0)) };
}

/**
 * A quantile of a cumulative histogram, in ms: `boundMs` is the upper bound of the bucket it
 * falls in (what the histogram can prove: "at most"), `estimateMs` linear within that bucket,
 * as Prometheus's histogram_quantile does. Null when nothing was observed.
 */
export function histogramQuantile(
  h: Histogram,
  q: number,
): { estimateMs: number; boundMs: number } | null {
  const total = h.counts.at(-1) ?? 0;
  if (total <= 0) return null;
  const rank = q * total;
  let lower = 0;
  let below = 0;
  for (let i = 0; i < h.bounds.length; i++) {
    const bound = h.bounds[i]!;
    const count = h.counts[i]!;
    if (count >= rank) {
      if (!Number.isFinite(bound)) return { estimateMs: lower * 1000, boundMs: bound };
      const inBucket = count - below;
      const share = inBucket === 0 ? 1 : (rank - below) / inBucket;
      return { estimateMs: (lower + (bound - lower) * share) * 1000, boundMs: bound * 1000 };
    }
    lower = bound;
    below = count;
  }
  return null;
}

/** remora's generated config: the outbound listener, and discovery from the fake API only. */
export function remoraKubernetesConfig(
  port: number,
  admin: number,
  kubeconfig: string,
  accessLog?: string,
): string {
  return `# Generated by remora's bench/churn.ts: services from the Kubernetes API (the churn scenario).
admin: { port: ${admin} }
probes: { port: null }
metrics: { port: null }
${accessLog === undefined ? "" : `accessLog: { enabled: true, path: ${JSON.stringify(accessLog)} }\n`}listeners: [{ name: outbound, kind: outbound, port: ${port} }]
discovery:
  kubernetes:
    kubeconfig: ${JSON.stringify(kubeconfig)}
`;
}

/* ------------------------------------------------------------------ one run, window by window */

/** A window of a run: load only, or load while the writer churns the slices. */
export type WindowKind = "quiet" | "churn";

/** Churn windows per run unless --churn-windows says otherwise: Q C Q C Q. */
export const DEFAULT_CHURN_WINDOWS = 2;
/** The most --churn-windows accepts: a run stays within 21 windows. */
export const MAX_CHURN_WINDOWS = 10;

/**
 * The kinds of a run's 2 × `churnWindows` + 1 windows, in order: quiet, churn, quiet, ... ending
 * quiet, so every churn window has a quiet one on each side to be compared with. Each window is
 * --duration long.
 */
export function churnSchedule(churnWindows: number): WindowKind[] {
  if (!Number.isInteger(churnWindows) || churnWindows < 1 || churnWindows > MAX_CHURN_WINDOWS)
    throw new Error(
      `churn windows must be an integer 1..${MAX_CHURN_WINDOWS}, got ${churnWindows}`,
    );
  return Array.from({ length: 2 * churnWindows + 1 }, (_, i) => (i % 2 === 0 ? "quiet" : "churn"));
}

/**
 * Each window's ratio: for a churn window, its req/s over the mean req/s of the quiet windows
 * directly before and after it (the one there is, at an edge), so a drift that is slow next to
 * a window cancels; null for a quiet window, or a churn window with no quiet neighbour.
 */
export function churnWindowRatios(
  windows: ReadonlyArray<{ readonly kind: WindowKind; readonly requestsPerSec: number }>,
): Array<number | null> {
  return windows.map((w, i) => {
    if (w.kind !== "churn") return null;
    const beside = [windows[i - 1], windows[i + 1]].flatMap((n) =>
      n?.kind === "quiet" ? [n.requestsPerSec] : [],
    );
    if (beside.length === 0) return null;
    const quiet = beside.reduce((a, b) => a + b, 0) / beside.length;
    return quiet > 0 ? w.requestsPerSec / quiet : null;
  });
}

/** Histograms of the same buckets added up: what all their windows observed together. */
export function sumHistograms(list: readonly Histogram[]): Histogram | null {
  const first = list[0];
  if (first === undefined) return null;
  const counts = [...first.counts];
  for (const h of list.slice(1)) {
    if (h.bounds.join() !== first.bounds.join()) throw new Error("histogram buckets changed");
    h.counts.forEach((c, i) => {
      counts[i] = (counts[i] ?? 0) + c;
    });
  }
  return { bounds: first.bounds, counts };
}

/** One window as measured: its load, and what the writer wrote in it (null when quiet). */
export interface MeasuredWindow {
  readonly kind: WindowKind;
  readonly sample: RunSample;
  readonly tally: ChurnTally | null;
}

/** A window's figures, with what remora's scrapes on either side of it say happened in it. */
interface WindowFigures {
  readonly window: ChurnWindow;
  readonly sample: RunSample;
  /** The loop-delay histogram's delta over the window; null when a scrape is missing. */
  readonly loop: Histogram | null;
  /** Watch events applied in the window; null when a scrape is missing. */
  readonly applied: number | null;
  /**
   * The seconds those events are counted over: the writer's own time in a churn window (it
   * starts before the load and stops after it, so this is what "updates/s written" divides by
   * too), the load's in a quiet one.
   */
  readonly appliedSec: number;
}

function windowFigures(
  measured: MeasuredWindow,
  before: RemoraScrape | null,
  after: RemoraScrape | null,
  ratio: number | null,
): WindowFigures {
  const { sample, tally } = measured;
  const loopBefore = before?.loopDelay ?? null;
  const loopAfter = after?.loopDelay ?? null;
  const loop =
    loopBefore === null || loopAfter === null ? null : histogramDelta(loopBefore, loopAfter);
  const applied =
    before === null || after === null ? null : after.eventsApplied - before.eventsApplied;
  const p99 = loop === null ? null : histogramQuantile(loop, 0.99);
  const appliedSec = tally !== null && tally.seconds > 0 ? tally.seconds : sample.durationSec;
  return {
    sample,
    loop,
    applied,
    appliedSec,
    window: {
      kind: measured.kind,
      durationSec: sample.durationSec,
      requestsPerSec: sample.requestsPerSec,
      p99Ms: sample.latency.p99,
      failed: sample.errors + sample.non2xx,
      loopP99Ms: p99?.estimateMs ?? null,
      loopP99BoundMs: p99?.boundMs ?? null,
      eventsAppliedPerSec: applied === null || appliedSec <= 0 ? null : applied / appliedSec,
      ratio,
      updatesPerSec: tally === null || tally.seconds <= 0 ? 0 : tally.updates / tally.seconds,
    },
  };
}

const sum = (values: readonly number[]): number => values.reduce((a, b) => a + b, 0);
const mean = (values: readonly number[]): number => sum(values) / values.length;

/**
 * The windows of one kind as one phase: req/s the mean of theirs, latency p99 the median of
 * theirs (percentiles of separate runs do not add), failures summed, loop p99 from their
 * histogram deltas summed, events applied over the time (appliedSec) of the windows both of
 * whose scrapes answered.
 */
function phaseOver(figures: readonly WindowFigures[]): ChurnPhase {
  const loops = figures.flatMap((f) => (f.loop === null ? [] : [f.loop]));
  const summed = sumHistograms(loops);
  const p99 = summed === null ? null : histogramQuantile(summed, 0.99);
  const counted = figures.filter((f) => f.applied !== null);
  const countedSec = sum(counted.map((f) => f.appliedSec));
  return {
    requestsPerSec: mean(figures.map((f) => f.sample.requestsPerSec)),
    p99Ms: spread(figures.map((f) => f.sample.latency.p99))?.median ?? 0,
    failed: sum(figures.map((f) => f.window.failed)),
    loopP99Ms: p99?.estimateMs ?? null,
    loopP99BoundMs: p99?.boundMs ?? null,
    eventsAppliedPerSec:
      counted.length === 0 || countedSec <= 0
        ? null
        : sum(counted.map((f) => f.applied ?? 0)) / countedSec,
  };
}

/** The larger of two optional shares, null only when both are. */
function worse(a: number | null | undefined, b: number | null | undefined): number | null {
  if (a === null || a === undefined) return b ?? null;
  if (b === null || b === undefined) return a;
  return Math.max(a, b);
}

/**
 * One churn run as the report keeps it. `scrapes` are remora's at every window boundary (one
 * more than the windows; null where it did not answer). The sample's own figures are the churn
 * windows' (req/s and bytes/s their mean, latency percentiles the median of theirs, CPU and time
 * summed), failures, peak memory and other load over every window; `churn` holds both kinds,
 * the run's ratio (the median of its churn windows') and each window.
 */
export function churnRunSample(
  windows: readonly MeasuredWindow[],
  scrapes: ReadonlyArray<RemoraScrape | null>,
  shape: ChurnShape,
  rssAfterSyncBytes: number | null,
): RunSample {
  if (scrapes.length !== windows.length + 1)
    throw new Error(`${windows.length} windows need ${windows.length + 1} scrapes`);
  const ratios = churnWindowRatios(
    windows.map((w) => ({ kind: w.kind, requestsPerSec: w.sample.requestsPerSec })),
  );
  const figures = windows.map((w, i) =>
    windowFigures(w, scrapes[i] ?? null, scrapes[i + 1] ?? null, ratios[i] ?? null),
  );
  const quiet = figures.filter((f) => f.window.kind === "quiet");
  const churned = figures.filter((f) => f.window.kind === "churn");
  const first = churned[0];
  if (first === undefined || quiet.length === 0)
    throw new Error("a churn run needs quiet and churn windows");
  const all = windows.map((w) => w.sample);
  const load = churned.map((f) => f.sample);
  const median = (pick: (s: RunSample) => number): number => spread(load.map(pick))?.median ?? 0;
  const cpu = load.map((s) => s.cpuMs);
  const peaks = all.flatMap((s) => (s.peakRssBytes === null ? [] : [s.peakRssBytes]));
  const pinned = all.flatMap((s) => (s.otherLoad === null ? [] : [s.otherLoad]));
  const tallies = windows.flatMap((w) => (w.tally === null ? [] : [w.tally]));
  const writtenSec = sum(tallies.map((t) => t.seconds));
  return {
    ...first.sample,
    requestsPerSec: mean(load.map((s) => s.requestsPerSec)),
    bytesPerSec: mean(load.map((s) => s.bytesPerSec)),
    latency: {
      p50: median((s) => s.latency.p50),
      p90: median((s) => s.latency.p90),
      p99: median((s) => s.latency.p99),
      p999: median((s) => s.latency.p999),
      max: Math.max(...load.map((s) => s.latency.max)),
      mean: median((s) => s.latency.mean),
    },
    completed: sum(load.map((s) => s.completed)),
    totalBytes: sum(load.map((s) => s.totalBytes)),
    durationSec: sum(load.map((s) => s.durationSec)),
    cpuMs: cpu.some((c) => c === null) ? null : sum(cpu.map((c) => c ?? 0)),
    errors: sum(all.map((s) => s.errors)),
    non2xx: sum(all.map((s) => s.non2xx)),
    peakRssBytes: peaks.length === 0 ? null : Math.max(...peaks),
    otherLoad:
      pinned.length === 0
        ? null
        : pinned.reduce((a, b) => ({
            proxyCore: worse(a.proxyCore, b.proxyCore),
            loadCore: worse(a.loadCore, b.loadCore),
          })),
    churn: {
      quiet: phaseOver(quiet),
      churn: phaseOver(churned),
      ratio: spread(nonNullRatios(ratios))?.median ?? null,
      windows: figures.map((f) => f.window),
      updatesPerSec: writtenSec > 0 ? sum(tallies.map((t) => t.updates)) / writtenSec : 0,
      services: shape.services,
      endpoints: shape.services * shape.endpointsPerService,
      rssAfterSyncBytes,
    },
  };
}

function nonNullRatios(values: ReadonlyArray<number | null>): number[] {
  return values.filter((v): v is number => v !== null);
}
