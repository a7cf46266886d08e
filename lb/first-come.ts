import type { Endpoint } from "../discovery/endpoint.js";
import {
  type AcquireResult,
  type Balancer,
  type BalancerOptions,
  type PickContext,
  QUEUE_FULL,
  QUEUED,
  type QueueStats,
  type SlotWaiter,
} from "./balancer.js";

/** What first-come counts (lb/balancer.ts QueueStats). */
export type FirstComeStats = QueueStats;

/** Node clamps longer timer delays to 1 ms (TimeoutOverflowWarning); longer waits re-arm. */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

/**
 * One endpoint's count of active requests, kept by id for as long as the endpoint is in the set
 * or has requests in flight. While in the set with a free slot it sits in the list of its level
 * (level = active requests), so the fewest-active endpoint is the head of the lowest non-empty
 * level: O(1) to find, O(1) to move on start and end.
 */
class EndpointSlots {
  /** The newest object discovery gave for this id (callers get the current one). */
  endpoint: Endpoint;
  active = 0;
  /** In the current set with weight > 0: may take new requests. */
  inSet = false;
  /** `update` call that last saw this id (spots duplicates and departures). */
  seen = 0;
  /** Neighbours in the level list; linked exactly when `inSet && active < maxConcurrent`. */
  prev: EndpointSlots | null = null;
  next: EndpointSlots | null = null;

  constructor(endpoint: Endpoint) {
    this.endpoint = endpoint;
  }
}

/** A queued waiter in the one FIFO queue (a doubly linked list, so `cancel` is O(1)). */
class QueueNode {
  readonly waiter: SlotWaiter;
  /** The retry's exclusions, preferred (not enforced) when several slots are free at dispatch. */
  readonly exclude: ReadonlySet<string> | undefined;
  /** Clock time at which the waiter gives up. */
  readonly deadline: number;
  prev: QueueNode | null = null;
  next: QueueNode | null = null;

  constructor(waiter: SlotWaiter, exclude: ReadonlySet<string> | undefined, deadline: number) {
    this.waiter = waiter;
    this.exclude = exclude;
    this.deadline = deadline;
  }
}

/**
 * HAProxy's `maxconn` + `timeout queue`: each endpoint serves at most `maxConcurrent` requests at
 * once; when every endpoint is full, requests wait in one FIFO queue and the head takes the first
 * slot freed on any endpoint, so dispatch order equals arrival order.
 *
 * With free slots, the endpoint with the fewest active requests wins; ties go to the endpoint that
 * has been at that count longest, which rotates among equals (the first set's order starts at a
 * random offset so sidecars started together do not all begin on one endpoint). Weights are
 * ignored except that weight 0 takes no new requests.
 *
 * Invariant outside callbacks: while the queue is not empty, no endpoint in the set has a free
 * slot. Every freed slot goes to the queue head inside `onEnd`, and `update` dispatches at once
 * to the free slots a new set brings.
 *
 * Re-entrancy: `onEnd` and `update` call `waiter.onSlot` synchronously, and the queue timer calls
 * `onQueueTimeout`. Callbacks may call back into the balancer (`onEnd` for the slot just given,
 * `acquire`, `cancel`, `update`): dispatch is a loop guarded against nesting, so the stack stays
 * flat and order stays FIFO (an `acquire` made from a callback queues behind waiters still queued).
 *
 * Queue timeouts use one timer for the whole queue: every waiter has the same timeout, so the
 * head always expires first. The timer is not cleared when the head leaves; when it fires early it
 * re-arms for the current head (one timer per `queueTimeout` under load instead of one per
 * dispatch).
 *
 * Cost: `acquire` with a free slot, `pick`, `onStart` and `onEnd` are O(1) and allocate nothing.
 * With exclusions, `acquire`/`pick` skip at most `exclude.size` endpoints plus empty levels.
 * Queueing allocates one node per waiter.
 */
export class FirstComeBalancer implements Balancer {
  readonly policy = "first-come";
  readonly #random: () => number;
  readonly #clock: () => number;
  readonly #maxConcurrent: number;
  readonly #maxQueue: number;
  readonly #queueTimeoutMs: number;

  /** Every endpoint in the set or with requests in flight, by id. */
  readonly #slots = new Map<string, EndpointSlots>();
  /** Endpoints in the current set (weight > 0), in `update` order. */
  #members: EndpointSlots[] = [];
  /** Level lists: endpoints in the set with exactly `level` active requests (< maxConcurrent). */
  readonly #heads: (EndpointSlots | null)[] = [];
  readonly #tails: (EndpointSlots | null)[] = [];
  /** Lowest non-empty level; +Infinity when no endpoint in the set has a free slot. */
  #lowest = Number.POSITIVE_INFINITY;
  #updates = 0;

  #queueHead: QueueNode | null = null;
  #queueTail: QueueNode | null = null;
  #queueLength = 0;
  readonly #nodes = new Map<SlotWaiter, QueueNode>();
  #dispatching = false;

  #timer: NodeJS.Timeout | null = null;
  /** Clock time the pending timer was set for; +Infinity when none is pending. */
  #armedAt = Number.POSITIVE_INFINITY;

  #dispatched = 0;
  #timedOut = 0;
  #rejected = 0;
  #cancelled = 0;

  constructor(options: BalancerOptions) {
    const { maxConcurrent, maxQueue, queueTimeoutMs } = options.settings;
    if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1) {
      throw new RangeError(
        `first-come needs maxConcurrent, an integer >= 1 (requests per endpoint at once); got ${maxConcurrent}`,
      );
    }
    if (!Number.isInteger(maxQueue) || maxQueue < 0) {
      throw new RangeError(`first-come needs maxQueue, an integer >= 0; got ${maxQueue}`);
    }
    if (!Number.isFinite(queueTimeoutMs) || queueTimeoutMs <= 0) {
      throw new RangeError(
        `first-come needs queueTimeoutMs, finite and > 0; got ${queueTimeoutMs}`,
      );
    }
    this.#random = options.random;
    this.#clock = options.clock;
    this.#maxConcurrent = maxConcurrent;
    this.#maxQueue = maxQueue;
    this.#queueTimeoutMs = queueTimeoutMs;
  }

  /** Requests waiting in the queue now. */
  get queued(): number {
    return this.#queueLength;
  }

  get stats(): FirstComeStats {
    return {
      dispatched: this.#dispatched,
      timedOut: this.#timedOut,
      rejected: this.#rejected,
      cancelled: this.#cancelled,
    };
  }

  activeOn(endpointId: string): number {
    return this.#slots.get(endpointId)?.active ?? 0;
  }

  update(endpoints: readonly Endpoint[]): void {
    const seen = ++this.#updates;
    const wasEmpty = this.#members.length === 0;
    const members: EndpointSlots[] = [];
    const added: EndpointSlots[] = [];
    for (const endpoint of endpoints) {
      // Callers filter weight 0 out; if one slips through it takes no new requests.
      if (!(endpoint.weight > 0)) continue;
      let slots = this.#slots.get(endpoint.id);
      if (slots === undefined) {
        slots = new EndpointSlots(endpoint);
        this.#slots.set(endpoint.id, slots);
      } else if (slots.seen === seen) {
        continue; // a duplicate id: the first one counts
      }
      slots.endpoint = endpoint;
      slots.seen = seen;
      members.push(slots);
      if (!slots.inSet) added.push(slots);
    }
    for (const slots of this.#members) {
      if (slots.seen === seen) continue;
      // Left the set: no new requests; its count stays until its requests end.
      if (slots.active < this.#maxConcurrent) this.#unlink(slots);
      slots.inSet = false;
      if (slots.active === 0) this.#slots.delete(slots.endpoint.id);
    }
    // A random start for a set that begins from nothing: sidecars that receive the same list at
    // once (rollout, cold start) would otherwise all send their first requests to one endpoint.
    const offset =
      wasEmpty && added.length > 1
        ? Math.min(added.length - 1, Math.floor(this.#random() * added.length))
        : 0;
    for (let i = 0; i < added.length; i++) {
      const slots = added[(offset + i) % added.length]!;
      slots.inSet = true;
      if (slots.active < this.#maxConcurrent) this.#link(slots);
    }
    this.#members = members;
    this.#lowest = this.#findLowest();
    this.#dispatch();
  }

  /**
   * The endpoint `acquire` would give now, without reserving it; undefined when there is no free
   * slot (or waiters are queued ahead). Callers that cannot queue use this with `onStart`.
   */
  pick(ctx: PickContext): Endpoint | undefined {
    if (this.#queueHead !== null) return undefined;
    return this.#choose(ctx.exclude)?.endpoint;
  }

  /** Count a request on `endpoint` unconditionally, even beyond `maxConcurrent` (pick fallback). */
  onStart(endpoint: Endpoint): void {
    let slots = this.#slots.get(endpoint.id);
    if (slots === undefined) {
      // Started on an endpoint that is not in the set (a pick raced an update): count it anyway
      // so its onEnd balances and a return to the set sees the request.
      slots = new EndpointSlots(endpoint);
      this.#slots.set(endpoint.id, slots);
    }
    this.#reserve(slots);
  }

  /**
   * A request counted by `acquire`, `onSlot` or `onStart` ended. When that frees a slot on an
   * endpoint in the set and waiters are queued, the head gets it now: `onSlot` runs before this
   * returns.
   */
  onEnd(endpoint: Endpoint, _ok: boolean): void {
    const slots = this.#slots.get(endpoint.id);
    if (slots === undefined || slots.active === 0) return; // not counted here: nothing to free
    const before = slots.active;
    if (!slots.inSet) {
      // Freed slots of a departed endpoint go to nobody.
      slots.active = before - 1;
      if (before === 1) this.#slots.delete(slots.endpoint.id);
      return;
    }
    if (before < this.#maxConcurrent) this.#unlink(slots);
    slots.active = before - 1;
    if (before > this.#maxConcurrent) return; // still full (onStart went past the cap)
    this.#link(slots);
    if (slots.active < this.#lowest) this.#lowest = slots.active;
    if (this.#queueHead !== null) this.#dispatch();
  }

  acquire(ctx: PickContext, waiter: SlotWaiter): AcquireResult {
    // Nothing to wait for: the caller answers 503 at once.
    if (this.#members.length === 0) return undefined;
    if (this.#queueHead === null) {
      const slots = this.#choose(ctx.exclude);
      if (slots !== undefined && !this.#mustWait(ctx.exclude, slots)) {
        this.#reserve(slots);
        return slots.endpoint;
      }
    } else if (this.#nodes.has(waiter)) {
      return QUEUED; // already waiting: it keeps its place
    }
    if (this.#queueLength >= this.#maxQueue) {
      this.#rejected++;
      return QUEUE_FULL;
    }
    const node = new QueueNode(waiter, ctx.exclude, this.#clock() + this.#queueTimeoutMs);
    const tail = this.#queueTail;
    node.prev = tail;
    if (tail === null) this.#queueHead = node;
    else tail.next = node;
    this.#queueTail = node;
    this.#queueLength++;
    this.#nodes.set(waiter, node);
    if (node.deadline < this.#armedAt) this.#arm(node.deadline);
    return QUEUED;
  }

  cancel(waiter: SlotWaiter): void {
    const node = this.#nodes.get(waiter);
    if (node === undefined) return;
    const wasHead = node === this.#queueHead;
    this.#unqueue(node);
    this.#cancelled++;
    // A head that was waiting for a host it had not tried may have left a free slot behind.
    if (wasHead && this.#queueHead !== null) this.#dispatch();
    // The timer stays: if it was set for this waiter it fires, finds the new head and re-arms.
  }

  /**
   * Fewest active requests among endpoints in the set with a free slot, preferring endpoints not
   * in `exclude`; an excluded endpoint's free slot beats queueing (a retry on a host already
   * tried beats waiting while a slot sits idle).
   */
  #choose(exclude: ReadonlySet<string> | undefined): EndpointSlots | undefined {
    const lowest = this.#lowest;
    if (lowest === Number.POSITIVE_INFINITY) return undefined;
    const heads = this.#heads;
    const first = heads[lowest]!;
    if (exclude === undefined || exclude.size === 0) return first;
    for (let level = lowest; level < heads.length; level++) {
      for (let slots = heads[level] ?? null; slots !== null; slots = slots.next) {
        if (!exclude.has(slots.endpoint.id)) return slots;
      }
    }
    return first;
  }

  /**
   * A retry whose only free choice is a host it already tried waits for another host's slot, as
   * long as the set has a host it has not tried: sending it back to the host that just refused
   * it would spend the retry on a likely failure. When it has tried every host, it goes now.
   */
  #mustWait(exclude: ReadonlySet<string> | undefined, slots: EndpointSlots): boolean {
    if (exclude === undefined || !exclude.has(slots.endpoint.id)) return false;
    const members = this.#members;
    for (let i = 0; i < members.length; i++) {
      if (!exclude.has(members[i]!.endpoint.id)) return true;
    }
    return false;
  }

  /** One more active request on `slots`; moves it up a level (or out of the lists when full). */
  #reserve(slots: EndpointSlots): void {
    const before = slots.active;
    if (!slots.inSet || before >= this.#maxConcurrent) {
      slots.active = before + 1;
      return;
    }
    this.#unlink(slots);
    slots.active = before + 1;
    if (before + 1 < this.#maxConcurrent) this.#link(slots);
    if (before === this.#lowest && this.#heads[before] === null) {
      // Everyone else is at `before + 1` or higher, and `slots` itself just moved there.
      this.#lowest = before + 1 < this.#maxConcurrent ? before + 1 : Number.POSITIVE_INFINITY;
    }
  }

  /** Append `slots` to the list of its level (its active count). */
  #link(slots: EndpointSlots): void {
    const level = slots.active;
    const heads = this.#heads;
    const tails = this.#tails;
    while (heads.length <= level) {
      heads.push(null);
      tails.push(null);
    }
    const tail = tails[level]!;
    slots.prev = tail;
    slots.next = null;
    if (tail === null) heads[level] = slots;
    else tail.next = slots;
    tails[level] = slots;
  }

  /** Remove `slots` from the list of its level; `#lowest` is the caller's to fix. */
  #unlink(slots: EndpointSlots): void {
    const level = slots.active;
    const { prev, next } = slots;
    if (prev === null) this.#heads[level] = next;
    else prev.next = next;
    if (next === null) this.#tails[level] = prev;
    else next.prev = prev;
    slots.prev = null;
    slots.next = null;
  }

  #findLowest(): number {
    const heads = this.#heads;
    for (let level = 0; level < heads.length; level++) {
      if (heads[level] !== null) return level;
    }
    return Number.POSITIVE_INFINITY;
  }

  /**
   * Give free slots to queue heads, in order, until one or the other runs out. A loop rather than
   * recursion: an `onSlot` that ends its request at once frees the slot for the next waiter here.
   */
  #dispatch(): void {
    if (this.#dispatching) return;
    this.#dispatching = true;
    try {
      while (this.#queueHead !== null && this.#lowest !== Number.POSITIVE_INFINITY) {
        const node = this.#queueHead;
        const slots = this.#choose(node.exclude)!;
        // The head waits for a slot on a host it has not tried, and everyone waits behind it.
        if (this.#mustWait(node.exclude, slots)) break;
        this.#unqueue(node);
        this.#reserve(slots);
        this.#dispatched++;
        node.waiter.onSlot(slots.endpoint);
      }
    } finally {
      this.#dispatching = false;
    }
  }

  #unqueue(node: QueueNode): void {
    const { prev, next } = node;
    if (prev === null) this.#queueHead = next;
    else prev.next = next;
    if (next === null) this.#queueTail = prev;
    else next.prev = prev;
    node.prev = null;
    node.next = null;
    this.#queueLength--;
    this.#nodes.delete(node.waiter);
  }

  #arm(at: number): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    const delay = Math.min(MAX_TIMER_DELAY_MS, Math.max(1, Math.ceil(at - this.#clock())));
    this.#timer = setTimeout(this.#expire, delay);
    this.#timer.unref();
    this.#armedAt = at;
  }

  /** The timer fired: time out every head whose deadline has passed, then re-arm for the next. */
  #expire = (): void => {
    this.#timer = null;
    this.#armedAt = Number.POSITIVE_INFINITY;
    const now = this.#clock();
    try {
      for (let node = this.#queueHead; node !== null && node.deadline <= now; ) {
        this.#unqueue(node);
        this.#timedOut++;
        node.waiter.onQueueTimeout();
        node = this.#queueHead;
      }
    } finally {
      // A callback may have queued someone (and armed for them); the head comes first.
      const head = this.#queueHead;
      if (head !== null && head.deadline < this.#armedAt) this.#arm(head.deadline);
    }
    // A head that was waiting for a host it had not tried may have left a free slot behind.
    if (this.#queueHead !== null) this.#dispatch();
  };
}
