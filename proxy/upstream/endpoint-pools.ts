import type { Endpoint } from "../../discovery/endpoint.js";
import type { UpstreamConnector } from "./connector.js";
import { type PoolSettings, UpstreamPool } from "./pool.js";

/**
 * One pool per endpoint, all opening connections the same way: a service's (or a subset's)
 * pools for one set of TLS settings. A Cluster holds one of these per distinct TLS settings, so
 * a connection made with some settings is never handed to a request that asked for others.
 */
export class EndpointPools {
  readonly #pools = new Map<string, UpstreamPool>();
  readonly #settings: PoolSettings;
  /** undefined = plain TCP (the pool's own path). */
  readonly #connector: UpstreamConnector | undefined;

  constructor(settings: PoolSettings, connector: UpstreamConnector | undefined) {
    this.#settings = settings;
    this.#connector = connector;
  }

  get(endpoint: Endpoint): UpstreamPool {
    let pool = this.#pools.get(endpoint.id);
    if (pool === undefined) {
      pool = new UpstreamPool(endpoint.host, endpoint.port, this.#settings, this.#connector);
      this.#pools.set(endpoint.id, pool);
    }
    return pool;
  }

  /** Adds the endpoint's pool counts to `into`. */
  addStats(endpointId: string, into: { open: number; idle: number; connecting: number }): void {
    const pool = this.#pools.get(endpointId);
    if (pool === undefined) return;
    const stats = pool.stats;
    into.open += stats.open;
    into.idle += stats.idle;
    into.connecting += stats.connecting;
  }

  /** Close the pools of endpoints not in `live`. */
  retain(live: ReadonlySet<string>): void {
    for (const [id, pool] of this.#pools) {
      if (!live.has(id)) {
        pool.close();
        this.#pools.delete(id);
      }
    }
  }

  get size(): number {
    return this.#pools.size;
  }

  /** Idle connections close now, busy ones when released. */
  close(): void {
    for (const pool of this.#pools.values()) pool.close();
    this.#pools.clear();
  }
}
