/**
 * What callers may rely on from proxy/metrics/ (the operations issue's "metrics with prom-client").
 *
 * 1. One prom-client `Registry` per Runtime (`runtime.metrics.registry`), never prom-client's
 *    global default registry, so a test process can run several runtimes side by side.
 *    prom-client's default process metrics live in one registry per process (`processMetrics()`
 *    in runtime-metrics.ts), shared by runtimes and served with each runtime's own.
 * 2. Names: `istio_*` are Istio's standard metrics with Istio's names, label names, label order and
 *    Envoy's default histogram buckets (istio.ts); nothing else may use that prefix. remora's own
 *    families are `remora_*` (remora.ts; later issues add theirs there, each with help text).
 *    prom-client's default process metrics keep their own names (`process_*`, `nodejs_*`).
 * 3. The hot path never calls prom-client. prom-client re-hashes every label set on every
 *    `labels(...).inc()` (measured: 17-32 µs for one counter and three histograms with Istio's 25
 *    labels, as much CPU as a whole proxied small GET). Per-request numbers go into plain
 *    fields of a series object resolved once per (listener, cluster, endpoint, status, flags) and
 *    cached; prom-client reads them at scrape time (family.ts). A new per-request metric follows
 *    the same pattern; a per-scrape value (pool sizes, config hash) is read in a `collect`.
 * 4. An unknown label value is the string "unknown", as in Istio (a revision: "latest").
 * 5. `metrics.enabled: false` means no `RuntimeMetrics` at all: `runtime.metrics` is undefined,
 *    no reporter is chained, nothing is counted, and the exposition says so in a comment line.
 * 6. Scrape text is the Prometheus text format 0.0.4 (`CONTENT_TYPE`), served by the admin API's
 *    `GET /stats/prometheus` and by the metrics listener (`metrics.port`, Istio's 15090).
 */

import type { BucketTally } from "./family.js";

/** The Prometheus text exposition format served on every scrape. */
export const CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Istio's value for a label whose value is not known. */
export const UNKNOWN = "unknown";

/** What metrics read from a listener at scrape time (HttpListener and TcpListener have it). */
export interface ListenerCounts {
  /** Open downstream connections. */
  readonly connections: number;
  /** Downstream connections accepted since start. */
  readonly accepted: number;
  /** Downstream connections closed at once by overload protection's connection cap. */
  readonly rejected?: number;
  /** Accept errors the listening sockets reported, by code (EMFILE, ENOBUFS...). */
  readonly acceptErrors?: ReadonlyMap<string, number>;
  /** TLS handshakes that failed (inbound STRICT/PERMISSIVE listeners). */
  readonly tlsHandshakeErrors?: number;
  /** Authorization decisions (inbound listeners; authz/policy.ts AuthorizationTally). */
  readonly authorization?: AuthorizationCounts | undefined;
}

/** Requests authorization policies allowed, and denied by policy name. */
export interface AuthorizationCounts {
  readonly allowed: number;
  readonly denied: ReadonlyMap<string, number>;
}

/** One upstream pool's connections, as `Cluster.poolStats` reports them. */
export interface PoolCounts {
  readonly open: number;
  readonly idle: number;
  readonly connecting: number;
}

/** The slice of a Cluster that metrics read at scrape time. */
export interface ClusterView {
  readonly key: string;
  readonly name: string;
  readonly namespace: string;
  readonly stats: {
    readonly active: number;
    /** Retries started, refused by the budget or maxRetries, and pending-limit overflows. */
    readonly retries?: number;
    readonly retriesRefused?: number;
    readonly pendingOverflows?: number;
  };
  /** Outlier detection's totals; undefined when it is off for the service. */
  outlierStats?():
    | {
        readonly ejectionsEnforced: number;
        readonly ejectionsDetected: number;
        readonly ejectedNow: number;
      }
    | undefined;
  /** Active health checks' totals; undefined without checks. */
  checkStats?(): { readonly checks: number; readonly failures: number } | undefined;
  readonly endpoints: readonly {
    readonly id: string;
    readonly labels: Readonly<Record<string, string>>;
  }[];
  poolStats(endpointId: string): PoolCounts;
  /** The service's host set, then one per subset (absent on test doubles). */
  hostSets?(): readonly HostSetView[];
}

/** One balancer's endpoints as metrics read them (proxy/host-set.ts HostSet). */
export interface HostSetView {
  /** "" for the whole service. */
  readonly subset: string;
  readonly panic: boolean;
  readonly selected: readonly unknown[];
  readonly balancer: { readonly queued?: number };
  /** Undefined unless the balancer queues (first-come). */
  queueStats(): QueueCounts | undefined;
  readonly queueWait: BucketTally;
}

export interface QueueCounts {
  readonly dispatched: number;
  readonly timedOut: number;
  readonly rejected: number;
  readonly cancelled: number;
}

/** One discovery source's sync state (discovery/registry.ts `sourceStates()`). */
export interface SourceView {
  readonly id: string;
  readonly synced: boolean;
  /** When it last delivered an update or its initial state (ms since the epoch); 0 = never. */
  readonly lastSyncMs: number;
}

/** The config identity and reload outcomes (Runtime.reloads, written by the reload path). */
export interface ReloadView {
  readonly ok: number;
  readonly failed: number;
  readonly hash: string;
  readonly appliedAtMs: number;
}

/** What RuntimeMetrics reads from the Runtime at scrape time; Runtime satisfies it as is. */
export interface MetricsSubject {
  readonly reloads: ReloadView;
  readonly clusters: { all(): Iterable<ClusterView>; get(key: string): ClusterView | undefined };
  readonly appClusters: readonly ClusterView[];
  readonly registry: { sourceStates(): readonly SourceView[] };
  readonly accessLog: { stats(): AccessLogView };
  /** Upstream TLS failures (`remora_upstream_tls_errors_total`); absent on test doubles. */
  readonly upstreamTls?: {
    readonly failures: {
      forEach(visit: (service: string, reason: string, count: number) => void): void;
    };
  };
  /** Overload protection's state (overload/overload-protection.ts); absent on test doubles. */
  readonly overload?: OverloadView;
  /** This workload's certificate (config `tls`); undefined when none is configured. */
  readonly identity?: { expirySeconds(): number; caExpirySeconds(): number } | undefined;
}

/** What metrics read from overload protection at scrape time. */
export interface OverloadView {
  readonly rejectRequests: boolean;
  readonly disableKeepAlive: boolean;
  readonly atConnectionLimit: boolean;
  readonly maxConnections: number;
  readonly open: number;
  readonly rejectedConnections: number;
  readonly heapBytes: number;
  readonly heapThresholdBytes: number;
  readonly heapEpisodes: number;
  readonly descriptorsExhausted: boolean;
  readonly descriptorEpisodes: number;
  readonly descriptors: { readonly limit: number };
}

/** The access log's line counts (proxy/access-log/ `AccessLog.stats()`). */
export interface AccessLogView {
  /** Lines produced (after sampling), written or dropped. */
  readonly lines: number;
  /** Lines dropped because the destination was full, failing or gone. */
  readonly dropped: number;
  /** Write errors the destination reported. */
  readonly errors: number;
}
