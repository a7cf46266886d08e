/**
 * remora's own metrics, under `remora_`: downstream connections, upstream pools and requests per
 * endpoint, event-loop delay, config reloads and hash, discovery sync age, the workload identity.
 * Later issues (health, lb, tls, kubernetes) register theirs here, each with help text.
 *
 * Everything except `remora_upstream_rq_total` is read from its owner at scrape time; that one is
 * fed by the exchange reporter through `upstreamTally` (exchanges.ts).
 */
import { type ELDHistogram, monitorEventLoopDelay } from "node:perf_hooks";
import { Counter, Gauge, type Registry } from "prom-client";
import { upstreamDescriptorErrors } from "../../overload/descriptor-errors.js";
import { QUEUE_WAIT_BUCKETS } from "../host-set.js";
import type {
  ClusterView,
  HostSetView,
  ListenerCounts,
  MetricsSubject,
  OverloadView,
  QueueCounts,
} from "./contract.js";
import { BucketTally, HistogramFamily, LabelSet, ValueFamily } from "./family.js";
import type { Workload } from "./workload.js";

/** Label values of `response_code_class`, by status / 100 (0 = no response: reset). */
const CODE_CLASSES = ["reset", "1xx", "2xx", "3xx", "4xx", "5xx"] as const;

/** HTTP exchanges that ended on one endpoint of one cluster, by response class. */
export class UpstreamTally {
  readonly cluster: string;
  readonly endpoint: string;
  readonly byClass = new Float64Array(CODE_CLASSES.length);
  /** Set when the endpoint left its cluster: holders must ask for a fresh tally. */
  retired = false;
  #labels: (LabelSet | undefined)[] = [];

  constructor(cluster: string, endpoint: string) {
    this.cluster = cluster;
    this.endpoint = endpoint;
  }

  count(status: number): void {
    this.byClass[status >= 100 && status < 600 ? (status / 100) | 0 : 0]!++;
  }

  labels(index: number): LabelSet {
    let labels = this.#labels[index];
    if (labels === undefined) {
      labels = new LabelSet(UPSTREAM_RQ_LABELS, [
        this.cluster,
        this.endpoint,
        CODE_CLASSES[index] ?? "reset",
      ]);
      this.#labels[index] = labels;
    }
    return labels;
  }
}

const UPSTREAM_RQ_LABELS = ["cluster", "endpoint", "response_code_class"] as const;
const POOL_STATES = ["active", "idle", "connecting"] as const;

/**
 * Event-loop delay buckets in seconds: a proxy's loop should turn in well under a millisecond;
 * tens of milliseconds mean every request waits that long.
 */
// 20 ms: the churn benchmark's goal for the p99 (docs/benchmark.md), so the verdict is exact.
export const LOOP_DELAY_BUCKETS: readonly number[] = Object.freeze([
  0.001, 0.0025, 0.005, 0.01, 0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
]);

/** monitorEventLoopDelay's timer period (ms); every sample includes it, so it is subtracted. */
const LOOP_RESOLUTION_MS = 10;

/** Per-cluster label sets for the pool and active-request gauges, built once per cluster. */
interface ClusterLabels {
  readonly states: readonly LabelSet[];
  readonly cluster: LabelSet;
}

export class RemoraMetrics {
  readonly #subject: MetricsSubject;
  readonly #workload: Workload;
  readonly #listeners = new Map<string, { counts: ListenerCounts; labels: LabelSet }>();
  /** Upstream tallies by cluster key, then endpoint id. */
  readonly #upstream = new Map<string, Map<string, UpstreamTally>>();
  readonly #clusterLabels = new Map<string, ClusterLabels>();
  readonly #onPrune: () => void;
  readonly #loop: ELDHistogram;
  readonly #loopTally = new BucketTally(LOOP_DELAY_BUCKETS);

  /** `onPrune`: told after tallies of endpoints that left discovery were retired. */
  constructor(subject: MetricsSubject, workload: Workload, onPrune: () => void = () => {}) {
    this.#subject = subject;
    this.#workload = workload;
    this.#onPrune = onPrune;
    this.#loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    this.#loop.enable();
  }

  addListener(name: string, counts: ListenerCounts): void {
    this.#listeners.set(name, { counts, labels: new LabelSet(["listener"], [name]) });
  }

  removeListener(name: string): void {
    this.#listeners.delete(name);
  }

  /** The tally for HTTP exchanges ending on `endpoint` of `cluster` (cold path: cached by callers). */
  upstreamTally(cluster: string, endpoint: string): UpstreamTally {
    let byEndpoint = this.#upstream.get(cluster);
    if (byEndpoint === undefined) {
      byEndpoint = new Map();
      this.#upstream.set(cluster, byEndpoint);
    }
    let tally = byEndpoint.get(endpoint);
    if (tally === undefined) {
      tally = new UpstreamTally(cluster, endpoint);
      byEndpoint.set(endpoint, tally);
    }
    return tally;
  }

  close(): void {
    this.#loop.disable();
  }

  register(registry: Registry): void {
    this.#registerListeners(registry);
    this.#registerUpstream(registry);
    this.#registerLoop(registry);
    this.#registerConfig(registry);
    this.#registerDiscovery(registry);
    this.#registerAccessLog(registry);
    this.#registerBalancing(registry);
    this.#registerResilience(registry);
    this.#registerUpstreamTls(registry);
    this.#registerOverload(registry);
  }

  /** Overload protection (overload/, docs/operations.md#overload-protection): read per scrape. */
  #registerOverload(registry: Registry): void {
    const subject = this.#subject;
    const single = (
      name: string,
      help: string,
      type: "gauge" | "counter",
      read: (view: OverloadView) => number,
    ) =>
      new ValueFamily({
        name,
        help,
        type,
        labelNames: [],
        collect: (visit) => {
          if (subject.overload !== undefined) visit(LabelSet.EMPTY, read(subject.overload));
        },
      }).register(registry);
    const actions = [
      ["stop_accepting_requests", (v: OverloadView) => v.rejectRequests],
      ["disable_http_keepalive", (v: OverloadView) => v.disableKeepAlive],
      ["reject_incoming_connections", (v: OverloadView) => v.atConnectionLimit],
    ] as const;
    const actionLabels = actions.map(([action]) => new LabelSet(["action"], [action]));
    new ValueFamily({
      name: "remora_overload_active",
      help: "1 while an overload action is in effect (Envoy's action names): stop_accepting_requests and disable_http_keepalive (heap past overload.maxHeapMb), reject_incoming_connections (overload.maxDownstreamConnections reached).",
      type: "gauge",
      labelNames: ["action"],
      collect: (visit) => {
        const view = subject.overload;
        if (view === undefined) return;
        actions.forEach(([, read], i) => {
          visit(actionLabels[i]!, read(view) ? 1 : 0);
        });
      },
    }).register(registry);
    single(
      "remora_overload_max_downstream_connections",
      "The global downstream connection cap in effect (overload.maxDownstreamConnections, or derived from the descriptor limit).",
      "gauge",
      (v) => v.maxConnections,
    );
    single(
      "remora_overload_downstream_connections",
      "Downstream connections counted against the cap now, across listeners (TLS handshakes included).",
      "gauge",
      (v) => v.open,
    );
    single(
      "remora_overload_heap_bytes",
      "The last heap sample (V8 used heap plus external memory), taken every second while overload.maxHeapMb is set.",
      "gauge",
      (v) => v.heapBytes,
    );
    single(
      "remora_overload_heap_threshold_bytes",
      "overload.maxHeapMb in bytes; 0 = no heap action.",
      "gauge",
      (v) => v.heapThresholdBytes,
    );
    single(
      "remora_overload_heap_entered_total",
      "Times the heap went past overload.maxHeapMb (each starts a 503 OM episode).",
      "counter",
      (v) => v.heapEpisodes,
    );
    single(
      "remora_descriptor_limit",
      "The soft limit on open file descriptors remora read at start (/proc/self/limits; 1024 assumed elsewhere).",
      "gauge",
      (v) => v.descriptors.limit,
    );
    single(
      "remora_descriptors_exhausted",
      "1 while the once-a-second probe cannot open a file descriptor (EMFILE/ENFILE): new connections are being closed by the runtime, unseen.",
      "gauge",
      (v) => (v.descriptorsExhausted ? 1 : 0),
    );
    single(
      "remora_descriptors_exhausted_total",
      "Times the descriptor probe found no file descriptor left.",
      "counter",
      (v) => v.descriptorEpisodes,
    );
    const codes = ["EMFILE", "ENFILE"] as const;
    const codeLabels = codes.map((code) => new LabelSet(["code"], [code]));
    new ValueFamily({
      name: "remora_upstream_connect_descriptor_errors_total",
      help: "Upstream connects that failed for lack of a file descriptor, by code (EMFILE: this process, ENFILE: the system).",
      type: "counter",
      labelNames: ["code"],
      collect: (visit) => {
        codes.forEach((code, i) => {
          visit(codeLabels[i]!, upstreamDescriptorErrors[code]);
        });
      },
    }).register(registry);
  }

  /** Upstream TLS failures by service and reason (tls/outbound-failures.ts); cold: built per scrape. */
  #registerUpstreamTls(registry: Registry): void {
    new ValueFamily({
      name: "remora_upstream_tls_errors_total",
      help: "Upstream TLS connections that failed (handshake or server identity check), by service and reason.",
      type: "counter",
      labelNames: ["service", "reason"],
      collect: (visit) => {
        this.#subject.upstreamTls?.failures.forEach((service, reason, count) => {
          visit(new LabelSet(["service", "reason"], [service, reason]), count);
        });
      },
    }).register(registry);
  }

  /** Retries, circuit breaking, outlier detection and active checks, per cluster. */
  #registerResilience(registry: Registry): void {
    const perCluster = (
      name: string,
      help: string,
      type: "gauge" | "counter",
      read: (cluster: ClusterView) => number | undefined,
    ) =>
      new ValueFamily({
        name,
        help,
        type,
        labelNames: ["cluster"],
        collect: (visit) => {
          this.#forEachCluster((cluster, labels) => {
            const value = read(cluster);
            if (value !== undefined) visit(labels.cluster, value);
          });
        },
      }).register(registry);
    perCluster(
      "remora_upstream_rq_retry_total",
      "Retries started (Envoy's upstream_rq_retry), by cluster.",
      "counter",
      (c) => c.stats.retries,
    );
    perCluster(
      "remora_upstream_rq_retry_overflow_total",
      "Retries the retry budget or maxRetries refused (flag UO), by cluster.",
      "counter",
      (c) => c.stats.retriesRefused,
    );
    perCluster(
      "remora_upstream_rq_pending_overflow_total",
      "Requests refused at once because http1MaxPendingRequests already waited for a connection (503 UO), by cluster.",
      "counter",
      (c) => c.stats.pendingOverflows,
    );
    perCluster(
      "remora_outlier_ejected_endpoints",
      "Endpoints outlier detection has ejected now, by cluster (only where it is on).",
      "gauge",
      (c) => c.outlierStats?.()?.ejectedNow,
    );
    new ValueFamily({
      name: "remora_outlier_ejections_total",
      help: "Outlier ejections: enforced (carried out) and detected (conditions met, including those maxEjectionPercent stopped), by cluster.",
      type: "counter",
      labelNames: ["cluster", "kind"],
      collect: (visit) => {
        this.#forEachCluster((cluster) => {
          const stats = cluster.outlierStats?.();
          if (stats === undefined) return;
          visit(
            new LabelSet(["cluster", "kind"], [cluster.key, "enforced"]),
            stats.ejectionsEnforced,
          );
          visit(
            new LabelSet(["cluster", "kind"], [cluster.key, "detected"]),
            stats.ejectionsDetected,
          );
        });
      },
    }).register(registry);
    new ValueFamily({
      name: "remora_health_checks_total",
      help: "Active health checks that ended with a verdict, by cluster and result (passed, failed).",
      type: "counter",
      labelNames: ["cluster", "result"],
      collect: (visit) => {
        this.#forEachCluster((cluster) => {
          const stats = cluster.checkStats?.();
          if (stats === undefined) return;
          visit(
            new LabelSet(["cluster", "result"], [cluster.key, "passed"]),
            stats.checks - stats.failures,
          );
          visit(new LabelSet(["cluster", "result"], [cluster.key, "failed"]), stats.failures);
        });
      },
    }).register(registry);
  }

  /** Per host set (service or subset): eligible endpoints, panic, and first-come's queue. */
  #registerBalancing(registry: Registry): void {
    const sets = (visit: (cluster: string, set: HostSetView) => void) => {
      for (const cluster of this.#subject.clusters.all()) {
        for (const set of cluster.hostSets?.() ?? []) visit(cluster.key, set);
      }
    };
    const labels = (cluster: string, set: HostSetView) =>
      new LabelSet(["cluster", "subset"], [cluster, set.subset]);
    new ValueFamily({
      name: "remora_lb_eligible_endpoints",
      help: 'Endpoints taking new requests (ready, healthy or in panic, weight above 0), by cluster and subset ("" = the whole service).',
      type: "gauge",
      labelNames: ["cluster", "subset"],
      collect: (visit) => sets((key, set) => visit(labels(key, set), set.selected.length)),
    }).register(registry);
    new ValueFamily({
      name: "remora_lb_panic",
      help: "1 while fewer endpoints than the panic threshold are healthy, so every endpoint takes requests.",
      type: "gauge",
      labelNames: ["cluster", "subset"],
      collect: (visit) => sets((key, set) => visit(labels(key, set), set.panic ? 1 : 0)),
    }).register(registry);
    new ValueFamily({
      name: "remora_lb_queued_requests",
      help: "Requests waiting for a free endpoint now (first-come).",
      type: "gauge",
      labelNames: ["cluster", "subset"],
      collect: (visit) =>
        sets((key, set) => {
          if (set.balancer.queued !== undefined) visit(labels(key, set), set.balancer.queued);
        }),
    }).register(registry);
    const results = [
      ["dispatched", (q: QueueCounts) => q.dispatched],
      ["timeout", (q: QueueCounts) => q.timedOut],
      ["full", (q: QueueCounts) => q.rejected],
      ["cancelled", (q: QueueCounts) => q.cancelled],
    ] as const;
    new ValueFamily({
      name: "remora_lb_queue_total",
      help: "What became of requests that found every endpoint full (first-come): dispatched to a freed slot, timeout (503 UO), full (queue full, 503 UO), cancelled (the client left).",
      type: "counter",
      labelNames: ["cluster", "subset", "result"],
      collect: (visit) =>
        sets((key, set) => {
          const counts = set.queueStats();
          if (counts === undefined) return;
          for (const [result, read] of results) {
            visit(
              new LabelSet(["cluster", "subset", "result"], [key, set.subset, result]),
              read(counts),
            );
          }
        }),
    }).register(registry);
    new HistogramFamily({
      name: "remora_lb_queue_wait_milliseconds",
      help: "How long requests waited for a free endpoint (first-come), whether they got one or timed out.",
      labelNames: ["cluster", "subset"],
      bounds: QUEUE_WAIT_BUCKETS,
      collect: (visit) =>
        sets((key, set) => {
          if (set.balancer.queued !== undefined) visit(labels(key, set), set.queueWait);
        }),
    }).register(registry);
  }

  #registerAccessLog(registry: Registry): void {
    const subject = this.#subject;
    new Counter({
      name: "remora_access_log_lines_total",
      help: "Access-log lines since start: queued for writing, or dropped because the destination was full, failing or gone (never waited for).",
      labelNames: ["result"],
      registers: [registry],
      collect() {
        const stats = subject.accessLog.stats();
        this.reset();
        this.inc({ result: "queued" }, stats.lines - stats.dropped);
        this.inc({ result: "dropped" }, stats.dropped);
      },
    });
    new Counter({
      name: "remora_access_log_write_errors_total",
      help: "Write errors the access log's destination reported (ENOSPC, EPIPE...).",
      registers: [registry],
      collect() {
        this.reset();
        this.inc(subject.accessLog.stats().errors);
      },
    });
  }

  #registerListeners(registry: Registry): void {
    const perListener = (
      name: string,
      help: string,
      type: "gauge" | "counter",
      read: (counts: ListenerCounts) => number,
    ) =>
      new ValueFamily({
        name,
        help,
        type,
        labelNames: ["listener"],
        collect: (visit) => {
          for (const listener of this.#listeners.values())
            visit(listener.labels, read(listener.counts));
        },
      }).register(registry);
    perListener(
      "remora_downstream_connections",
      "Open downstream (client) connections, by listener.",
      "gauge",
      (c) => c.connections,
    );
    perListener(
      "remora_downstream_connections_accepted_total",
      "Downstream connections accepted, by listener.",
      "counter",
      (c) => c.accepted,
    );
    perListener(
      "remora_downstream_tls_handshake_errors_total",
      "Client TLS handshakes that failed (no or untrusted client certificate, plaintext on a STRICT listener...), by listener.",
      "counter",
      (c) => c.tlsHandshakeErrors ?? 0,
    );
    new ValueFamily({
      name: "remora_authorization_allowed_total",
      help: "Requests authorization policies allowed, by inbound listener (counted only while policies exist).",
      type: "counter",
      labelNames: ["listener"],
      collect: (visit) => {
        for (const listener of this.#listeners.values()) {
          const counts = listener.counts.authorization;
          if (counts !== undefined) visit(listener.labels, counts.allowed);
        }
      },
    }).register(registry);
    new ValueFamily({
      name: "remora_authorization_denied_total",
      help: 'Requests denied by authorization policy (403 RBAC), by inbound listener and the DENY policy that matched, or "(no ALLOW policy matched)".',
      type: "counter",
      labelNames: ["listener", "policy"],
      collect: (visit) => {
        for (const [name, listener] of this.#listeners) {
          for (const [policy, count] of listener.counts.authorization?.denied ?? []) {
            visit(new LabelSet(["listener", "policy"], [name, policy]), count);
          }
        }
      },
    }).register(registry);
    perListener(
      "remora_downstream_connections_rejected_total",
      "Downstream connections closed at once because overload.maxDownstreamConnections was reached (Envoy's downstream_global_cx_overflow), by listener.",
      "counter",
      (c) => c.rejected ?? 0,
    );
    new ValueFamily({
      name: "remora_downstream_accept_errors_total",
      help: "Accept errors a listening socket reported, by listener and code (EMFILE and ENFILE seldom: the runtime sheds those itself; see remora_descriptors_exhausted).",
      type: "counter",
      labelNames: ["listener", "code"],
      collect: (visit) => {
        for (const [name, listener] of this.#listeners) {
          for (const [code, count] of listener.counts.acceptErrors ?? []) {
            visit(new LabelSet(["listener", "code"], [name, code]), count);
          }
        }
      },
    }).register(registry);
  }

  #registerUpstream(registry: Registry): void {
    new ValueFamily({
      name: "remora_upstream_connections",
      help: "Upstream pool connections by state (active = carrying a request), by cluster.",
      type: "gauge",
      labelNames: ["cluster", "state"],
      collect: (visit) => {
        this.#forEachCluster((cluster, labels) => {
          let open = 0;
          let idle = 0;
          let connecting = 0;
          for (const endpoint of cluster.endpoints) {
            const pool = cluster.poolStats(endpoint.id);
            open += pool.open;
            idle += pool.idle;
            connecting += pool.connecting;
          }
          visit(labels.states[0]!, open - idle);
          visit(labels.states[1]!, idle);
          visit(labels.states[2]!, connecting);
        });
      },
    }).register(registry);
    new ValueFamily({
      name: "remora_upstream_rq_active",
      help: "Requests in flight to a cluster.",
      type: "gauge",
      labelNames: ["cluster"],
      collect: (visit) => {
        this.#forEachCluster((cluster, labels) => visit(labels.cluster, cluster.stats.active));
      },
    }).register(registry);
    new ValueFamily({
      name: "remora_upstream_rq_total",
      help: "HTTP exchanges by the endpoint they ended on (the last try) and response class (reset = no response).",
      type: "counter",
      labelNames: UPSTREAM_RQ_LABELS,
      collect: (visit) => {
        this.#prune();
        for (const byEndpoint of this.#upstream.values()) {
          for (const tally of byEndpoint.values()) {
            const byClass = tally.byClass;
            for (let i = 0; i < byClass.length; i++) {
              if (byClass[i]! > 0) visit(tally.labels(i), byClass[i]!);
            }
          }
        }
      },
    }).register(registry);
  }

  /** Every cluster: the services' and the inbound listeners' local-app clusters. */
  #forEachCluster(visit: (cluster: ClusterView, labels: ClusterLabels) => void): void {
    const seen = this.#clusterLabels;
    const live = new Set<string>();
    const each = (cluster: ClusterView): void => {
      live.add(cluster.key);
      let labels = seen.get(cluster.key);
      if (labels === undefined) {
        labels = {
          states: POOL_STATES.map(
            (state) => new LabelSet(["cluster", "state"], [cluster.key, state]),
          ),
          cluster: new LabelSet(["cluster"], [cluster.key]),
        };
        seen.set(cluster.key, labels);
      }
      visit(cluster, labels);
    };
    for (const cluster of this.#subject.clusters.all()) each(cluster);
    for (const cluster of this.#subject.appClusters) each(cluster);
    for (const key of seen.keys()) if (!live.has(key)) seen.delete(key);
  }

  /** Retire tallies of endpoints (and clusters) that discovery no longer lists. */
  #prune(): void {
    const apps = new Map<string, ClusterView>();
    for (const cluster of this.#subject.appClusters) apps.set(cluster.key, cluster);
    let retired = false;
    for (const [key, byEndpoint] of this.#upstream) {
      const cluster = this.#subject.clusters.get(key) ?? apps.get(key);
      const live = new Set<string>();
      if (cluster !== undefined) for (const endpoint of cluster.endpoints) live.add(endpoint.id);
      for (const [id, tally] of byEndpoint) {
        if (live.has(id)) continue;
        tally.retired = true;
        byEndpoint.delete(id);
        retired = true;
      }
      if (byEndpoint.size === 0) this.#upstream.delete(key);
    }
    if (retired) this.#onPrune();
  }

  #registerLoop(registry: Registry): void {
    new HistogramFamily({
      name: "remora_event_loop_delay_seconds",
      help: "How late the event loop ran a timer (perf_hooks.monitorEventLoopDelay, sampled every 10 ms); every request waits this long.",
      labelNames: [],
      bounds: LOOP_DELAY_BUCKETS,
      collect: (visit) => {
        this.#drainLoopDelay();
        visit(LabelSet.EMPTY, this.#loopTally);
      },
    }).register(registry);
  }

  /**
   * Move the samples taken since the last scrape into the cumulative tally. The node histogram
   * answers percentiles, not counts, so each bucket's count is the share of samples at or below
   * its bound, found by bisecting `percentile()`.
   */
  #drainLoopDelay(): void {
    const loop = this.#loop;
    const samples = loop.count;
    if (samples === 0) return;
    const offsetNs = LOOP_RESOLUTION_MS * 1e6;
    const tally = this.#loopTally;
    let below = 0;
    for (let i = 0; i < LOOP_DELAY_BUCKETS.length; i++) {
      const limitNs = LOOP_DELAY_BUCKETS[i]! * 1e9 + offsetNs;
      const atOrBelow = Math.round((shareAtOrBelow(loop, limitNs) / 100) * samples);
      const inBucket = Math.max(0, atOrBelow - below);
      tally.counts[i]! += inBucket;
      below += inBucket;
    }
    tally.counts[LOOP_DELAY_BUCKETS.length]! += Math.max(0, samples - below);
    tally.count += samples;
    tally.sum += (Math.max(0, loop.mean - offsetNs) * samples) / 1e9;
    loop.reset();
  }

  #registerConfig(registry: Registry): void {
    const subject = this.#subject;
    new Counter({
      name: "remora_config_reloads_total",
      help: "Config reloads since start: ok = applied, failed = refused (the running config stayed).",
      labelNames: ["result"],
      registers: [registry],
      collect() {
        this.reset();
        this.inc({ result: "ok" }, subject.reloads.ok);
        this.inc({ result: "failed" }, subject.reloads.failed);
      },
    });
    new Gauge({
      name: "remora_config_info",
      help: "The applied config's hash (sha256 of its canonical JSON, 16 hex digits); always 1.",
      labelNames: ["hash"],
      registers: [registry],
      collect() {
        this.reset();
        this.set({ hash: subject.reloads.hash }, 1);
      },
    });
    new Gauge({
      name: "remora_config_applied_timestamp_seconds",
      help: "When the applied config was loaded (Unix time).",
      registers: [registry],
      collect() {
        this.set(subject.reloads.appliedAtMs / 1000);
      },
    });
    new Gauge({
      name: "remora_certificate_expiry_seconds",
      help: "Seconds until the certificate in use expires (negative once expired); kind=workload is the config's tls.certFile, kind=ca the first certificate in tls.caFile to expire.",
      labelNames: ["kind"],
      registers: [registry],
      collect() {
        this.reset();
        const identity = subject.identity;
        if (identity === undefined) return;
        this.set({ kind: "workload" }, identity.expirySeconds());
        this.set({ kind: "ca" }, identity.caExpirySeconds());
      },
    });
    const workload = this.#workload;
    new Gauge({
      name: "remora_workload_info",
      help: "The workload identity used for Istio's source_* / destination_* labels; always 1.",
      labelNames: ["workload", "namespace", "service_account", "app", "version", "cluster"],
      registers: [registry],
    }).set(
      {
        workload: workload.name,
        namespace: workload.namespace,
        service_account: workload.serviceAccount,
        app: workload.app,
        version: workload.version,
        cluster: workload.cluster,
      },
      1,
    );
  }

  #registerDiscovery(registry: Registry): void {
    const subject = this.#subject;
    new Gauge({
      name: "remora_discovery_last_sync_age_seconds",
      help: "Seconds since each discovery source last delivered its state or an update (-1 = never).",
      labelNames: ["source"],
      registers: [registry],
      collect() {
        this.reset();
        const now = Date.now();
        for (const source of subject.registry.sourceStates()) {
          const age = source.lastSyncMs === 0 ? -1 : Math.max(0, now - source.lastSyncMs) / 1000;
          this.set({ source: source.id }, age);
        }
      },
    });
    new Gauge({
      name: "remora_discovery_synced",
      help: "1 once a discovery source has delivered its initial state (/ready waits for all).",
      labelNames: ["source"],
      registers: [registry],
      collect() {
        this.reset();
        for (const source of subject.registry.sourceStates()) {
          this.set({ source: source.id }, source.synced ? 1 : 0);
        }
      },
    });
  }
}

/** The percentage of samples at or below `limitNs`: bisect the monotone percentile function. */
function shareAtOrBelow(histogram: ELDHistogram, limitNs: number): number {
  if (histogram.max <= limitNs) return 100;
  if (histogram.min > limitNs) return 0;
  let low = 0;
  let high = 100;
  for (let i = 0; i < 24; i++) {
    const mid = (low + high) / 2;
    if (histogram.percentile(mid) <= limitNs) low = mid;
    else high = mid;
  }
  return low;
}
