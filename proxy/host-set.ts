import type { Endpoint } from "../discovery/endpoint.js";
import type {
  AcquireResult,
  Balancer,
  BalancerFactory,
  LoadBalancerSettings,
  PickContext,
  QueueStats,
  SlotWaiter,
} from "../lb/balancer.js";
import { matchesLabels, selectHosts } from "../lb/host-set.js";
import { createBalancer } from "../lb/registry.js";
import { BucketTally } from "./metrics/family.js";

/** Queue-wait buckets (ms): a queued request normally waits for one response to finish. */
export const QUEUE_WAIT_BUCKETS: readonly number[] = Object.freeze([
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000,
]);

/**
 * The endpoints one balancer serves: a whole service, or one DestinationRule subset of it
 * (endpoints whose labels match). It filters the service's snapshot (ready, healthy or panic,
 * weight above 0; lb/host-set.ts) before the balancer sees it.
 *
 * A request keeps the Balancer it started on (see HttpSession): when a reload replaces the
 * balancer, in-flight requests end on the old one and queued ones wait there.
 */
export class HostSet {
  /** "" for the whole service, else the subset's name. */
  readonly subset: string;
  readonly selector: Readonly<Record<string, string>>;
  /** The selector is `{}` (the whole service): every endpoint is this set's, no filter needed. */
  readonly #selectsAll: boolean;
  #balancer: Balancer;
  #settings: LoadBalancerSettings;
  #sticky: StickyCookie | undefined;
  #selected: readonly Endpoint[] = [];
  /** Queue outcomes of balancers this set replaced (reloads), so the totals never go back. */
  #retired = { dispatched: 0, timedOut: 0, rejected: 0, cancelled: 0 };
  #panic = false;
  /** How long requests dispatched from a queue waited (first-come), for metrics. */
  readonly queueWait = new BucketTally(QUEUE_WAIT_BUCKETS);

  constructor(
    subset: string,
    selector: Readonly<Record<string, string>>,
    settings: LoadBalancerSettings,
    module: BalancerFactory | undefined,
  ) {
    this.subset = subset;
    this.selector = selector;
    this.#selectsAll = Object.keys(selector).length === 0;
    this.#settings = settings;
    this.#sticky = stickyCookie(settings);
    this.#balancer = createBalancer(settings, undefined, module);
  }

  get balancer(): Balancer {
    return this.#balancer;
  }

  get settings(): LoadBalancerSettings {
    return this.#settings;
  }

  /**
   * Istio's `httpCookie` with a `ttl`: a request without the cookie gets one generated (and its
   * endpoint chosen by it), sent back in Set-Cookie. Undefined when the policy does not do that.
   */
  get stickyCookie(): StickyCookie | undefined {
    return this.#sticky;
  }

  /** Endpoints new requests may go to now. */
  get selected(): readonly Endpoint[] {
    return this.#selected;
  }

  get panic(): boolean {
    return this.#panic;
  }

  /** A new snapshot (all of the service's endpoints) or a health change. */
  update(endpoints: readonly Endpoint[], isHealthy: (endpoint: Endpoint) => boolean): void {
    const mine = this.#selectsAll
      ? endpoints
      : endpoints.filter((endpoint) => matchesLabels(endpoint.labels, this.selector));
    const selection = selectHosts(mine, isHealthy, this.#settings.panicThreshold);
    this.#selected = selection.endpoints;
    this.#panic = selection.panic;
    this.#balancer.update(selection.endpoints);
  }

  /** A new balancer (config reload) built from the current selection. */
  replace(settings: LoadBalancerSettings, module: BalancerFactory | undefined): void {
    this.#retired = this.queueStats() ?? this.#retired;
    this.#settings = settings;
    this.#sticky = stickyCookie(settings);
    this.#balancer = createBalancer(settings, undefined, module);
    this.#balancer.update(this.#selected);
  }

  /** Queue outcomes since start (queueing balancers only; undefined otherwise). */
  queueStats(): QueueStats | undefined {
    const now = this.#balancer.stats;
    if (now === undefined) return undefined;
    const before = this.#retired;
    return {
      dispatched: before.dispatched + now.dispatched,
      timedOut: before.timedOut + now.timedOut,
      rejected: before.rejected + now.rejected,
      cancelled: before.cancelled + now.cancelled,
    };
  }

  pick(ctx: PickContext): Endpoint | undefined {
    return this.#balancer.pick(ctx);
  }

  /** A slot now, or queued (first-come); plain balancers pick and count the start. */
  acquire(ctx: PickContext, waiter: SlotWaiter): AcquireResult {
    const balancer = this.#balancer;
    if (balancer.acquire !== undefined) return balancer.acquire(ctx, waiter);
    const endpoint = balancer.pick(ctx);
    if (endpoint !== undefined) balancer.onStart?.(endpoint);
    return endpoint;
  }
}

/** A cookie remora generates for consistent hashing (Envoy's generated cookie). */
export interface StickyCookie {
  readonly name: string;
  /** `; Max-Age=N; Path=P; HttpOnly`, appended after `name=value`. */
  readonly attributes: string;
}

function stickyCookie(settings: LoadBalancerSettings): StickyCookie | undefined {
  const cookie = settings.consistentHash?.httpCookie;
  if (cookie === undefined || cookie.ttlMs <= 0) return undefined;
  const path = cookie.path === undefined ? "" : `; Path=${cookie.path}`;
  return {
    name: cookie.name,
    attributes: `; Max-Age=${Math.max(1, Math.floor(cookie.ttlMs / 1000))}${path}; HttpOnly`,
  };
}
