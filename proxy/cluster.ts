import type { Endpoint } from "../discovery/endpoint.js";
import type { ServiceRegistry } from "../discovery/registry.js";
import type { EndpointSnapshot } from "../discovery/snapshot.js";
import type { ActiveHealthChecker, HealthCheckSettings } from "../health/active-checker.js";
import { PendingLimit } from "../health/circuit-breaker.js";
import type { AttemptResult, FlagReason, HealthFlag, HealthFlagSink } from "../health/health.js";
import {
  OutlierDetector,
  type OutlierSettings,
  type OutlierStats,
} from "../health/outlier-detector.js";
import { RetryBudget } from "../health/retry-budget.js";
import { RetryPolicy, type RetrySettings } from "../health/retry-policy.js";
import type { BalancerFactory, LoadBalancerSettings, PickContext } from "../lb/balancer.js";
import type { ClientTlsSettings } from "../tls/client-tls-settings.js";
import type { RouteConfig } from "./config/schema.js";
import { HostSet } from "./host-set.js";
import { type Logger, silentLogger } from "./log.js";
import { RouteTable } from "./routing/route-table.js";
import type { UpstreamConnector } from "./upstream/connector.js";
import { EndpointPools } from "./upstream/endpoint-pools.js";
import type { PoolSettings, UpstreamPool } from "./upstream/pool.js";

/** One DestinationRule subset: endpoints by label, with its own balancer settings. */
export interface SubsetSettings {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly lb: LoadBalancerSettings;
  /** The subset's upstream TLS (its own trafficPolicy.tls, else the service's); undefined = plain. */
  readonly tls?: ClientTlsSettings;
}

/** Traffic policy of one service, resolved from config (DestinationRule + VirtualService). */
export interface ClusterSettings {
  readonly lb: LoadBalancerSettings;
  /** Per-request timeout in ms; 0 disables it (Istio's default). */
  readonly timeoutMs: number;
  /** connectionPool.http.streamIdleTimeout in ms (proxy/stream-idle.ts); 0 disables it. */
  readonly streamIdleTimeoutMs: number;
  readonly pool: PoolSettings;
  /** DestinationRule trafficPolicy.tls; undefined = plain TCP (mode DISABLE). */
  readonly tls?: ClientTlsSettings;
  readonly subsets: readonly SubsetSettings[];
  readonly routes: readonly RouteConfig[];
  /**
   * Versions of the user balancer modules these settings name (path → file version), so a
   * reload that finds a module changed on disk rebuilds the balancer.
   */
  readonly modules: Readonly<Record<string, string>>;
  /** VirtualService retries, with the retry budget and Istio's connectionPool.http.maxRetries. */
  readonly retry: RetrySettings;
  /** Istio's connectionPool.http.http1MaxPendingRequests. */
  readonly maxPendingRequests: number;
  /** Passive health (DestinationRule outlierDetection); undefined = off, as in Istio. */
  readonly outlier: OutlierSettings | undefined;
  /** Active health checks; undefined = none. */
  readonly healthCheck: HealthCheckSettings | undefined;
}

/** Counters a cluster keeps for the admin API and metrics. */
export interface ClusterStats {
  requests: number;
  active: number;
  /** Retries started, and retries the retry budget or maxRetries refused (flag UO). */
  retries: number;
  retriesRefused: number;
  /** Requests refused because http1MaxPendingRequests already waited for a connection. */
  pendingOverflows: number;
  /** Responses by class: index 1 = 1xx ... 5 = 5xx; index 0 = no response (reset). */
  readonly byClass: number[];
}

/** Finds a user's balancer factory by module path (lb/module.ts keeps the loaded ones). */
export type ModuleLookup = (path: string) => BalancerFactory | undefined;

const NO_MODULES: ModuleLookup = () => undefined;

/** Builds an active health checker (loaded on demand: it brings undici into the process). */
export type CheckerFactory = (
  settings: HealthCheckSettings,
  sink: HealthFlagSink,
  logger: Logger,
  /** Every passed check: a passing endpoint that outlier detection ejected returns at once. */
  onPass: (endpointId: string) => void,
) => ActiveHealthChecker;

/** Builds the connector for upstream TLS settings (Runtime: tls/outbound.ts with the identity). */
export type ConnectorFactory = (
  tls: ClientTlsSettings,
  service: {
    readonly name: string;
    readonly namespace: string;
    readonly key: string;
    /** A Kubernetes Service port's cluster (`NAME:PORT`): the port; `name` is then NAME. */
    readonly port?: number;
  },
) => UpstreamConnector;

/** What every cluster of a runtime shares. */
export interface ClusterOptions {
  readonly modules?: ModuleLookup;
  /** Required for clusters with upstream TLS settings. */
  readonly connectors?: ConnectorFactory;
  readonly logger?: Logger;
  /** Required for clusters with a healthCheck (Runtime loads it first; see health-checks.ts). */
  readonly checkers?: CheckerFactory;
}

/** One endpoint's health flags and why they are set. */
interface EndpointHealth {
  flags: number;
  reasons: FlagReason[];
}

/**
 * One service as the data path sees it: its endpoints (from the registry's snapshots), its
 * routes and subsets, a balancer per host set, and a connection pool per endpoint.
 */
export class Cluster {
  readonly key: string;
  readonly name: string;
  readonly namespace: string;
  readonly stats: ClusterStats = {
    requests: 0,
    active: 0,
    retries: 0,
    retriesRefused: 0,
    pendingOverflows: 0,
    byClass: [0, 0, 0, 0, 0, 0],
  };
  #settings: ClusterSettings;
  readonly #modules: ModuleLookup;
  /** Every endpoint of the service. */
  #all: HostSet;
  #subsets = new Map<string, HostSet>();
  #routes: RouteTable;
  #snapshot: EndpointSnapshot | undefined;
  /** Pools with the service's TLS settings. */
  #pools: EndpointPools;
  /** Pools of subsets whose TLS settings differ from the service's, by subset name. */
  #subsetPools = new Map<string, EndpointPools>();
  /** Health flags by endpoint id; an endpoint without an entry is healthy. */
  readonly #health = new Map<string, EndpointHealth>();
  readonly #options: ClusterOptions;
  readonly #logger: Logger;
  #outlier: OutlierDetector | undefined;
  #checker: ActiveHealthChecker | undefined;
  /** Outlier counts of detectors a reload replaced, so the totals never go back. */
  #retiredOutlier = { ejectionsEnforced: 0, ejectionsDetected: 0 };
  /** Decides whether a failed attempt is tried again (services[].retries). */
  retryPolicy: RetryPolicy;
  /** Envoy's retry budget and Istio's maxRetries: retries in flight for this cluster. */
  retryBudget: RetryBudget;
  /** Istio's http1MaxPendingRequests: requests waiting for an upstream connection. */
  pendingLimit: PendingLimit;
  /** Answers for HostSet filtering: no health flag set on the endpoint. */
  readonly #isHealthy = (endpoint: Endpoint): boolean => !this.#health.has(endpoint.id);
  /** Where the health sources write (HealthFlagSink); a change re-filters the host sets. */
  readonly #sink: HealthFlagSink = {
    set: (endpointId, reason) => this.#setFlag(endpointId, reason),
    clear: (endpointId, flag) => this.#clearFlag(endpointId, flag),
  };

  constructor(
    name: string,
    namespace: string,
    settings: ClusterSettings,
    key?: string,
    options: ClusterOptions = {},
  ) {
    this.key = key ?? `${name}.${namespace}`;
    this.name = name;
    this.namespace = namespace;
    this.#settings = settings;
    this.#options = options;
    this.#modules = options.modules ?? NO_MODULES;
    this.#logger = (options.logger ?? silentLogger()).child({ cluster: this.key });
    this.retryPolicy = new RetryPolicy(settings.retry);
    this.retryBudget = new RetryBudget(settings.retry);
    this.pendingLimit = new PendingLimit({ http1MaxPendingRequests: settings.maxPendingRequests });
    this.#all = this.#hostSet("", {}, settings.lb);
    this.#routes = new RouteTable(settings.routes, { random: Math.random });
    this.#pools = this.#buildPools();
    this.#buildSubsets();
    this.#startHealth();
  }

  /** An attempt's outcome on one of this cluster's endpoints (outlier detection). */
  reportResult(endpoint: Endpoint, result: AttemptResult): void {
    this.#outlier?.putResult(endpoint.id, result);
  }

  /** Why an endpoint does not take requests (every flag's reason), or [] when healthy. */
  healthOf(endpointId: string): readonly FlagReason[] {
    return this.#health.get(endpointId)?.reasons ?? [];
  }

  /** Outlier detection's state of an endpoint (admin API), when detection is on. */
  outlierOf(endpointId: string) {
    return this.#outlier?.describe(endpointId);
  }

  /** Active health checks' state of an endpoint (admin API), when checks are on. */
  checkOf(endpointId: string) {
    return this.#checker?.describe(endpointId);
  }

  /** Ejection totals since start (metrics); undefined when outlier detection is off. */
  outlierStats(): OutlierStats | undefined {
    const now = this.#outlier?.stats;
    if (now === undefined) return undefined;
    const before = this.#retiredOutlier;
    return {
      ejectionsEnforced: before.ejectionsEnforced + now.ejectionsEnforced,
      ejectionsDetected: before.ejectionsDetected + now.ejectionsDetected,
      ejectedNow: now.ejectedNow,
    };
  }

  /** Active-check totals (metrics); undefined without active checks. */
  checkStats() {
    return this.#checker?.stats;
  }

  get settings(): ClusterSettings {
    return this.#settings;
  }

  get endpoints(): readonly Endpoint[] {
    return this.#snapshot?.endpoints ?? [];
  }

  /** The whole service's host set (what requests without routes use). */
  get hosts(): HostSet {
    return this.#all;
  }

  /** The service's host set, then each subset's. */
  hostSets(): HostSet[] {
    return [this.#all, ...this.#subsets.values()];
  }

  /**
   * Where a request goes: the host set of the route it matches (first match wins), or the
   * whole service when it has no routes; undefined when it has routes and none matches.
   */
  hostsFor(method: string, target: string, headers: readonly string[]): HostSet | undefined {
    const routes = this.#routes;
    if (routes.empty) return this.#all;
    const choice = routes.select(method, target, headers);
    if (choice === undefined) return undefined;
    return choice.subset === undefined ? this.#all : this.#subsets.get(choice.subset);
  }

  /** Rebuild from a new snapshot (never inside `pick`); pools of vanished endpoints close. */
  update(snapshot: EndpointSnapshot | undefined): void {
    this.#snapshot = snapshot;
    const endpoints = snapshot?.endpoints ?? [];
    if (this.#health.size > 0) {
      const live = new Set(endpoints.map((e) => e.id));
      for (const id of this.#health.keys()) if (!live.has(id)) this.#health.delete(id);
    }
    this.#outlier?.update(endpoints.map((e) => e.id));
    this.#checker?.update(endpoints);
    this.#select();
    if (this.#pools.size === 0 && this.#subsetPools.size === 0) return;
    const live = new Set((snapshot?.endpoints ?? []).map((e) => e.id));
    this.#pools.retain(live);
    for (const pools of this.#subsetPools.values()) pools.retain(live);
  }

  /** The whole service's balancer picks (TCP listeners, which have no routes). */
  pick(ctx: PickContext): Endpoint | undefined {
    return this.#all.pick(ctx);
  }

  /** Tell the whole service's balancer a request started / ended (TCP listeners). */
  onStart(endpoint: Endpoint): void {
    this.#all.balancer.onStart?.(endpoint);
  }

  onEnd(endpoint: Endpoint, ok: boolean): void {
    this.#all.balancer.onEnd?.(endpoint, ok);
  }

  /** The endpoint's pool for requests routed to `subset` ("" = the whole service). */
  pool(endpoint: Endpoint, subset = ""): UpstreamPool {
    if (subset !== "" && this.#subsetPools.size > 0) {
      const own = this.#subsetPools.get(subset);
      if (own !== undefined) return own.get(endpoint);
    }
    return this.#pools.get(endpoint);
  }

  poolStats(endpointId: string): { open: number; idle: number; connecting: number } {
    const stats = { open: 0, idle: 0, connecting: 0 };
    this.#pools.addStats(endpointId, stats);
    for (const pools of this.#subsetPools.values()) pools.addStats(endpointId, stats);
    return stats;
  }

  /**
   * New settings (config reload). Balancers whose settings (or module) changed are rebuilt
   * from the current snapshot; pools close only when their settings changed.
   */
  configure(settings: ClusterSettings): void {
    const previous = this.#settings;
    this.#settings = settings;
    if (!sameJson(previous.lb, settings.lb) || !sameJson(previous.modules, settings.modules)) {
      this.#all.replace(settings.lb, this.#module(settings.lb));
    }
    if (
      !sameJson(previous.subsets, settings.subsets) ||
      !sameJson(previous.modules, settings.modules)
    ) {
      this.#buildSubsets();
      this.#select();
    }
    if (!sameJson(previous.routes, settings.routes)) {
      this.#routes = new RouteTable(settings.routes, { random: Math.random });
    }
    // A connection made with other TLS settings must never be reused: new settings, new pools.
    if (
      !sameJson(previous.pool, settings.pool) ||
      !sameJson(previous.tls, settings.tls) ||
      !sameJson(subsetTls(previous), subsetTls(settings))
    ) {
      this.#closePools();
      this.#pools = this.#buildPools();
    }
    // Retry accounting restarts with new settings; in-flight retries release harmlessly.
    if (!sameJson(previous.retry, settings.retry)) {
      this.retryPolicy = new RetryPolicy(settings.retry);
      this.retryBudget = new RetryBudget(settings.retry);
    }
    if (previous.maxPendingRequests !== settings.maxPendingRequests) {
      this.pendingLimit = new PendingLimit({
        http1MaxPendingRequests: settings.maxPendingRequests,
      });
    }
    if (
      !sameJson(previous.outlier, settings.outlier) ||
      !sameJson(previous.healthCheck, settings.healthCheck)
    ) {
      this.#stopHealth();
      this.#startHealth();
      this.#select();
    }
  }

  close(): void {
    this.#closePools();
    this.#stopHealth();
  }

  /**
   * The service's pools, and pools for each subset whose TLS differs from the service's (subsets
   * with the same settings share the service's pools and their warm connections).
   */
  #buildPools(): EndpointPools {
    const settings = this.#settings;
    const pools = new EndpointPools(settings.pool, this.#connector(settings.tls));
    const own = JSON.stringify(settings.tls);
    for (const subset of settings.subsets) {
      if (JSON.stringify(subset.tls) === own) continue;
      this.#subsetPools.set(
        subset.name,
        new EndpointPools(settings.pool, this.#connector(subset.tls)),
      );
    }
    return pools;
  }

  #connector(tls: ClientTlsSettings | undefined): UpstreamConnector | undefined {
    if (tls === undefined) return undefined;
    const factory = this.#options.connectors;
    if (factory === undefined) throw new Error(`${this.key}: upstream TLS connectors not given`);
    // A Kubernetes Service port (`NAME:PORT`): the connector names the Service and its port
    // (Istio's SNI `outbound_.PORT_._.NAME.NS.svc...`), never the cluster name.
    const colon = this.name.indexOf(":");
    if (colon === -1) {
      return factory(tls, { name: this.name, namespace: this.namespace, key: this.key });
    }
    return factory(tls, {
      name: this.name.slice(0, colon),
      namespace: this.namespace,
      key: this.key,
      port: Number(this.name.slice(colon + 1)),
    });
  }

  #closePools(): void {
    this.#pools.close();
    for (const pools of this.#subsetPools.values()) pools.close();
    this.#subsetPools.clear();
  }

  /** Outlier detection and active checks as the settings ask, fed the current endpoints. */
  #startHealth(): void {
    const settings = this.#settings;
    const endpoints = this.#snapshot?.endpoints ?? [];
    if (settings.outlier !== undefined) {
      this.#outlier = new OutlierDetector(settings.outlier, this.#sink, { logger: this.#logger });
      this.#outlier.update(endpoints.map((e) => e.id));
    }
    if (settings.healthCheck !== undefined) {
      const factory = this.#options.checkers;
      if (factory === undefined) throw new Error(`${this.key}: active health checks not loaded`);
      this.#checker = factory(settings.healthCheck, this.#sink, this.#logger, (id) =>
        this.#outlier?.activeCheckPassed(id),
      );
      this.#checker.update(endpoints);
    }
  }

  /** Stop both health sources and clear their flags. */
  #stopHealth(): void {
    const outlier = this.#outlier;
    if (outlier !== undefined) {
      const stats = outlier.stats;
      this.#retiredOutlier.ejectionsEnforced += stats.ejectionsEnforced;
      this.#retiredOutlier.ejectionsDetected += stats.ejectionsDetected;
      outlier.close();
      this.#outlier = undefined;
    }
    if (this.#checker !== undefined) {
      void this.#checker.close();
      this.#checker = undefined;
    }
    this.#health.clear();
  }

  #setFlag(endpointId: string, reason: FlagReason): void {
    let health = this.#health.get(endpointId);
    if (health === undefined) {
      if (!this.endpoints.some((e) => e.id === endpointId)) return;
      health = { flags: 0, reasons: [] };
      this.#health.set(endpointId, health);
    }
    const had = health.flags;
    health.flags |= reason.flag;
    health.reasons = [...health.reasons.filter((r) => r.flag !== reason.flag), reason];
    if (had === 0) this.#select();
  }

  #clearFlag(endpointId: string, flag: HealthFlag): void {
    const health = this.#health.get(endpointId);
    if (health === undefined || (health.flags & flag) === 0) return;
    health.flags &= ~flag;
    health.reasons = health.reasons.filter((r) => r.flag !== flag);
    if (health.flags === 0) {
      this.#health.delete(endpointId);
      this.#select();
    }
  }

  #hostSet(
    subset: string,
    selector: Readonly<Record<string, string>>,
    lb: LoadBalancerSettings,
  ): HostSet {
    return new HostSet(subset, selector, lb, this.#module(lb));
  }

  #module(lb: LoadBalancerSettings): BalancerFactory | undefined {
    return lb.module === undefined ? undefined : this.#modules(lb.module.path);
  }

  #buildSubsets(): void {
    this.#subsets = new Map(
      this.#settings.subsets.map((subset) => [
        subset.name,
        this.#hostSet(subset.name, subset.labels, subset.lb),
      ]),
    );
  }

  /** Every host set re-filters the snapshot. */
  #select(): void {
    const endpoints = this.#snapshot?.endpoints ?? [];
    for (const set of this.hostSets()) set.update(endpoints, this.#isHealthy);
  }
}

function subsetTls(settings: ClusterSettings): (ClientTlsSettings | undefined)[] {
  return settings.subsets.map((subset) => subset.tls);
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Every cluster, created from configured services and from whatever discovery publishes. A
 * service known only to discovery gets `defaults`, a Kubernetes Service port the discovered
 * Services' policy (`discovery.kubernetes.trafficPolicy`) when there is one.
 */
export class ClusterManager {
  #clusters = new Map<string, Cluster>();
  #configured = new Map<string, ClusterSettings>();
  #defaults: ClusterSettings;
  /** `discovery.kubernetes.trafficPolicy` for ports of Services nobody configured; else #defaults. */
  #discovered: ClusterSettings;
  #registry: ServiceRegistry;
  #unsubscribe: () => void;
  #listeners = new Set<() => void>();

  readonly #options: ClusterOptions;

  constructor(registry: ServiceRegistry, defaults: ClusterSettings, options: ClusterOptions = {}) {
    this.#registry = registry;
    this.#defaults = defaults;
    this.#discovered = defaults;
    this.#options = options;
    this.#unsubscribe = registry.subscribe((snapshot, key) => this.#onSnapshot(key, snapshot));
  }

  /**
   * Configured services with their settings, keyed "name.namespace" (at start and on each config
   * reload). A cluster whose settings are unchanged is left alone (its pools stay warm); a
   * changed one swaps settings for new requests while in-flight ones finish on their pools. A
   * service no longer configured goes back to the defaults while discovery still publishes it,
   * and is removed otherwise (its pools close as their requests finish). `discovered`: the
   * policy of Kubernetes Service ports whose Service is not configured (default: `defaults`).
   */
  configure(
    services: ReadonlyMap<string, ClusterSettings & { name: string; namespace: string }>,
    discovered: ClusterSettings = this.#defaults,
  ) {
    const previous = this.#configured;
    this.#configured = new Map(services);
    this.#discovered = discovered;
    for (const [key, settings] of services) {
      const existing = this.#clusters.get(key);
      if (existing === undefined) {
        this.#add(settings.name, settings.namespace, settings).update(this.#registry.get(key));
      } else if (!sameSettings(existing.settings, settings)) existing.configure(settings);
    }
    for (const key of previous.keys()) {
      const cluster = this.#clusters.get(key);
      if (services.has(key) || cluster === undefined) continue;
      if (this.#registry.get(key) === undefined) {
        cluster.close();
        this.#clusters.delete(key);
      } else if (!sameSettings(cluster.settings, this.#defaults)) cluster.configure(this.#defaults);
    }
    // Kubernetes Service ports (`NAME:PORT`) follow NAME's policy as it is now.
    for (const cluster of this.#clusters.values()) {
      if (!cluster.name.includes(":") || this.#configured.has(cluster.key)) continue;
      const settings = this.#portSettings(cluster.name, cluster.namespace);
      if (!sameSettings(cluster.settings, settings)) cluster.configure(settings);
    }
    this.#changed();
  }

  get(key: string): Cluster | undefined {
    return this.#clusters.get(key);
  }

  all(): IterableIterator<Cluster> {
    return this.#clusters.values();
  }

  /** Called whenever the set of clusters changes (the router rebuilds its aliases). */
  onChange(listener: () => void): void {
    this.#listeners.add(listener);
  }

  close(): void {
    this.#unsubscribe();
    for (const cluster of this.#clusters.values()) cluster.close();
  }

  #onSnapshot(key: string, snapshot: EndpointSnapshot | undefined): void {
    let cluster = this.#clusters.get(key);
    if (cluster === undefined) {
      if (snapshot === undefined) return;
      cluster = this.#add(
        snapshot.name,
        snapshot.namespace,
        this.#portSettings(snapshot.name, snapshot.namespace),
      );
      cluster.update(snapshot);
      this.#changed();
      return;
    }
    cluster.update(snapshot);
    if (snapshot === undefined && !this.#configured.has(key)) {
      cluster.close();
      this.#clusters.delete(key);
      this.#changed();
    }
  }

  /**
   * A discovered service's settings: a Kubernetes Service port (`NAME:PORT`) takes the traffic
   * policy configured for NAME, whole, else the discovered Services' policy (at creation and on
   * every reload); anything else the defaults.
   */
  #portSettings(name: string, namespace: string): ClusterSettings {
    const colon = name.indexOf(":");
    if (colon === -1) return this.#defaults;
    return this.#configured.get(`${name.slice(0, colon)}.${namespace}`) ?? this.#discovered;
  }

  #add(name: string, namespace: string, settings: ClusterSettings): Cluster {
    const cluster = new Cluster(name, namespace, settings, undefined, this.#options);
    this.#clusters.set(cluster.key, cluster);
    return cluster;
  }

  #changed(): void {
    for (const listener of this.#listeners) listener();
  }
}

/**
 * Settings are plain data built by one function (runtime.ts clusterSettings), so they are
 * compared whole: a field added later can never be missed. The identity fields that configure()
 * receives alongside are left out.
 */
function sameSettings(a: ClusterSettings, b: ClusterSettings): boolean {
  return JSON.stringify(a, withoutIdentity) === JSON.stringify(b, withoutIdentity);
}

function withoutIdentity(this: unknown, key: string, value: unknown): unknown {
  return key === "name" || key === "namespace" ? undefined : value;
}
