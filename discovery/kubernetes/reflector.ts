import { KubeApiError, KubeProtocolError, WatchCutError } from "./api-error.js";
import { Backoff, realTimers, type Timers } from "./backoff.js";
import { LineSplitter } from "./ndjson.js";
import type { KubeList, KubeObject, KubeStatus, WatchEvent } from "./wire.js";

/** One resource collection as the reflector reads it (client.ts implements it over HTTP). */
export interface ResourceApi<T extends KubeObject> {
  /** `endpointslices.discovery.k8s.io`, for logs and the RBAC hint. */
  readonly resource: string;
  /** undefined = all namespaces. */
  readonly namespace: string | undefined;
  /** One page of a list; rejects with KubeApiError for error statuses. */
  list(query: ListQuery, signal: AbortSignal): Promise<KubeList<T>>;
  /**
   * One watch: each chunk of its body, raw bytes, goes to `onChunk` as it is read. Resolves
   * when the server ends the body; rejects with KubeApiError for an error status, with what
   * `onChunk` threw (the watch is then closed), or with the network error or abort.
   */
  watch(
    query: WatchQuery,
    signal: AbortSignal,
    onChunk: (chunk: Uint8Array) => void,
  ): Promise<void>;
}

export interface ListQuery {
  readonly limit: number;
  readonly continue?: string;
}

export interface WatchQuery {
  readonly resourceVersion: string;
  readonly timeoutSeconds: number;
  readonly allowWatchBookmarks: true;
}

/** Where the reflector delivers what it reads, in order. */
export interface ReflectorHandler<T> {
  /** A complete list (the first, or a relist after 410 or resync): the whole state, at once. */
  replace(items: readonly T[]): void;
  /** One watch event, in the order the server sent them. */
  apply(type: "ADDED" | "MODIFIED" | "DELETED", object: T): void;
  /**
   * Optional: offered each watch line before it is parsed. A handler that keeps the event to
   * apply later itself (in order for its object, before any later event of it) returns the
   * event's resourceVersion ("" when it has none); undefined = parse and `apply` it now. A line
   * it keeps counts as an applied event. It must not keep a line that is not valid JSON or not
   * an ADDED, MODIFIED or DELETED event: those are the reflector's to fail on.
   */
  hold?(line: string): string | undefined;
}

/** Why a list or watch started again, the `reason` label of the restarts metric. */
export type RestartReason =
  | "closed"
  | "expired"
  | "unauthorized"
  | "forbidden"
  | "throttled"
  | "server_error"
  | "http_error"
  | "network"
  | "cut"
  | "invalid_json"
  | "stalled"
  | "resync";

export interface ReflectorLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface ReflectorOptions {
  readonly logger?: ReflectorLogger;
  readonly timers?: Timers;
  readonly random?: () => number;
  /** Monotonic-enough ms clock for "a watch that ended at once"; default Date.now. */
  readonly now?: () => number;
  readonly pageSize?: number;
  /** Relist every this many ms even without failures (0 = never; config `resync`). */
  readonly resyncMs?: number;
  /** Called after each successful full list. */
  readonly onSynced?: () => void;
  /** Every restart of the list/watch loop, and the delay before it (0 = at once). */
  readonly onRestart?: (reason: RestartReason, delayMs: number) => void;
  /** Every event applied (ADDED/MODIFIED/DELETED). */
  readonly onEvent?: () => void;
  /** A 401: credentials must be reloaded before the next attempt. */
  readonly onUnauthorized?: () => void;
}

/** A watch that ends cleanly this soon without one event is treated as a failure (client-go's). */
const SHORT_WATCH_MS = 1000;
/** Beyond the server's timeoutSeconds, how long a silent watch may hang before it is cut. */
const STALL_GRACE_MS = 30_000;

const noopLogger: ReflectorLogger = { info: () => {}, warn: () => {} };

class Stalled extends Error {}
class Resync extends Error {}

/**
 * client-go's reflector, small: list (paged with limit/continue), then watch from the list's
 * resourceVersion with bookmarks and a jittered timeoutSeconds of 300–600; events are applied in
 * order and move the resourceVersion on, as do bookmarks.
 *
 * - A watch that ends normally is opened again from the last resourceVersion, without a list.
 * - 410 Gone (HTTP status or an ERROR event with a Status of code 410) → a fresh list, delivered
 *   as one `replace`, so objects deleted while the watch was down disappear; at once the first
 *   time, with backoff if the fresh list is itself expired.
 * - Everything else (refused, 401, 403, 429, 5xx, a stream cut inside an event, invalid JSON, a
 *   stalled stream) → backoff (backoff.ts); 429 waits for Retry-After when it is given. What was
 *   applied stays applied: a failure never clears the handler's state.
 */
export class Reflector<T extends KubeObject> {
  readonly #api: ResourceApi<T>;
  readonly #handler: ReflectorHandler<T>;
  readonly #logger: ReflectorLogger;
  readonly #timers: Timers;
  readonly #random: () => number;
  readonly #now: () => number;
  readonly #pageSize: number;
  readonly #resyncMs: number;
  readonly #options: ReflectorOptions;
  readonly #backoff: Backoff;
  #resourceVersion: string | undefined;
  #synced = false;
  #stopped = true;
  #controller: AbortController | undefined;
  #wake: (() => void) | undefined;
  #sleepTimer: unknown;
  #loop: Promise<void> = Promise.resolve();
  #expiredStreak = 0;
  #nextResyncAt = 0;

  constructor(api: ResourceApi<T>, handler: ReflectorHandler<T>, options: ReflectorOptions = {}) {
    this.#api = api;
    this.#handler = handler;
    this.#options = options;
    this.#logger = options.logger ?? noopLogger;
    this.#timers = options.timers ?? realTimers;
    this.#random = options.random ?? Math.random;
    this.#now = options.now ?? Date.now;
    this.#pageSize = options.pageSize ?? 500;
    this.#resyncMs = options.resyncMs ?? 0;
    this.#backoff = new Backoff(this.#random);
  }

  /** True once a first list has been delivered. */
  get synced(): boolean {
    return this.#synced;
  }

  get resourceVersion(): string | undefined {
    return this.#resourceVersion;
  }

  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    this.#loop = this.#run();
  }

  /** Abort the request in flight and end the loop; resolves when it has ended. */
  stop(): Promise<void> {
    this.#stopped = true;
    this.#controller?.abort();
    if (this.#sleepTimer !== undefined) this.#timers.clearTimeout(this.#sleepTimer);
    this.#wake?.();
    return this.#loop;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      let reason: RestartReason;
      let delayMs = 0;
      try {
        if (this.#resourceVersion === undefined) await this.#list();
        // stop() may have come while the list's answer was on its way: no watch after it.
        if (this.#stopped) return;
        const progressed = await this.#watch(this.#resourceVersion as string);
        reason = "closed";
        if (!progressed.events && progressed.elapsedMs < SHORT_WATCH_MS) {
          // A server that closes every watch at once must not be re-watched in a hot loop.
          delayMs = this.#backoff.next();
        }
      } catch (error) {
        if (this.#stopped) return;
        ({ reason, delayMs } = this.#failed(error));
      }
      if (this.#stopped) return;
      this.#options.onRestart?.(reason, delayMs);
      if (delayMs > 0) await this.#sleep(delayMs);
    }
  }

  /** Classify a failure, log it in words, and say how long to wait. */
  #failed(error: unknown): { reason: RestartReason; delayMs: number } {
    const phase = this.#resourceVersion === undefined ? "list" : "watch";
    const where =
      this.#api.namespace === undefined ? "all namespaces" : `namespace ${this.#api.namespace}`;
    const log = { resource: this.#api.resource, namespace: this.#api.namespace, phase };
    if (error instanceof Resync) {
      this.#resourceVersion = undefined;
      return { reason: "resync", delayMs: 0 };
    }
    if (error instanceof KubeApiError && error.status === 410) {
      this.#resourceVersion = undefined;
      this.#expiredStreak++;
      this.#logger.info({ ...log, err: error.message }, "resource version expired; listing again");
      return { reason: "expired", delayMs: this.#expiredStreak > 1 ? this.#backoff.next() : 0 };
    }
    let reason: RestartReason;
    let delayMs: number | undefined;
    if (error instanceof KubeApiError) {
      if (error.status === 401) {
        reason = "unauthorized";
        this.#options.onUnauthorized?.();
        this.#logger.warn(
          { ...log, err: error.message },
          "Kubernetes API rejected the credentials; reloading the token",
        );
      } else if (error.status === 403) {
        reason = "forbidden";
        this.#logger.warn(
          { ...log, err: error.message },
          `forbidden: the service account may not ${phase} ${this.#api.resource} in ${where}; grant get, list and watch on it (deploy/rbac.yaml)`,
        );
      } else if (error.status === 429) {
        reason = "throttled";
        delayMs = error.retryAfterMs;
      } else {
        reason = error.status >= 500 ? "server_error" : "http_error";
      }
    } else if (error instanceof KubeProtocolError) {
      reason = "invalid_json";
    } else if (error instanceof WatchCutError) {
      reason = "cut";
    } else if (error instanceof Stalled) {
      reason = "stalled";
    } else {
      reason = "network";
    }
    const wait = delayMs ?? this.#backoff.next();
    if (delayMs !== undefined) this.#backoff.next();
    if (reason !== "forbidden" && reason !== "unauthorized") {
      this.#logger.warn(
        { ...log, reason, retryInMs: wait, err: (error as Error)?.message },
        "Kubernetes list/watch failed; keeping the last known endpoints",
      );
    }
    return { reason, delayMs: wait };
  }

  async #list(): Promise<void> {
    const items: T[] = [];
    let continueToken: string | undefined;
    let resourceVersion = "";
    const controller = this.#begin();
    try {
      do {
        const page = await this.#api.list(
          { limit: this.#pageSize, ...(continueToken ? { continue: continueToken } : {}) },
          controller.signal,
        );
        if (!Array.isArray(page.items ?? []) || typeof page.metadata !== "object") {
          throw new KubeProtocolError(
            `${this.#api.resource}: a list answer without items or metadata`,
          );
        }
        for (const item of page.items ?? []) items.push(item);
        resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
        continueToken = page.metadata?.continue || undefined;
      } while (continueToken !== undefined);
    } finally {
      this.#controller = undefined;
    }
    if (this.#stopped) return;
    this.#handler.replace(items);
    this.#resourceVersion = resourceVersion;
    this.#synced = true;
    this.#expiredStreak = 0;
    this.#backoff.reset();
    this.#nextResyncAt = this.#resyncMs > 0 ? this.#now() + this.#resyncMs : 0;
    this.#options.onSynced?.();
  }

  /** One watch, until the stream ends; throws for anything but a clean end. */
  async #watch(from: string): Promise<{ events: boolean; elapsedMs: number }> {
    const started = this.#now();
    // Jittered so the sidecars of a cluster do not all re-watch in the same second.
    const timeoutSeconds = 300 + Math.floor(this.#random() * 301);
    const controller = this.#begin();
    let aborted: Error | undefined;
    const abortWith = (error: Error) => {
      aborted = error;
      controller.abort();
    };
    const stall = this.#timers.setTimeout(
      () => abortWith(new Stalled(`no end of watch ${timeoutSeconds}s + grace`)),
      timeoutSeconds * 1000 + STALL_GRACE_MS,
    );
    const resyncIn = this.#nextResyncAt > 0 ? Math.max(0, this.#nextResyncAt - this.#now()) : -1;
    const resync =
      resyncIn >= 0
        ? this.#timers.setTimeout(() => abortWith(new Resync("resync")), resyncIn)
        : undefined;
    let events = false;
    const splitter = new LineSplitter();
    try {
      await this.#api.watch(
        { resourceVersion: from, timeoutSeconds, allowWatchBookmarks: true },
        controller.signal,
        (chunk) => {
          for (const line of splitter.push(chunk)) {
            if (this.#stopped) return;
            if (this.#event(line)) events = true;
          }
        },
      );
      if (this.#stopped) return { events, elapsedMs: this.#now() - started };
      if (splitter.pendingBytes > 0) {
        throw new WatchCutError(
          `watch stream ended inside an event (${splitter.pendingBytes} bytes)`,
        );
      }
      return { events, elapsedMs: this.#now() - started };
    } catch (error) {
      throw aborted ?? error;
    } finally {
      this.#timers.clearTimeout(stall);
      if (resync !== undefined) this.#timers.clearTimeout(resync);
      this.#controller = undefined;
    }
  }

  /** Apply one line; true when it was an object event (progress). */
  #event(line: string): boolean {
    const held = this.#handler.hold?.(line);
    if (held !== undefined) {
      this.#applied(held);
      return true;
    }
    let event: WatchEvent;
    try {
      event = JSON.parse(line) as WatchEvent;
    } catch {
      throw new KubeProtocolError(
        `${this.#api.resource}: a watch line that is not JSON: ${line.slice(0, 120)}`,
      );
    }
    if (
      typeof event !== "object" ||
      event === null ||
      typeof event.object !== "object" ||
      event.object === null
    ) {
      throw new KubeProtocolError(
        `${this.#api.resource}: a watch line that is not an event: ${line.slice(0, 120)}`,
      );
    }
    switch (event.type) {
      case "ADDED":
      case "MODIFIED":
      case "DELETED":
        this.#handler.apply(event.type, event.object as T);
        this.#applied(event.object.metadata?.resourceVersion);
        return true;
      case "BOOKMARK":
        this.#advance(event.object.metadata?.resourceVersion);
        return false;
      case "ERROR": {
        const status = event.object as KubeStatus;
        throw new KubeApiError(status.code ?? 500, status);
      }
      default:
        throw new KubeProtocolError(
          `${this.#api.resource}: unknown watch event type ${String(event.type)}`,
        );
    }
  }

  /** An object event was applied (or held): progress. */
  #applied(resourceVersion: string | undefined): void {
    this.#advance(resourceVersion);
    this.#backoff.reset();
    this.#expiredStreak = 0;
    this.#options.onEvent?.();
  }

  #advance(resourceVersion: string | undefined): void {
    if (resourceVersion) this.#resourceVersion = resourceVersion;
  }

  #begin(): AbortController {
    const controller = new AbortController();
    this.#controller = controller;
    return controller;
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = () => {
        this.#wake = undefined;
        this.#sleepTimer = undefined;
        resolve();
      };
      this.#sleepTimer = this.#timers.setTimeout(() => this.#wake?.(), ms);
    });
  }
}
