import type { Cluster, ClusterManager } from "./cluster.js";
import type { ErrorCode } from "./errors.js";

/** Cluster DNS suffix (Istio's default trust domain doubles as the cluster domain). */
const CLUSTER_DOMAIN = "cluster.local";
const CACHE_LIMIT = 4096;

/**
 * Names a discovery source routes itself (Kubernetes: `NAME:PORT`, `NAME.NS.svc:PORT`,
 * `ClusterIP:PORT`, each to the registry key of one Service port). Consulted before the
 * cluster-name aliases, since they know the port.
 */
export interface DiscoveredRoutes {
  route(authority: string): string | undefined;
  onRoutesChanged(listener: () => void): unknown;
  /** The external name when the authority names a Kubernetes ExternalName Service (not proxied). */
  externalName?(authority: string): string | undefined;
}

/**
 * Maps a request's authority to a cluster, accepting every name a pod may use for a service:
 * `NAME` (in the proxy's own namespace), `NAME.NS`, `NAME.NS.svc`, `NAME.NS.svc.cluster.local`,
 * each with an optional `:port` and any letter case.
 */
export class HostRouter {
  #clusters: ClusterManager;
  #namespace: string;
  #aliases = new Map<string, Cluster>();
  /** Authority exactly as received → cluster; only hits are cached, and the cache is bounded. */
  #cache = new Map<string, Cluster>();

  #discovered: DiscoveredRoutes | undefined;

  constructor(clusters: ClusterManager, namespace: string, discovered?: DiscoveredRoutes) {
    this.#clusters = clusters;
    this.#namespace = namespace;
    this.#discovered = discovered;
    clusters.onChange(() => this.#rebuild());
    discovered?.onRoutesChanged(() => this.#cache.clear());
    this.#rebuild();
  }

  resolve(authority: string): Cluster | undefined {
    const hit = this.#cache.get(authority);
    if (hit !== undefined) return hit;
    const key = this.#discovered?.route(authority);
    const cluster =
      (key === undefined ? undefined : this.#clusters.get(key)) ??
      this.#aliases.get(hostOnly(authority));
    if (cluster !== undefined) {
      if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
      this.#cache.set(authority, cluster);
    }
    return cluster;
  }

  /** Why an authority that `resolve` found no cluster for routes nowhere (the answer's code). */
  unrouted(authority: string): ErrorCode {
    return this.#discovered?.externalName?.(authority) === undefined
      ? "REMORA_ERR_NO_ROUTE"
      : "REMORA_ERR_EXTERNAL_NAME";
  }

  #rebuild(): void {
    const aliases = new Map<string, Cluster>();
    for (const cluster of this.#clusters.all()) {
      const { name, namespace } = cluster;
      // A Service port (`NAME:PORT`, discovery/kubernetes) is reached through DiscoveredRoutes.
      if (name.includes(":")) continue;
      if (namespace === this.#namespace) aliases.set(name, cluster);
      aliases.set(`${name}.${namespace}`, cluster);
      aliases.set(`${name}.${namespace}.svc`, cluster);
      aliases.set(`${name}.${namespace}.svc.${CLUSTER_DOMAIN}`, cluster);
    }
    this.#aliases = aliases;
    this.#cache.clear();
  }
}

/** Lower-cased host of an authority, without port, brackets kept for IPv6, no trailing dot. */
export function hostOnly(authority: string): string {
  let end = authority.length;
  const colon = authority.lastIndexOf(":");
  if (colon !== -1 && authority.indexOf("]", colon) === -1) end = colon;
  if (end > 0 && authority.charCodeAt(end - 1) === 46 /* . */) end--;
  return authority.slice(0, end).toLowerCase();
}
