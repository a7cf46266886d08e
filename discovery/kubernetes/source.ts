import type { ServiceRegistry } from "../registry.js";
import { type ApiAccess, resolveAccess } from "./access.js";
import { realTimers, type Timers } from "./backoff.js";
import { ENDPOINT_SLICES, KubeClient, type ResourcePath, SERVICES } from "./client.js";
import { scanWatchEvent } from "./event-scan.js";
import { type HeldEvent, HeldSlices } from "./held-slices.js";
import { Reflector, type ReflectorLogger, type RestartReason } from "./reflector.js";
import { ServiceTable } from "./service-table.js";
import {
  type EndpointSlice,
  type KubeObject,
  SERVICE_NAME_LABEL,
  type Service,
  type WatchEvent,
} from "./wire.js";

/** `discovery.kubernetes.idleRefresh`'s default: Istio's bound on batching a push (PILOT_DEBOUNCE_MAX). */
export const IDLE_REFRESH_MS = 10_000;
/** Held updates applied per turn of the event loop: ~5 ms of work, so a backlog never stalls traffic. */
const REFRESH_BATCH = 50;
/** How often, at most, the timer wakes for held updates: those due this soon are applied with them. */
const REFRESH_SLACK_MS = 250;

export interface KubernetesSourceOptions {
  /** A kubeconfig path; undefined = in-cluster, then $KUBECONFIG, then ~/.kube/config. */
  readonly kubeconfig?: string;
  /** Watch only these namespaces; undefined = every namespace (one cluster-wide watch). */
  readonly namespaces?: readonly string[];
  readonly clusterDomain: string;
  /** Relist every this many ms (0 = never). */
  readonly resyncMs?: number;
  /**
   * Slice updates of Services this proxy has not routed to are held, as raw lines, for at most
   * this many ms (default IDLE_REFRESH_MS; 0 = apply every update as it comes). A Service's
   * updates are applied at once from the moment it is first routed to, and `catchUp` applies
   * every held one (held-slices.ts).
   */
  readonly idleRefreshMs?: number;
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
  readonly now?: () => number;
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
 * The slice updates of Services not routed to yet are held unparsed and published later, at the
 * first route, a `catchUp`, or within `idleRefreshMs` (held-slices.ts).
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
  readonly #held = new HeldSlices();
  /** Services (`namespace/name`) routed to: their slice updates are applied as they come. */
  readonly #routed = new Set<string>();
  readonly #idleRefreshMs: number;
  readonly #timers: Timers;
  readonly #now: () => number;
  #refreshTimer: unknown;
  #table: ServiceTable | undefined;
  #client: KubeClient | undefined;
  #flushQueued = false;
  #routesVersion = 0;
  #stopped = false;

  constructor(registry: ServiceRegistry, options: KubernetesSourceOptions) {
    this.#registry = registry;
    this.#options = options;
    this.#logger = options.logger ?? noopLogger;
    this.#idleRefreshMs = options.idleRefreshMs ?? IDLE_REFRESH_MS;
    this.#timers = options.timers ?? realTimers;
    this.#now = options.now ?? Date.now;
    registry.registerSource(this.id);
  }

  /** Services and slices held now. */
  get objects(): { services: number; endpointslices: number } {
    return this.#table?.counts ?? { services: 0, endpointslices: 0 };
  }

  /** Slice updates held for Services not routed to yet (the `held updates` metric). */
  get heldUpdates(): number {
    return this.#held.size;
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
        replace: (items) => {
          // The list is newer than anything held from the watch before it.
          this.#held.dropScope(scope);
          table.replaceSlices(items, scope);
        },
        upsert: (item) => {
          this.#dropHeld(item);
          table.upsertSlice(item);
        },
        remove: (item) => {
          this.#dropHeld(item);
          table.deleteSlice(item);
        },
        hold: (line) => this.#hold(table, line),
      });
    }
    if (this.#stopped) return;
    for (const reflector of this.#reflectors) reflector.start();
  }

  /**
   * The registry key an authority routes to (NAME[:PORT], NAME.NS.svc..., ClusterIP:PORT). The
   * first route to a Service applies what is held for it before it answers, so the cluster the
   * caller looks up next is up to date, and from then on its updates are applied as they come.
   */
  route(authority: string): string | undefined {
    const table = this.#table;
    if (table === undefined) return undefined;
    const key = table.route(authority);
    if (key !== undefined) {
      const service = table.serviceOf(key);
      if (service !== undefined && !this.#routed.has(service)) this.#firstRoute(table, service);
    }
    return key;
  }

  /** Apply every held slice update now (for readers of every cluster: the admin API). */
  catchUp(): void {
    const table = this.#table;
    if (table === undefined || this.#held.size === 0) return;
    this.#applyHeld(table, this.#held.takeAll());
    this.#flush();
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
    if (this.#refreshTimer !== undefined) this.#timers.clearTimeout(this.#refreshTimer);
    await Promise.all(this.#reflectors.map((reflector) => reflector.stop()));
    await this.#client?.close();
  }

  #watch<T extends KubeObject>(
    client: KubeClient,
    path: ResourcePath,
    scope: string | undefined,
    into: {
      replace(items: readonly T[]): void;
      upsert(item: T): void;
      remove(item: T): void;
      hold?(line: string): string | undefined;
    },
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
        hold: into.hold,
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
    this.#applyHeld(table, this.#held.takeAll());
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
      this.#flush();
    });
  }

  /** Publish the Services changed in the table since the last flush. */
  #flush(): void {
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
  }

  /**
   * A slice watch line, before it is parsed: held when it is an update of a slice of a Service
   * not routed to (and not filed under one that is); its resourceVersion, or undefined to have
   * it applied now. Anything the scan is not sure of is left to the reflector.
   */
  #hold(table: ServiceTable, line: string): string | undefined {
    if (this.#idleRefreshMs === 0) return undefined;
    const event = scanWatchEvent(line, SERVICE_NAME_LABEL);
    if (event === undefined || event.name === undefined || event.namespace === undefined) {
      return undefined;
    }
    const type = event.type;
    if (type !== "ADDED" && type !== "MODIFIED" && type !== "DELETED") return undefined;
    const slice = `${event.namespace}/${event.name}`;
    const owner = event.label ? `${event.namespace}/${event.label}` : "";
    if (this.#routed.has(owner)) return undefined;
    const filed = table.ownerOf(slice);
    if (filed !== undefined && this.#routed.has(filed)) return undefined;
    this.#held.hold(type, slice, owner, line, this.#now());
    this.#scheduleRefresh();
    return event.resourceVersion ?? "";
  }

  /** A slice event applied now: what was held for the slice is older, so it goes. */
  #dropHeld(slice: EndpointSlice): void {
    if (this.#held.size === 0) return;
    const meta = slice.metadata;
    if (meta?.name !== undefined && meta.namespace !== undefined) {
      this.#held.drop(`${meta.namespace}/${meta.name}`);
    }
  }

  #firstRoute(table: ServiceTable, service: string): void {
    this.#routed.add(service);
    if (this.#held.size === 0) return;
    const events = this.#held.takeFor(service, table.slicesOf(service));
    if (events.length === 0) return;
    this.#applyHeld(table, events);
    this.#flush();
  }

  /** Into the table, in the order given (one event per slice). */
  #applyHeld(table: ServiceTable, events: readonly HeldEvent[]): void {
    for (const held of events) {
      // The scan validated the line: it parses.
      const slice = (JSON.parse(held.line) as WatchEvent).object as EndpointSlice;
      if (held.type === "DELETED") table.deleteSlice(slice);
      else table.upsertSlice(slice);
    }
  }

  /** Wake when the oldest held update is due (at most every REFRESH_SLACK_MS). */
  #scheduleRefresh(): void {
    if (this.#refreshTimer !== undefined || this.#stopped) return;
    const oldest = this.#held.oldestSince;
    if (oldest === undefined) return;
    const delay = Math.max(0, oldest + this.#idleRefreshMs - this.#now() - this.#slackMs());
    this.#refreshTimer = this.#timers.setTimeout(() => this.#refreshIdle(), delay);
  }

  /** Apply the held updates that are due, a batch per turn of the event loop. */
  #refreshIdle(): void {
    this.#refreshTimer = undefined;
    const table = this.#table;
    if (table === undefined || this.#stopped) return;
    const dueBefore = this.#now() - this.#idleRefreshMs + this.#slackMs();
    this.#applyHeld(table, this.#held.takeDue(dueBefore, REFRESH_BATCH));
    this.#flush();
    const oldest = this.#held.oldestSince;
    if (oldest !== undefined && oldest <= dueBefore) {
      // More are due: the next batch after the I/O that waits.
      this.#refreshTimer = this.#timers.setTimeout(() => this.#refreshIdle(), 0);
    } else this.#scheduleRefresh();
  }

  #slackMs(): number {
    return Math.min(REFRESH_SLACK_MS, this.#idleRefreshMs / 4);
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
