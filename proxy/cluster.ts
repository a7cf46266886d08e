import type { Endpoint } from "../discovery/endpoint.js";
import type { ServiceRegistry } from "../discovery/registry.js";
import type { EndpointSnapshot } from "../discovery/snapshot.js";
import type { Balancer, PickContext } from "../lb/balancer.js";
import { createBalancer } from "../lb/registry.js";
import { type PoolSettings, UpstreamPool } from "./upstream/pool.js";

/** Traffic policy of one service, resolved from config (DestinationRule + VirtualService). */
export interface ClusterSettings {
  readonly policy: string;
  /** Per-request timeout in ms; 0 disables it (Istio's default). */
  readonly timeoutMs: number;
  readonly pool: PoolSettings;
}

/** Counters a cluster keeps for the admin API; metrics proper come with the operations issue. */
export interface ClusterStats {
  requests: number;
  active: number;
  /** Responses by class: index 1 = 1xx ... 5 = 5xx; index 0 = no response (reset). */
  readonly byClass: number[];
}

/**
 * One service as the data path sees it: its endpoints (from the registry's snapshots), its
 * balancer, and a connection pool per endpoint.
 */
export class Cluster {
  readonly key: string;
  readonly name: string;
  readonly namespace: string;
  readonly stats: ClusterStats = { requests: 0, active: 0, byClass: [0, 0, 0, 0, 0, 0] };
  #settings: ClusterSettings;
  #balancer: Balancer;
  #snapshot: EndpointSnapshot | undefined;
  #pools = new Map<string, UpstreamPool>();

  constructor(name: string, namespace: string, settings: ClusterSettings, key?: string) {
    this.key = key ?? `${name}.${namespace}`;
    this.name = name;
    this.namespace = namespace;
    this.#settings = settings;
    this.#balancer = createBalancer(settings.policy);
  }

  get settings(): ClusterSettings {
    return this.#settings;
  }

  get endpoints(): readonly Endpoint[] {
    return this.#snapshot?.endpoints ?? [];
  }

  /** Rebuild from a new snapshot (never inside `pick`); pools of vanished endpoints close. */
  update(snapshot: EndpointSnapshot | undefined): void {
    this.#snapshot = snapshot;
    const endpoints = snapshot?.endpoints ?? [];
    this.#balancer.update(endpoints.filter((e) => e.ready));
    if (this.#pools.size === 0) return;
    const live = new Set(endpoints.map((e) => e.id));
    for (const [id, pool] of this.#pools) {
      if (!live.has(id)) {
        pool.close();
        this.#pools.delete(id);
      }
    }
  }

  pick(ctx: PickContext): Endpoint | undefined {
    return this.#balancer.pick(ctx);
  }

  /** Tell the balancer a request started / ended on an endpoint (least-request, first-come). */
  onStart(endpoint: Endpoint): void {
    this.#balancer.onStart?.(endpoint);
  }

  onEnd(endpoint: Endpoint, ok: boolean): void {
    this.#balancer.onEnd?.(endpoint, ok);
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

  /** Swap the policy (config reload); the balancer is rebuilt from the current snapshot. */
  configure(settings: ClusterSettings): void {
    const rebuild = settings.policy !== this.#settings.policy;
    this.#settings = settings;
    if (rebuild) {
      this.#balancer = createBalancer(settings.policy);
      this.#balancer.update(this.endpoints.filter((e) => e.ready));
    }
    for (const pool of this.#pools.values()) pool.close();
    this.#pools.clear();
  }

  close(): void {
    for (const pool of this.#pools.values()) pool.close();
    this.#pools.clear();
  }
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

  constructor(registry: ServiceRegistry, defaults: ClusterSettings) {
    this.#registry = registry;
    this.#defaults = defaults;
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
    const cluster = new Cluster(name, namespace, settings);
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
