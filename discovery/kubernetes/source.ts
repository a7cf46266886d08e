import type { ServiceRegistry } from "../registry.js";
import { type ApiAccess, resolveAccess } from "./access.js";
import type { Timers } from "./backoff.js";
import { ENDPOINT_SLICES, KubeClient, type ResourcePath, SERVICES } from "./client.js";
import { Reflector, type ReflectorLogger, type RestartReason } from "./reflector.js";
import { ServiceTable } from "./service-table.js";
import type { EndpointSlice, KubeObject, Service } from "./wire.js";

export interface KubernetesSourceOptions {
  /** A kubeconfig path; undefined = in-cluster, then $KUBECONFIG, then ~/.kube/config. */
  readonly kubeconfig?: string;
  /** Watch only these namespaces; undefined = every namespace (one cluster-wide watch). */
  readonly namespaces?: readonly string[];
  readonly clusterDomain: string;
  /** Relist every this many ms (0 = never). */
  readonly resyncMs?: number;
  /**
   * The sidecar's own namespace (a bare `NAME` resolves there); default: the service account's
   * or the kubeconfig context's namespace, else `default`.
   */
  readonly namespace?: string;
  readonly logger?: ReflectorLogger;
  /** Tests: access without files, and injected time. */
  readonly access?: ApiAccess;
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly timers?: Timers;
  readonly random?: () => number;
}

/** Numbers for `remora_kubernetes_*` (proxy/metrics/kubernetes.ts reads them at scrape time). */
export interface KubernetesStats {
  /** Restarts of a list/watch loop by `resource|reason`. */
  readonly restarts: Map<string, number>;
  /** Watch events applied, by resource. */
  readonly eventsApplied: Map<string, number>;
  /** When a full list last replaced the state (ms since the epoch; 0 = not yet). */
  lastFullSyncMs: number;
}

const noopLogger: ReflectorLogger = { info: () => {}, warn: () => {} };

/**
 * Services and EndpointSlices from the Kubernetes API, published into the registry as one
 * registry service per Service port (service-table.ts), with the names that route to each.
 *
 * The registry hears one `reset` after the first complete list of every watch (then the source
 * is synced, and `/ready` can pass) and after each relist; between them, watch events become
 * `add`/`remove` updates of only the Services they touched, coalesced per turn of the event loop.
 * While the API is unreachable nothing is withdrawn: the last known endpoints keep serving.
 */
export class KubernetesSource {
  readonly id = "kubernetes";
  readonly stats: KubernetesStats = {
    restarts: new Map(),
    eventsApplied: new Map(),
    lastFullSyncMs: 0,
  };
  readonly #registry: ServiceRegistry;
  readonly #options: KubernetesSourceOptions;
  readonly #logger: ReflectorLogger;
  readonly #reflectors: Reflector<KubeObject>[] = [];
  readonly #routeListeners = new Set<() => void>();
  #table: ServiceTable | undefined;
  #client: KubeClient | undefined;
  #flushQueued = false;
  #routesVersion = 0;
  #stopped = false;

  constructor(registry: ServiceRegistry, options: KubernetesSourceOptions) {
    this.#registry = registry;
    this.#options = options;
    this.#logger = options.logger ?? noopLogger;
    registry.registerSource(this.id);
  }

  /** Services and slices held now. */
  get objects(): { services: number; endpointslices: number } {
    return this.#table?.counts ?? { services: 0, endpointslices: 0 };
  }

  /**
   * Resolve access and start the watches; resolves without waiting for the first list (the
   * registry's sync state says when it has come). Rejects with KubeAccessError when the
   * kubeconfig or service-account files cannot be used.
   */
  async start(): Promise<void> {
    const access =
      this.#options.access ?? (await resolveAccess(this.#options.kubeconfig, this.#options.env));
    const namespace = this.#options.namespace ?? access.namespace ?? "default";
    const table = new ServiceTable({
      namespace,
      clusterDomain: this.#options.clusterDomain,
      onExternalName: (ns, name, externalName) =>
        this.#logger.info(
          { service: `${name}.${ns}`, externalName },
          "ExternalName service not proxied: requests to it answer 404 REMORA_ERR_EXTERNAL_NAME (NR); call the external name directly",
        ),
    });
    this.#table = table;
    const client = new KubeClient(access);
    this.#client = client;
    this.#logger.info(
      {
        server: access.server,
        origin: access.origin,
        namespaces: this.#options.namespaces ?? "all",
      },
      "Kubernetes discovery starting",
    );
    const scopes = this.#options.namespaces ?? [undefined];
    for (const scope of scopes) {
      this.#watch<Service>(client, SERVICES, scope, {
        replace: (items) => table.replaceServices(items, scope),
        upsert: (item) => table.upsertService(item),
        remove: (item) => table.deleteService(item),
      });
      this.#watch<EndpointSlice>(client, ENDPOINT_SLICES, scope, {
        replace: (items) => table.replaceSlices(items, scope),
        upsert: (item) => table.upsertSlice(item),
        remove: (item) => table.deleteSlice(item),
      });
    }
    if (this.#stopped) return;
    for (const reflector of this.#reflectors) reflector.start();
  }

  /** The registry key an authority routes to (NAME[:PORT], NAME.NS.svc..., ClusterIP:PORT). */
  route(authority: string): string | undefined {
    return this.#table?.route(authority);
  }

  /** The external name of the ExternalName Service an authority names, or undefined. */
  externalName(authority: string): string | undefined {
    return this.#table?.externalName(authority);
  }

  /** Called after the set of routed names changed (the router drops its cache). */
  onRoutesChanged(listener: () => void): () => void {
    this.#routeListeners.add(listener);
    return () => this.#routeListeners.delete(listener);
  }

  /** Stop the watches. What the source published stays published (ServiceRegistry.removeSource). */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#reflectors.map((reflector) => reflector.stop()));
    await this.#client?.close();
  }

  #watch<T extends KubeObject>(
    client: KubeClient,
    path: ResourcePath,
    scope: string | undefined,
    into: { replace(items: readonly T[]): void; upsert(item: T): void; remove(item: T): void },
  ): void {
    const resource = path.resource;
    const reflector: Reflector<T> = new Reflector<T>(
      client.resource<T>(path, scope),
      {
        replace: (items) => {
          into.replace(items);
          // First list of this watch, or a relist: once all have listed, one reset.
          if (this.#reflectors.every((r) => r === reflector || r.synced)) this.#reset();
        },
        apply: (type, object) => {
          if (type === "DELETED") into.remove(object);
          else into.upsert(object);
          this.#queueFlush();
        },
      },
      {
        logger: this.#logger,
        timers: this.#options.timers,
        random: this.#options.random,
        resyncMs: this.#options.resyncMs,
        onRestart: (reason: RestartReason) => {
          const key = `${resource}|${reason}`;
          this.stats.restarts.set(key, (this.stats.restarts.get(key) ?? 0) + 1);
        },
        onEvent: () => {
          this.stats.eventsApplied.set(resource, (this.stats.eventsApplied.get(resource) ?? 0) + 1);
        },
      },
    );
    this.#reflectors.push(reflector as unknown as Reflector<KubeObject>);
  }

  /** The table's whole state as one reset (the registry republishes only what changed). */
  #reset(): void {
    const table = this.#table;
    if (table === undefined || this.#stopped) return;
    this.#safely(() => this.#registry.apply(this.id, { kind: "reset", services: table.all() }));
    this.stats.lastFullSyncMs = Date.now();
    this.#registry.markSynced(this.id);
    this.#routesMaybeChanged();
  }

  #queueFlush(): void {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    // One registry update for all the events of a chunk, and only for the Services they touched.
    queueMicrotask(() => {
      this.#flushQueued = false;
      const table = this.#table;
      if (table === undefined || this.#stopped) return;
      // Before the first complete sync, events wait in the table for the reset.
      if (!this.#reflectors.every((r) => r.synced)) return;
      const { upserts, removals } = table.flush();
      if (removals.length > 0) {
        this.#safely(() => this.#registry.apply(this.id, { kind: "remove", keys: removals }));
      }
      if (upserts.length > 0) {
        this.#safely(() => this.#registry.apply(this.id, { kind: "add", services: upserts }));
      }
      this.#routesMaybeChanged();
    });
  }

  #routesMaybeChanged(): void {
    const version = this.#table?.routesVersion ?? 0;
    if (version === this.#routesVersion) return;
    this.#routesVersion = version;
    for (const listener of this.#routeListeners) listener();
  }

  #safely(action: () => void): void {
    try {
      action();
    } catch (error) {
      // The registry is updated; a subscriber threw. Nothing awaits a watch event, so say so here.
      this.#logger.warn({ err: error }, "a registry subscriber failed");
    }
  }
}
