/**
 * Istio's standard metrics (https://istio.io/latest/docs/reference/config/metrics/) with the
 * names, label names and label order of Istio's stats filter (istio/proxy,
 * source/extensions/filters/http/istio_stats/istio_stats.cc), so existing dashboards and alert
 * rules work unchanged. Series are created here on first use (the cold path); the hot path
 * (exchanges.ts) keeps them and bumps their plain fields.
 */
import type { Registry } from "prom-client";
import { BLACKHOLE_CLUSTER, PASSTHROUGH_CLUSTER } from "../routing/outside-mesh.js";
import { type ClusterView, type MetricsSubject, UNKNOWN } from "./contract.js";
import { BucketTally, HistogramFamily, LabelSet, ValueFamily } from "./family.js";
import type { Workload } from "./workload.js";

/**
 * Envoy's default histogram buckets (source/common/stats/histogram_impl.cc), which Istio's
 * histograms use for durations (ms) and sizes (bytes) alike unless the pod annotation
 * `sidecar.istio.io/statsHistogramBuckets` overrides them.
 */
export const ENVOY_DEFAULT_BUCKETS: readonly number[] = Object.freeze([
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000,
  1800000, 3600000,
]);

export const ISTIO_HTTP_METRICS = Object.freeze([
  "istio_requests_total",
  "istio_request_duration_milliseconds",
  "istio_request_bytes",
  "istio_response_bytes",
] as const);

export const ISTIO_TCP_METRICS = Object.freeze([
  "istio_tcp_connections_opened_total",
  "istio_tcp_connections_closed_total",
  "istio_tcp_sent_bytes_total",
  "istio_tcp_received_bytes_total",
] as const);

/** Labels of the HTTP metrics, in Istio's order. */
export const ISTIO_HTTP_LABELS = Object.freeze([
  "reporter",
  "source_workload",
  "source_canonical_service",
  "source_canonical_revision",
  "source_workload_namespace",
  "source_principal",
  "source_app",
  "source_version",
  "source_cluster",
  "destination_workload",
  "destination_workload_namespace",
  "destination_principal",
  "destination_app",
  "destination_version",
  "destination_service",
  "destination_canonical_service",
  "destination_canonical_revision",
  "destination_service_name",
  "destination_service_namespace",
  "destination_cluster",
  "request_protocol",
  "response_code",
  "grpc_response_status",
  "response_flags",
  "connection_security_policy",
] as const);

/** The TCP metrics carry the same labels but no response code or gRPC status. */
export const ISTIO_TCP_LABELS = Object.freeze(
  ISTIO_HTTP_LABELS.filter((name) => name !== "response_code" && name !== "grpc_response_status"),
);

/** Which proxy reports: the client's sidecar (outbound and tcp listeners) or the server's (inbound). */
export type Reporter = "source" | "destination";

/** One HTTP label set's numbers. */
export class HttpSeries {
  readonly labels: LabelSet;
  requests = 0;
  readonly duration = new BucketTally(ENVOY_DEFAULT_BUCKETS);
  readonly requestBytes = new BucketTally(ENVOY_DEFAULT_BUCKETS);
  readonly responseBytes = new BucketTally(ENVOY_DEFAULT_BUCKETS);

  constructor(labels: LabelSet) {
    this.labels = labels;
  }
}

/** One TCP label set's numbers. */
export class TcpSeries {
  readonly labels: LabelSet;
  opened = 0;
  closed = 0;
  /** Bytes to the downstream client, and from it. */
  sent = 0;
  received = 0;

  constructor(labels: LabelSet) {
    this.labels = labels;
  }
}

/** The peer's side of a label set (source_* or destination_*), in Istio's label order. */
interface Peer {
  readonly workload: string;
  readonly canonicalService: string;
  readonly canonicalRevision: string;
  readonly namespace: string;
  readonly principal: string;
  readonly app: string;
  readonly version: string;
  readonly cluster: string;
}

const UNKNOWN_PEER: Peer = Object.freeze({
  workload: UNKNOWN,
  canonicalService: UNKNOWN,
  canonicalRevision: "latest",
  namespace: UNKNOWN,
  principal: UNKNOWN,
  app: UNKNOWN,
  version: UNKNOWN,
  cluster: UNKNOWN,
});

interface Service {
  /** FQDN, e.g. reviews.default.svc.cluster.local. */
  readonly host: string;
  readonly name: string;
  readonly namespace: string;
}

const UNKNOWN_SERVICE: Service = Object.freeze({
  host: UNKNOWN,
  name: UNKNOWN,
  namespace: UNKNOWN,
});

/** Istio's names for traffic to no mesh service (outboundTrafficPolicy, routing/passthrough.ts). */
const OUTSIDE_MESH: ReadonlyMap<string, Service> = new Map(
  [PASSTHROUGH_CLUSTER, BLACKHOLE_CLUSTER].map((name) => [
    name,
    Object.freeze({ host: UNKNOWN, name, namespace: UNKNOWN }),
  ]),
);

/** Istio's canonical-service labels, then the Kubernetes recommended ones, then `app`/`version`. */
function labelOf(labels: Readonly<Record<string, string>>, ...names: string[]): string | undefined {
  for (const name of names) {
    const value = labels[name];
    if (value !== undefined && value !== "") return value;
  }
  return undefined;
}

/** What the client's sidecar knows of the server: the service and the endpoint's labels. */
function endpointPeer(cluster: ClusterView, endpointId: string): Peer {
  const labels = cluster.endpoints.find((e) => e.id === endpointId)?.labels ?? {};
  return {
    // No peer metadata exchange (yet): the workload name is not known to the client.
    workload: UNKNOWN,
    canonicalService:
      labelOf(labels, "service.istio.io/canonical-name", "app.kubernetes.io/name", "app") ??
      UNKNOWN,
    canonicalRevision:
      labelOf(
        labels,
        "service.istio.io/canonical-revision",
        "app.kubernetes.io/version",
        "version",
      ) ?? "latest",
    // A Kubernetes Service selects pods of its own namespace.
    namespace: cluster.namespace,
    // TODO(mTLS): the peer certificate's SPIFFE id.
    principal: UNKNOWN,
    app: labelOf(labels, "app") ?? UNKNOWN,
    version: labelOf(labels, "version") ?? UNKNOWN,
    cluster: UNKNOWN,
  };
}

function localPeer(workload: Workload): Peer {
  return {
    workload: workload.name,
    canonicalService: workload.canonicalService,
    canonicalRevision: workload.canonicalRevision,
    namespace: workload.namespace,
    // TODO(mTLS): our own SPIFFE id once traffic is mutual TLS (Istio reports "unknown" without).
    principal: UNKNOWN,
    app: workload.app,
    version: workload.version,
    cluster: workload.cluster,
  };
}

function serviceHost(name: string, namespace: string): string {
  return name === UNKNOWN || namespace === UNKNOWN
    ? UNKNOWN
    : `${name}.${namespace}.svc.cluster.local`;
}

/** The eight Istio metric families and their series, one per distinct label set. */
export class IstioMetrics {
  readonly #subject: MetricsSubject;
  readonly #local: Peer;
  /** The server's own service for inbound traffic: its canonical service in its namespace. */
  readonly #ownService: Service;
  readonly #http = new Map<string, HttpSeries>();
  readonly #tcp = new Map<string, TcpSeries>();
  /** Called before the TCP byte counters are read, so open connections' bytes are included. */
  readonly #beforeTcpRead: () => void;

  constructor(subject: MetricsSubject, workload: Workload, beforeTcpRead: () => void = () => {}) {
    this.#subject = subject;
    this.#local = localPeer(workload);
    this.#ownService = {
      host: serviceHost(workload.canonicalService, workload.namespace),
      name: workload.canonicalService,
      namespace: workload.namespace,
    };
    this.#beforeTcpRead = beforeTcpRead;
  }

  register(registry: Registry): void {
    const http = this.#http;
    const tcp = this.#tcp;
    const labelNames = ISTIO_HTTP_LABELS;
    new ValueFamily({
      name: "istio_requests_total",
      help: "Requests handled by the proxy (Istio standard metric).",
      type: "counter",
      labelNames,
      collect: (visit) => {
        for (const series of http.values()) visit(series.labels, series.requests);
      },
    }).register(registry);
    const histogram = (name: string, help: string, pick: (s: HttpSeries) => BucketTally) =>
      new HistogramFamily({
        name,
        help,
        labelNames,
        bounds: ENVOY_DEFAULT_BUCKETS,
        collect: (visit) => {
          for (const series of http.values()) visit(series.labels, pick(series));
        },
      }).register(registry);
    histogram(
      "istio_request_duration_milliseconds",
      "Request duration in milliseconds, first request byte to last response byte (Istio standard metric).",
      (s) => s.duration,
    );
    histogram(
      "istio_request_bytes",
      "Request size in bytes as read from the client, head and body (Istio standard metric).",
      (s) => s.requestBytes,
    );
    histogram(
      "istio_response_bytes",
      "Response size in bytes as written to the client, head and body (Istio standard metric).",
      (s) => s.responseBytes,
    );
    const counter = (name: string, help: string, read: (s: TcpSeries) => number, flush = false) =>
      new ValueFamily({
        name,
        help,
        type: "counter",
        labelNames: ISTIO_TCP_LABELS,
        collect: (visit) => {
          if (flush) this.#beforeTcpRead();
          for (const series of tcp.values()) visit(series.labels, read(series));
        },
      }).register(registry);
    counter(
      "istio_tcp_connections_opened_total",
      "TCP connections opened (Istio standard metric).",
      (s) => s.opened,
    );
    counter(
      "istio_tcp_connections_closed_total",
      "TCP connections closed (Istio standard metric).",
      (s) => s.closed,
    );
    counter(
      "istio_tcp_sent_bytes_total",
      "Bytes sent to the client on TCP connections, open ones included (Istio standard metric).",
      (s) => s.sent,
      true,
    );
    counter(
      "istio_tcp_received_bytes_total",
      "Bytes received from the client on TCP connections, open ones included (Istio standard metric).",
      (s) => s.received,
      true,
    );
  }

  /** The series for an HTTP exchange; `cluster` "" = no route, `endpoint` "" = none chosen. */
  httpSeries(
    reporter: Reporter,
    cluster: string,
    endpoint: string,
    status: number,
    flags: string,
  ): HttpSeries {
    const values = this.#values(reporter, cluster, endpoint, "http");
    // response_code, grpc_response_status ("" for plain HTTP, as Istio), flags, security policy.
    values.push(String(status), "", flags, securityPolicy(reporter));
    const labels = new LabelSet(ISTIO_HTTP_LABELS, values);
    let series = this.#http.get(labels.text);
    if (series === undefined) {
      series = new HttpSeries(labels);
      this.#http.set(labels.text, series);
    }
    return series;
  }

  /** The series for a TCP connection. */
  tcpSeries(reporter: Reporter, cluster: string, endpoint: string, flags: string): TcpSeries {
    const values = this.#values(reporter, cluster, endpoint, "tcp");
    values.push(flags, securityPolicy(reporter));
    const labels = new LabelSet(ISTIO_TCP_LABELS, values);
    let series = this.#tcp.get(labels.text);
    if (series === undefined) {
      series = new TcpSeries(labels);
      this.#tcp.set(labels.text, series);
    }
    return series;
  }

  /** reporter, source_*, destination_* and request_protocol, in Istio's order. */
  #values(reporter: Reporter, clusterKey: string, endpoint: string, protocol: string): string[] {
    let source: Peer;
    let destination: Peer;
    let service: Service;
    if (reporter === "destination") {
      // TODO(mTLS): the client's identity from its certificate; until then nothing is known.
      source = UNKNOWN_PEER;
      destination = this.#local;
      service = this.#ownService;
    } else {
      source = this.#local;
      const cluster = clusterKey === "" ? undefined : this.#subject.clusters.get(clusterKey);
      if (cluster === undefined) {
        destination = UNKNOWN_PEER;
        service = OUTSIDE_MESH.get(clusterKey) ?? UNKNOWN_SERVICE;
      } else {
        destination = endpoint === "" ? UNKNOWN_PEER : endpointPeer(cluster, endpoint);
        service = {
          host: serviceHost(cluster.name, cluster.namespace),
          name: cluster.name,
          namespace: cluster.namespace,
        };
        if (endpoint === "") destination = { ...destination, namespace: cluster.namespace };
      }
    }
    return [
      reporter,
      source.workload,
      source.canonicalService,
      source.canonicalRevision,
      source.namespace,
      source.principal,
      source.app,
      source.version,
      source.cluster,
      destination.workload,
      destination.namespace,
      destination.principal,
      destination.app,
      destination.version,
      service.host,
      destination.canonicalService,
      destination.canonicalRevision,
      service.name,
      service.namespace,
      destination.cluster,
      protocol,
    ];
  }
}

/**
 * Istio: the server's sidecar reports `mutual_tls` or `none`; the client's sidecar cannot tell
 * and reports `unknown`. TODO(mTLS): `mutual_tls` on inbound connections that terminated it.
 */
function securityPolicy(reporter: Reporter): string {
  return reporter === "destination" ? "none" : UNKNOWN;
}
