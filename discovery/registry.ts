import type { Endpoint } from "./endpoint.js";
import type { EndpointSnapshot } from "./snapshot.js";
import { type ServiceEndpoints, serviceKey, type Update } from "./update.js";

export type SnapshotListener = (snapshot: EndpointSnapshot | undefined, key: string) => void;

/** One source's sync state, for metrics and the admin API. */
export interface SourceSyncState {
  readonly id: string;
  readonly synced: boolean;
  /** When it last delivered its initial state or an update (ms since the epoch); 0 = never. */
  readonly lastSyncMs: number;
}

interface SourceState {
  synced: boolean;
  /** When the source last synced or applied an update (ms since the epoch); 0 = never. */
  lastSyncMs: number;
  /** What this source currently contributes, by service key. */
  readonly services: Map<string, ServiceEndpoints>;
}

/**
 * The one place endpoints from every discovery source meet. Sources `apply` updates; consumers
 * `get` frozen snapshots and `subscribe` to changes.
 *
 * Two sources contributing the same service key are not merged: the source that wrote the key
 * most recently wins (re-sending unchanged endpoints is not a write). If that source later removes the key, the previous writer's endpoints
 * (if it still contributes the key) become effective again.
 *
 * Cost: an update rebuilds only the services it touches, and a rebuilt service whose endpoints
 * did not change (same ids, weights, labels and readiness, in any order) is not republished.
 */
export class ServiceRegistry {
  readonly #sources = new Map<string, SourceState>();
  /** Per key, the sources contributing it, least recent writer first. */
  readonly #writers = new Map<string, string[]>();
  readonly #snapshots = new Map<string, EndpointSnapshot>();
  readonly #listeners = new Set<SnapshotListener>();
  readonly #now: () => number;
  #version = 0;

  /** `now`: the wall clock for sync times (injectable for tests). */
  constructor(options: { now?: () => number } = {}) {
    this.#now = options.now ?? Date.now;
  }

  /** Declare a source so `isSynced` waits for it. Idempotent. */
  registerSource(sourceId: string): void {
    this.#source(sourceId);
  }

  /** The source has delivered its initial state (first list, first file read). */
  markSynced(sourceId: string): void {
    const state = this.#source(sourceId);
    state.synced = true;
    state.lastSyncMs = this.#now();
  }

  /** Every registered source, in registration order. */
  sourceStates(): SourceSyncState[] {
    const out: SourceSyncState[] = [];
    for (const [id, state] of this.#sources) {
      out.push({ id, synced: state.synced, lastSyncMs: state.lastSyncMs });
    }
    return out;
  }

  /** True once every registered source has synced (vacuously true with none). */
  isSynced(): boolean {
    for (const state of this.#sources.values()) if (!state.synced) return false;
    return true;
  }

  /** Drop a source and everything it contributed (e.g. a discovery file removed by reload). */
  removeSource(sourceId: string): void {
    const state = this.#sources.get(sourceId);
    if (state === undefined) return;
    const touched = new Set<string>();
    for (const key of state.services.keys()) this.#withdraw(sourceId, key, touched);
    state.services.clear();
    this.#sources.delete(sourceId);
    this.#publish(touched);
  }

  apply(sourceId: string, update: Update): void {
    const state = this.#source(sourceId);
    state.lastSyncMs = this.#now();
    const touched = new Set<string>();
    switch (update.kind) {
      case "reset": {
        const incoming = new Set<string>();
        for (const service of update.services) {
          incoming.add(serviceKey(service.name, service.namespace));
        }
        // Deleting from a Map while iterating it is well-defined in JS.
        for (const key of state.services.keys()) {
          if (!incoming.has(key)) {
            state.services.delete(key);
            this.#withdraw(sourceId, key, touched);
          }
        }
        for (const service of update.services) this.#contribute(sourceId, state, service, touched);
        break;
      }
      case "add":
        for (const service of update.services) this.#contribute(sourceId, state, service, touched);
        break;
      case "remove":
        for (const key of update.keys) {
          if (state.services.delete(key)) this.#withdraw(sourceId, key, touched);
        }
        break;
    }
    this.#publish(touched);
  }

  get(key: string): EndpointSnapshot | undefined {
    return this.#snapshots.get(key);
  }

  /** Keys of every published service, sorted. */
  keys(): string[] {
    return [...this.#snapshots.keys()].sort();
  }

  /**
   * Called once per changed service after the whole update has been applied (so `get` inside a
   * listener sees the new state of every service), with `undefined` when the service is gone.
   * Returns the unsubscribe function.
   */
  subscribe(listener: SnapshotListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  #source(sourceId: string): SourceState {
    let state = this.#sources.get(sourceId);
    if (state === undefined) {
      state = { synced: false, lastSyncMs: 0, services: new Map() };
      this.#sources.set(sourceId, state);
    }
    return state;
  }

  #contribute(
    sourceId: string,
    state: SourceState,
    service: ServiceEndpoints,
    touched: Set<string>,
  ): void {
    const key = serviceKey(service.name, service.namespace);
    const previous = state.services.get(key);
    state.services.set(key, service);
    // Repeating what the source already contributes is not a write: it keeps its place among
    // the key's writers (a config reload re-sends every static service and must not take one
    // over from a discovery file that wrote it later).
    if (previous !== undefined && sameEndpoints(previous.endpoints, service.endpoints)) return;
    let writers = this.#writers.get(key);
    if (writers === undefined) {
      writers = [];
      this.#writers.set(key, writers);
    }
    const at = writers.indexOf(sourceId);
    if (at >= 0) writers.splice(at, 1);
    writers.push(sourceId);
    touched.add(key);
  }

  #withdraw(sourceId: string, key: string, touched: Set<string>): void {
    const writers = this.#writers.get(key);
    if (writers === undefined) return;
    const at = writers.indexOf(sourceId);
    if (at < 0) return;
    writers.splice(at, 1);
    if (writers.length === 0) this.#writers.delete(key);
    touched.add(key);
  }

  /** Rebuild the touched services from their winning source, then tell listeners. */
  #publish(touched: Set<string>): void {
    if (touched.size === 0) return;
    const changed: string[] = [];
    for (const key of touched) {
      const writers = this.#writers.get(key);
      const winner = writers?.[writers.length - 1];
      const service =
        winner === undefined ? undefined : this.#sources.get(winner)?.services.get(key);
      const previous = this.#snapshots.get(key);
      if (service === undefined) {
        if (previous !== undefined) {
          this.#snapshots.delete(key);
          changed.push(key);
        }
        continue;
      }
      const endpoints = freezeEndpoints(service.endpoints);
      if (previous !== undefined && sameEndpoints(previous.endpoints, endpoints)) continue;
      this.#snapshots.set(
        key,
        Object.freeze({
          key,
          name: service.name,
          namespace: service.namespace,
          endpoints,
          version: ++this.#version,
        }),
      );
      changed.push(key);
    }
    this.#notify(changed);
  }

  #notify(changed: readonly string[]): void {
    // Every listener hears every change even if one throws; the first error is rethrown after,
    // when the registry is already consistent, so a buggy consumer cannot wedge discovery.
    let failure: { error: unknown } | undefined;
    for (const key of changed) {
      const snapshot = this.#snapshots.get(key);
      for (const listener of this.#listeners) {
        try {
          listener(snapshot, key);
        } catch (error) {
          failure ??= { error };
        }
      }
    }
    if (failure !== undefined) throw failure.error;
  }
}

/**
 * De-duplicated by id (first wins) and deep-frozen; frozen inputs are reused, not copied (a
 * frozen array of frozen, distinct endpoints is kept as it is).
 */
function freezeEndpoints(endpoints: readonly Endpoint[]): readonly Endpoint[] {
  if (Object.isFrozen(endpoints) && frozenAndDistinct(endpoints)) return endpoints;
  const out: Endpoint[] = [];
  const seen = new Set<string>();
  for (const endpoint of endpoints) {
    if (seen.has(endpoint.id)) continue;
    seen.add(endpoint.id);
    out.push(
      Object.isFrozen(endpoint) && Object.isFrozen(endpoint.labels)
        ? endpoint
        : Object.freeze({
            id: endpoint.id,
            host: endpoint.host,
            port: endpoint.port,
            weight: endpoint.weight,
            labels: Object.freeze({ ...endpoint.labels }),
            ready: endpoint.ready,
          }),
    );
  }
  return Object.freeze(out);
}

function frozenAndDistinct(endpoints: readonly Endpoint[]): boolean {
  const seen = new Set<string>();
  for (const endpoint of endpoints) {
    if (!Object.isFrozen(endpoint) || !Object.isFrozen(endpoint.labels) || seen.has(endpoint.id)) {
      return false;
    }
    seen.add(endpoint.id);
  }
  return true;
}

/** Same set of endpoints with the same attributes; order does not matter. */
function sameEndpoints(a: readonly Endpoint[], b: readonly Endpoint[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  const byId = new Map<string, Endpoint>();
  for (const endpoint of a) byId.set(endpoint.id, endpoint);
  for (const endpoint of b) {
    const other = byId.get(endpoint.id);
    if (other === undefined || !sameEndpoint(endpoint, other)) return false;
  }
  return true;
}

function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  if (a === b) return true;
  if (a.host !== b.host || a.port !== b.port || a.weight !== b.weight || a.ready !== b.ready) {
    return false;
  }
  const aKeys = Object.keys(a.labels);
  if (aKeys.length !== Object.keys(b.labels).length) return false;
  for (const name of aKeys) if (a.labels[name] !== b.labels[name]) return false;
  return true;
}
