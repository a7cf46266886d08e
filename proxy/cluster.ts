import type { Endpoint } from "../discovery/endpoint.js";
import type { ServiceRegistry } from "../discovery/registry.js";
import type { EndpointSnapshot } from "../discovery/snapshot.js";
import type { BalancerFactory, LoadBalancerSettings, PickContext } from "../lb/balancer.js";
import type { RouteConfig } from "./config/schema.js";
import { HostSet } from "./host-set.js";
import { RouteTable } from "./routing/route-table.js";
import { type PoolSettings, UpstreamPool } from "./upstream/pool.js";

/** One DestinationRule subset: endpoints by label, with its own balancer settings. */
export interface SubsetSettings {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly lb: LoadBalancerSettings;
}

/** Traffic policy of one service, resolved from config (DestinationRule + VirtualService). */
export interface ClusterSettings {
  readonly lb: LoadBalancerSettings;
  /** Per-request timeout in ms; 0 disables it (Istio's default). */
  readonly timeoutMs: number;
  readonly pool: PoolSettings;
  readonly subsets: readonly SubsetSettings[];
  readonly routes: readonly RouteConfig[];
  /**
   * Versions of the user balancer modules these settings name (path → file version), so a
   * reload that finds a module changed on disk rebuilds the balancer.
   */
  readonly modules: Readonly<Record<string, string>>;
}

/** Counters a cluster keeps for the admin API and metrics. */
export interface ClusterStats {
  requests: number;
  active: number;
  /** Responses by class: index 1 = 1xx ... 5 = 5xx; index 0 = no response (reset). */
  readonly byClass: number[];
}

/** Finds a user's balancer factory by module path (lb/module.ts keeps the loaded ones). */
export type ModuleLookup = (path: string) => BalancerFactory | undefined;

const NO_MODULES: ModuleLookup = () => undefined;

/**
 * One service as the data path sees it: its endpoints (from the registry's snapshots), its
 * routes and subsets, a balancer per host set, and a connection pool per endpoint.
 */
export class Cluster {
  readonly key: string;
  readonly name: string;
  readonly namespace: string;
  readonly stats: ClusterStats = { requests: 0, active: 0, byClass: [0, 0, 0, 0, 0, 0] };
  #settings: ClusterSettings;
  readonly #modules: ModuleLookup;
  /** Every endpoint of the service. */
  #all: HostSet;
  #subsets = new Map<string, HostSet>();
  #routes: RouteTable;
  #snapshot: EndpointSnapshot | undefined;
  #pools = new Map<string, UpstreamPool>();

  constructor(
    name: string,
    namespace: string,
    settings: ClusterSettings,
    key?: string,
    modules: ModuleLookup = NO_MODULES,
  ) {
    this.key = key ?? `${name}.${namespace}`;
    this.name = name;
    this.namespace = namespace;
    this.#settings = settings;
    this.#modules = modules;
    this.#all = this.#hostSet("", {}, settings.lb);
    this.#routes = new RouteTable(settings.routes, { random: Math.random });
    this.#buildSubsets();
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
    this.#select();
    if (this.#pools.size === 0) return;
    const live = new Set((snapshot?.endpoints ?? []).map((e) => e.id));
    for (const [id, pool] of this.#pools) {
      if (!live.has(id)) {
        pool.close();
        this.#pools.delete(id);
      }
    }
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

  pool(endpoint: Endpoint): UpstreamPool {
    let pool = this.#pools.get(endpoint.id);
    if (pool === undefined) {
      pool = new UpstreamPool(endpoint.host, endpoint.port, this.#settings.pool);
      this.#pools.set(endpoint.id, pool);
    }
    return pool;
  }

  poolStats(endpointId: string): { open: number; idle: number; connecting: number } {
    return this.#pools.get(endpointId)?.stats ?? { open: 0, idle: 0, connecting: 0 };
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
    if (!sameJson(previous.pool, settings.pool)) {
      for (const pool of this.#pools.values()) pool.close();
      this.#pools.clear();
    }
  }

  close(): void {
    for (const pool of this.#pools.values()) pool.close();
    this.#pools.clear();
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
    // TODO(health): no health source sets flags yet (active checks, outlier detection);
    // until one does, every ready endpoint is healthy and panic never triggers.
    for (const set of this.hostSets()) set.update(endpoints, isHealthy);
  }
}

function isHealthy(_endpoint: Endpoint): boolean {
  return true;
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * Every cluster, created from configured services and from whatever discovery publishes. A
 * service known only to discovery gets `defaults`.
 */
export class ClusterManager {
  #clusters = new Map<string, Cluster>();
  #configured = new Map<string, ClusterSettings>();
  #defaults: ClusterSettings;
  #registry: ServiceRegistry;
  #unsubscribe: () => void;
  #listeners = new Set<() => void>();

  readonly #modules: ModuleLookup;

  constructor(registry: ServiceRegistry, defaults: ClusterSettings, modules = NO_MODULES) {
    this.#registry = registry;
    this.#defaults = defaults;
    this.#modules = modules;
    this.#unsubscribe = registry.subscribe((snapshot, key) => this.#onSnapshot(key, snapshot));
  }

  /**
   * Configured services with their settings, keyed "name.namespace" (at start and on each config
   * reload). A cluster whose settings are unchanged is left alone (its pools stay warm); a
   * changed one swaps settings for new requests while in-flight ones finish on their pools. A
   * service no longer configured goes back to the defaults while discovery still publishes it,
   * and is removed otherwise (its pools close as their requests finish).
   */
  configure(services: ReadonlyMap<string, ClusterSettings & { name: string; namespace: string }>) {
    const previous = this.#configured;
    this.#configured = new Map(services);
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
      cluster = this.#add(snapshot.name, snapshot.namespace, this.#defaults);
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

  #add(name: string, namespace: string, settings: ClusterSettings): Cluster {
    const cluster = new Cluster(name, namespace, settings, undefined, this.#modules);
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
