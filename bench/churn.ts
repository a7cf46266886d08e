/**
 * The `churn` scenario's cluster (issue 12): a fake Kubernetes API server
 * (discovery/kubernetes/testing/fake-api.ts) holding 1,000 Services of 10 endpoints each, and a
 * writer that changes their EndpointSlices at a fixed rate while the proxy carries load on one
 * of them. Plus what the scenario reads back from remora: its event-loop delay histogram and its
 * count of watch events applied, from /stats/prometheus, per phase.
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
import type { ChurnPhase, RunSample } from "./report.js";

/** How big the cluster is and how fast it changes. */
export interface ChurnShape {
  /** Services listed at start (the loaded one included). */
  readonly services: number;
  readonly endpointsPerService: number;
  /** EndpointSlice writes per second during the churn phase (one endpoint changes in each). */
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

/** What one churn phase wrote. */
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
  ) {
    this.api = api;
    this.shape = shape;
    this.#loaded = loaded;
    this.#hosts = hosts;
    this.#port = port;
  }

  /** Starts the API server and lists every Service and slice in it (all endpoints ready). */
  static async start(
    shape: ChurnShape,
    loaded: string,
    backendPort: number,
  ): Promise<ChurnCluster> {
    const api = new FakeKubeApi({ cutEvents: false });
    await api.start();
    const hosts = churnHosts(shape.endpointsPerService);
    const cluster = new ChurnCluster(api, shape, loaded, hosts, backendPort);
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
   * the start, so a late timer catches up instead of lowering the rate.
   */
  startChurn(): void {
    if (this.#timer !== undefined) return;
    this.#startedAt = performance.now();
    this.#written = 0;
    this.#timer = setInterval(() => this.#writeDue(), 10);
  }

  /** Stops writing; what this phase wrote. */
  stopChurn(): ChurnTally {
    if (this.#timer === undefined) return { updates: 0, seconds: 0 };
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#writeDue();
    return { updates: this.#written, seconds: (performance.now() - this.#startedAt) / 1000 };
  }

  async stop(): Promise<void> {
    this.stopChurn();
    await this.api.stop();
  }

  #writeDue(): void {
    const due = Math.floor(
      ((performance.now() - this.#startedAt) / 1000) * this.shape.updatesPerSec,
    );
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

/** Scrapes of remora at the start of the quiet phase, between the phases, and at the end. */
export interface ChurnScrapes {
  readonly start: RemoraScrape | null;
  readonly between: RemoraScrape | null;
  readonly end: RemoraScrape | null;
}

function phaseOf(
  sample: RunSample,
  before: RemoraScrape | null,
  after: RemoraScrape | null,
): ChurnPhase {
  const loopBefore = before?.loopDelay ?? null;
  const loopAfter = after?.loopDelay ?? null;
  const p99 =
    loopBefore === null || loopAfter === null
      ? null
      : histogramQuantile(histogramDelta(loopBefore, loopAfter), 0.99);
  return {
    requestsPerSec: sample.requestsPerSec,
    p99Ms: sample.latency.p99,
    failed: sample.errors + sample.non2xx,
    loopP99Ms: p99?.estimateMs ?? null,
    loopP99BoundMs: p99?.boundMs ?? null,
    eventsAppliedPerSec:
      before === null || after === null || sample.durationSec <= 0
        ? null
        : (after.eventsApplied - before.eventsApplied) / sample.durationSec,
  };
}

/**
 * One churn run as the report keeps it: the churn phase's figures as the sample's own, failures
 * and peak memory over both phases, and both phases side by side in `churn`.
 */
export function churnRunSample(
  quiet: RunSample,
  churned: RunSample,
  scrapes: ChurnScrapes,
  tally: ChurnTally,
  shape: ChurnShape,
  rssAfterSyncBytes: number | null,
): RunSample {
  const peaks = [quiet.peakRssBytes, churned.peakRssBytes].filter((v) => v !== null);
  return {
    ...churned,
    errors: quiet.errors + churned.errors,
    non2xx: quiet.non2xx + churned.non2xx,
    peakRssBytes: peaks.length === 0 ? null : Math.max(...peaks),
    churn: {
      quiet: phaseOf(quiet, scrapes.start, scrapes.between),
      churn: phaseOf(churned, scrapes.between, scrapes.end),
      updatesPerSec: tally.seconds > 0 ? tally.updates / tally.seconds : 0,
      services: shape.services,
      endpoints: shape.services * shape.endpointsPerService,
      rssAfterSyncBytes,
    },
  };
}
