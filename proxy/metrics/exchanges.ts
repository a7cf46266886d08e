/**
 * The hot path: every finished HTTP exchange and every TCP connection lands here. A route cache
 * per listener → cluster → endpoint resolves, once, the series an outcome counts into (Istio's
 * label set for this status and flags, and the endpoint's upstream tally); afterwards a report is
 * a few identity compares or Map lookups on strings whose hashes V8 has cached, and plain
 * additions. No label strings are built and prom-client is not called per request.
 */
import type { Socket } from "node:net";
import type { ExchangeRecord, ExchangeReporter } from "../exchange.js";
import type { TcpConnectionObserver, TcpConnectionTally } from "../listeners/tcp-listener.js";
import type { HttpSeries, IstioMetrics, Reporter, TcpSeries } from "./istio.js";
import type { RemoraMetrics, UpstreamTally } from "./remora.js";

/** One status/flags outcome's series, in a short list per endpoint (usually one or two). */
interface Outcome<S> {
  readonly status: number;
  readonly flags: string;
  readonly series: S;
}

/** Cold-path lookups the routes fall back to on a miss. */
interface SeriesSource {
  readonly istio: IstioMetrics;
  readonly remora: RemoraMetrics;
}

class EndpointRoute {
  readonly id: string;
  readonly #cluster: string;
  readonly #reporter: Reporter;
  readonly #source: SeriesSource;
  /** undefined when no endpoint was chosen (no route, no healthy endpoint). */
  #upstream: UpstreamTally | undefined;
  #http: Outcome<HttpSeries>[] = [];
  #tcp: Outcome<TcpSeries>[] = [];

  constructor(reporter: Reporter, cluster: string, id: string, source: SeriesSource) {
    this.id = id;
    this.#cluster = cluster;
    this.#reporter = reporter;
    this.#source = source;
    this.#upstream = id === "" ? undefined : source.remora.upstreamTally(cluster, id);
  }

  /** False once the endpoint left discovery (its tally was retired at a scrape). */
  get live(): boolean {
    return this.#upstream === undefined || !this.#upstream.retired;
  }

  count(record: ExchangeRecord): void {
    const status = record.status;
    const flags = record.flags;
    let series: HttpSeries | undefined;
    const outcomes = this.#http;
    for (let i = 0; i < outcomes.length; i++) {
      const outcome = outcomes[i]!;
      if (outcome.status === status && outcome.flags === flags) {
        series = outcome.series;
        break;
      }
    }
    if (series === undefined) {
      series = this.#source.istio.httpSeries(this.#reporter, this.#cluster, this.id, status, flags);
      outcomes.push({ status, flags, series });
    }
    series.requests++;
    series.duration.observe(record.durationMs);
    series.requestBytes.observe(record.requestBytes);
    series.responseBytes.observe(record.responseBytes);
    let upstream = this.#upstream;
    if (upstream !== undefined) {
      // An exchange that ends after its endpoint left discovery counts on a fresh tally.
      if (upstream.retired) {
        upstream = this.#source.remora.upstreamTally(this.#cluster, this.id);
        this.#upstream = upstream;
      }
      upstream.count(status);
    }
  }

  tcpSeries(flags: string): TcpSeries {
    for (const outcome of this.#tcp) if (outcome.flags === flags) return outcome.series;
    const series = this.#source.istio.tcpSeries(this.#reporter, this.#cluster, this.id, flags);
    this.#tcp.push({ status: 0, flags, series });
    return series;
  }
}

class ClusterRoute {
  readonly key: string;
  readonly #reporter: Reporter;
  readonly #source: SeriesSource;
  readonly #endpoints = new Map<string, EndpointRoute>();
  #last: EndpointRoute | undefined;

  constructor(reporter: Reporter, key: string, source: SeriesSource) {
    this.key = key;
    this.#reporter = reporter;
    this.#source = source;
  }

  endpoint(id: string): EndpointRoute {
    const last = this.#last;
    if (last !== undefined && last.id === id) return last;
    let route = this.#endpoints.get(id);
    if (route === undefined) {
      route = new EndpointRoute(this.#reporter, this.key, id, this.#source);
      this.#endpoints.set(id, route);
    }
    this.#last = route;
    return route;
  }

  /** Drop routes of endpoints that left discovery; true when none is left. */
  prune(): boolean {
    for (const [id, route] of this.#endpoints) if (!route.live) this.#endpoints.delete(id);
    this.#last = undefined;
    return this.#endpoints.size === 0;
  }
}

class ListenerRoute {
  readonly name: string;
  readonly reporter: Reporter;
  /** HTTP listeners count exchanges; a TCP listener's connections come through TcpMetrics. */
  readonly http: boolean;
  readonly #source: SeriesSource;
  readonly #clusters = new Map<string, ClusterRoute>();
  #last: ClusterRoute | undefined;

  constructor(name: string, reporter: Reporter, http: boolean, source: SeriesSource) {
    this.name = name;
    this.reporter = reporter;
    this.http = http;
    this.#source = source;
  }

  endpoint(cluster: string, endpoint: string): EndpointRoute {
    let route = this.#last;
    if (route === undefined || route.key !== cluster) {
      route = this.#clusters.get(cluster);
      if (route === undefined) {
        route = new ClusterRoute(this.reporter, cluster, this.#source);
        this.#clusters.set(cluster, route);
      }
      this.#last = route;
    }
    return route.endpoint(endpoint);
  }

  prune(): void {
    for (const [key, route] of this.#clusters) if (route.prune()) this.#clusters.delete(key);
    this.#last = undefined;
  }
}

/** The ExchangeReporter in Runtime's chain (after FlagCounter), and the TCP listeners' observer. */
export class ExchangeMetrics implements ExchangeReporter, TcpConnectionObserver {
  readonly #source: SeriesSource;
  readonly #next: ExchangeReporter | undefined;
  readonly #listeners = new Map<string, ListenerRoute>();
  #last: ListenerRoute | undefined;
  /** Open TCP connections, whose bytes so far are added at every scrape. */
  readonly #open = new Set<TcpConnection>();

  constructor(istio: IstioMetrics, remora: RemoraMetrics, next?: ExchangeReporter) {
    this.#source = { istio, remora };
    this.#next = next;
  }

  /** `kind` "inbound" reports as the destination's sidecar, others as the source's. */
  addListener(name: string, kind: "outbound" | "inbound" | "tcp"): void {
    const reporter = kind === "inbound" ? "destination" : "source";
    this.#listeners.set(name, new ListenerRoute(name, reporter, kind !== "tcp", this.#source));
    this.#last = undefined;
  }

  removeListener(name: string): void {
    this.#listeners.delete(name);
    this.#last = undefined;
  }

  report(record: ExchangeRecord): void {
    let listener = this.#last;
    if (listener === undefined || listener.name !== record.listener) {
      listener = this.#listeners.get(record.listener);
      this.#last = listener;
    }
    if (listener?.http === true) listener.endpoint(record.cluster, record.endpoint).count(record);
    this.#next?.report(record);
  }

  start(listener: string, cluster: string, endpoint: string, client: Socket): TcpConnectionTally {
    const route = this.#listeners.get(listener);
    if (route === undefined) return NO_TALLY;
    return new TcpConnection(this.#open, route.endpoint(cluster, endpoint), client);
  }

  /** Add the bytes open TCP connections moved since the last call. */
  flushOpenTcp(): void {
    for (const connection of this.#open) connection.flush();
  }

  /** Forget routes of endpoints that left discovery (after RemoraMetrics retired their tallies). */
  prune(): void {
    for (const listener of this.#listeners.values()) listener.prune();
  }
}

const NO_TALLY: TcpConnectionTally = { established() {}, end() {} };

/**
 * One TCP connection. Like Istio's filter, it counts the connection opened once the upstream
 * side is up (or at its end, with the flags that ended it, if it never came up), and its bytes
 * as they go: at every scrape and at the close.
 */
class TcpConnection implements TcpConnectionTally {
  readonly #open: Set<TcpConnection>;
  readonly #route: EndpointRoute;
  readonly #client: Socket;
  #series: TcpSeries | undefined;
  #sent = 0;
  #received = 0;

  constructor(open: Set<TcpConnection>, route: EndpointRoute, client: Socket) {
    this.#open = open;
    this.#route = route;
    this.#client = client;
  }

  established(): void {
    if (this.#series !== undefined) return;
    this.#series = this.#route.tcpSeries("-");
    this.#series.opened++;
    this.#open.add(this);
  }

  end(flags: string): void {
    let series = this.#series;
    if (series === undefined) {
      series = this.#route.tcpSeries(flags);
      series.opened++;
      this.#series = series;
    }
    this.flush();
    series.closed++;
    this.#open.delete(this);
  }

  flush(): void {
    const series = this.#series;
    if (series === undefined) return;
    const sent = this.#client.bytesWritten;
    const received = this.#client.bytesRead;
    series.sent += sent - this.#sent;
    series.received += received - this.#received;
    this.#sent = sent;
    this.#received = received;
  }
}
