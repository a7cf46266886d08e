import type { Endpoint } from "../discovery/endpoint.js";

/**
 * What the data path knows about a request when it asks for an endpoint. Like Envoy's
 * `LoadBalancerContext`, every field may be missing and a balancer must cope without it.
 */
export interface PickContext {
  /** Request header fields, flat `[name, value, name, value, ...]` as the codec keeps them. */
  readonly headers?: readonly string[];
  /** Downstream peer address, for source-affine policies (ring-hash, maglev). */
  readonly sourceAddress?: string;
  /** The request target as forwarded (origin-form, query included), for `httpQueryParameterName`. */
  readonly path?: string;
  /** Endpoint ids to avoid, e.g. those a retry already tried (previous-host avoidance). */
  readonly exclude?: ReadonlySet<string>;
  /**
   * A hash key the caller chose, used by ring-hash and maglev instead of their configured
   * source: the value of a sticky cookie remora generates for a request that had none
   * (`httpCookie.ttl`), so this request lands where the cookie will send the next ones.
   */
  readonly hashKey?: string;
}

/** Shared empty context, so callers with nothing to say allocate nothing per request. */
export const EMPTY_PICK_CONTEXT: PickContext = Object.freeze({});

/**
 * Told when a queued request gets its endpoint or gives up. Queueing balancers call back
 * instead of returning a promise: the common case (a free slot) stays synchronous and
 * allocation-free, as `UpstreamPool.acquire` does for connections.
 */
export interface SlotWaiter {
  /** A slot on `endpoint` is reserved for this waiter (it counts as `onStart`). */
  onSlot(endpoint: Endpoint): void;
  /** The waiter waited `queueTimeout` without a slot; it is no longer queued. */
  onQueueTimeout(): void;
}

/** `acquire` could not give a slot now and queued the waiter. */
export const QUEUED = "queued";
/** `acquire` could not give a slot now and the queue is full: answer 503 (UO) at once. */
export const QUEUE_FULL = "full";
export type AcquireResult = Endpoint | typeof QUEUED | typeof QUEUE_FULL | undefined;

/**
 * One load-balancing algorithm over one service's endpoints. Balancers never do I/O and rebuild
 * their state only in `update`; `pick` runs once per request attempt and must stay cheap.
 *
 * Callers filter first: `update` receives only endpoints that may take new requests (ready,
 * healthy or in panic, weight above 0). In-flight requests on an endpoint that left the set
 * still end with `onEnd`, so balancers that count requests must keep counts by endpoint id
 * across updates.
 */
export interface Balancer {
  /** The canonical policy name this balancer implements, e.g. "round-robin". */
  readonly policy: string;
  /** Replace the endpoint set. */
  update(endpoints: readonly Endpoint[]): void;
  /** Choose an endpoint; `undefined` means there is nothing to pick. */
  pick(ctx: PickContext): Endpoint | undefined;
  /** A request started on `endpoint` (least-request counts these). Not called after `acquire`. */
  onStart?(endpoint: Endpoint): void;
  /** A request that `onStart` or `acquire` counted has ended; `ok` is false for failures and timeouts. */
  onEnd?(endpoint: Endpoint, ok: boolean): void;
  /**
   * Queueing policies (first-come): reserve a slot on an endpoint now (the result counts as
   * `onStart`), or queue `waiter` (`QUEUED`) and call it back later, or refuse (`QUEUE_FULL`).
   * `undefined`: no endpoints at all. Callers use it when present instead of `pick`/`onStart`.
   */
  acquire?(ctx: PickContext, waiter: SlotWaiter): AcquireResult;
  /** Remove a queued waiter (its client went away). No-op when it is not queued. */
  cancel?(waiter: SlotWaiter): void;
  /** Requests waiting in the queue now (admin API, metrics). */
  readonly queued?: number;
  /** What became of queued requests since the balancer was built (metrics). */
  readonly stats?: QueueStats;
  /** Active requests per endpoint id, as the balancer counts them (admin API). */
  activeOn?(endpointId: string): number;
}

/** Outcomes of a queueing balancer's waiters, counted since it was built. */
export interface QueueStats {
  /** Waiters that left the queue with a slot (`onSlot`). */
  readonly dispatched: number;
  /** Waiters that waited `queueTimeout` and got `onQueueTimeout`. */
  readonly timedOut: number;
  /** `acquire` calls answered `QUEUE_FULL` (503 UO at once). */
  readonly rejected: number;
  /** Waiters removed by `cancel` (their client went away). */
  readonly cancelled: number;
}

/**
 * `trafficPolicy.loadBalancer` as validated by the config schema (Istio's DestinationRule
 * names; durations in ms). Every balancer receives all of it and reads what it needs.
 */
export interface LoadBalancerSettings {
  /** Canonical policy name (aliases resolved), or "module" for a user's balancer. */
  readonly policy: string;
  /** first-come: requests per endpoint at once; 0 for other policies. */
  readonly maxConcurrent: number;
  /** first-come: requests that may wait for a slot. */
  readonly maxQueue: number;
  /** first-come: how long a request may wait for a slot. */
  readonly queueTimeoutMs: number;
  /** least-request: endpoints sampled per pick (Envoy's choice_count, default 2). */
  readonly choiceCount: number;
  /**
   * Percent of healthy endpoints below which every endpoint is used again (Envoy's panic
   * threshold; 0 = never). Applied by the caller when it filters endpoints, not by balancers.
   */
  readonly panicThreshold: number;
  /** ring-hash and maglev: where the key comes from and the table sizes. */
  readonly consistentHash: ConsistentHashSettings | undefined;
  /** A user's balancer: absolute path of its module and its `options` from config. */
  readonly module:
    | { readonly path: string; readonly options: Readonly<Record<string, unknown>> }
    | undefined;
}

/** Istio's `consistentHash`: exactly one key source, plus the table sizes. */
export interface ConsistentHashSettings {
  /** Hash this request header's value (name lower-case). */
  readonly httpHeaderName?: string;
  /** Hash this cookie's value. */
  readonly httpCookie?: { readonly name: string; readonly ttlMs: number; readonly path?: string };
  /** Hash the downstream peer's IP address. */
  readonly useSourceIp?: boolean;
  /** Hash this query parameter's value. */
  readonly httpQueryParameterName?: string;
  /** ring-hash: at least this many points on the ring (Envoy's minimum_ring_size). */
  readonly minimumRingSize: number;
  /** maglev: lookup table size, a prime (Envoy's table_size). */
  readonly tableSize: number;
}

/** Randomness and time are injected so tests are exact and independent sidecars differ. */
export interface BalancerOptions {
  /** Uniform in [0, 1), like Math.random. */
  readonly random: () => number;
  /** Monotonic milliseconds, like performance.now. */
  readonly clock: () => number;
  readonly settings: LoadBalancerSettings;
}

export type BalancerFactory = (options: BalancerOptions) => Balancer;

/** Settings of a plain round-robin service: what the schema gives `loadBalancer: {}`. */
export const DEFAULT_LB_SETTINGS: LoadBalancerSettings = Object.freeze({
  policy: "round-robin",
  maxConcurrent: 0,
  maxQueue: 1024,
  queueTimeoutMs: 5000,
  choiceCount: 2,
  panicThreshold: 50,
  consistentHash: undefined,
  module: undefined,
});
