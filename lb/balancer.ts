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
  /** Endpoint ids to avoid, e.g. those a retry already tried (previous-host avoidance). */
  readonly exclude?: ReadonlySet<string>;
}

/** Shared empty context, so callers with nothing to say allocate nothing per request. */
export const EMPTY_PICK_CONTEXT: PickContext = Object.freeze({});

/**
 * One load-balancing algorithm over one service's endpoints. Balancers never do I/O and rebuild
 * their state only in `update`; `pick` runs once per request attempt and must stay cheap.
 *
 * Queueing policies (first-come: wait for a free slot on some endpoint) will get an optional
 * asynchronous `acquire(ctx, signal): Promise<Endpoint | undefined>` next to `pick`; callers will
 * use it when present and fall back to `pick` otherwise, so synchronous balancers stay as they are.
 */
export interface Balancer {
  /** The canonical policy name this balancer implements, e.g. "round-robin". */
  readonly policy: string;
  /** Replace the endpoint set. Callers pass only ready endpoints. */
  update(endpoints: readonly Endpoint[]): void;
  /** Choose an endpoint; `undefined` means there is nothing to pick. */
  pick(ctx: PickContext): Endpoint | undefined;
  /** A request started on `endpoint` (least-request and first-come count these). */
  onStart?(endpoint: Endpoint): void;
  /** A request that `onStart` reported has ended; `ok` is false for failures and timeouts. */
  onEnd?(endpoint: Endpoint, ok: boolean): void;
}

/** Randomness and time are injected so tests are exact and independent sidecars differ. */
export interface BalancerOptions {
  /** Uniform in [0, 1), like Math.random. */
  readonly random: () => number;
  /** Monotonic milliseconds, like performance.now. */
  readonly clock: () => number;
}

export type BalancerFactory = (options: BalancerOptions) => Balancer;
