import type { Cluster, ClusterManager } from "./cluster.js";

/** Cluster DNS suffix (Istio's default trust domain doubles as the cluster domain). */
const CLUSTER_DOMAIN = "cluster.local";
const CACHE_LIMIT = 4096;

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

  constructor(clusters: ClusterManager, namespace: string) {
    this.#clusters = clusters;
    this.#namespace = namespace;
    clusters.onChange(() => this.#rebuild());
    this.#rebuild();
  }

  resolve(authority: string): Cluster | undefined {
    const hit = this.#cache.get(authority);
    if (hit !== undefined) return hit;
    const cluster = this.#aliases.get(hostOnly(authority));
    if (cluster !== undefined) {
      if (this.#cache.size >= CACHE_LIMIT) this.#cache.clear();
      this.#cache.set(authority, cluster);
    }
    return cluster;
  }

  #rebuild(): void {
    const aliases = new Map<string, Cluster>();
    for (const cluster of this.#clusters.all()) {
      const { name, namespace } = cluster;
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
