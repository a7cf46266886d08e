import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { Endpoint } from "../discovery/endpoint.js";
import {
  DEFAULT_LB_SETTINGS,
  EMPTY_PICK_CONTEXT,
  type LoadBalancerSettings,
  type PickContext,
  QUEUE_FULL,
  QUEUED,
  type SlotWaiter,
} from "./balancer.js";
import { FirstComeBalancer } from "./first-come.js";
import { createBalancer, isKnownPolicy, knownPolicies } from "./registry.js";
import { seededRandom } from "./testing.js";

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
});
afterEach(() => {
  vi.useRealTimers();
});

function endpoint(port: number, weight = 1): Endpoint {
  return { id: `10.0.0.1:${port}`, host: "10.0.0.1", port, weight, labels: {}, ready: true };
}

const [a, b, c, d] = [endpoint(1), endpoint(2), endpoint(3), endpoint(4)] as const;

const TIMEOUT = 1000;

function settings(over: Partial<LoadBalancerSettings> = {}): LoadBalancerSettings {
  return {
    ...DEFAULT_LB_SETTINGS,
    policy: "first-come",
    maxConcurrent: 1,
    maxQueue: 1024,
    queueTimeoutMs: TIMEOUT,
    ...over,
  };
}

function balancer(
  over: Partial<LoadBalancerSettings> = {},
  random: () => number = () => 0,
): FirstComeBalancer {
  return new FirstComeBalancer({
    random,
    clock: () => performance.now(),
    settings: settings(over),
  });
}

/** Everything every waiter heard, in order: "w0>2" (slot on port 2), "w0 timeout". */
let events: string[] = [];
beforeEach(() => {
  events = [];
});

class Waiter implements SlotWaiter {
  readonly name: string;
  endpoint: Endpoint | undefined;
  timedOut = false;
  /** Runs inside onSlot after recording, for re-entrancy tests. */
  afterSlot: ((endpoint: Endpoint) => void) | undefined;
  afterTimeout: (() => void) | undefined;

  constructor(name: string) {
    this.name = name;
  }

  onSlot(endpoint: Endpoint): void {
    expect(this.endpoint).toBeUndefined();
    expect(this.timedOut).toBe(false);
    this.endpoint = endpoint;
    events.push(`${this.name}>${endpoint.port}`);
    this.afterSlot?.(endpoint);
  }

  onQueueTimeout(): void {
    expect(this.endpoint).toBeUndefined();
    expect(this.timedOut).toBe(false);
    this.timedOut = true;
    events.push(`${this.name} timeout`);
    this.afterTimeout?.();
  }
}

const nobody: SlotWaiter = {
  onSlot() {
    throw new Error("a request given a slot at once must not be called back");
  },
  onQueueTimeout() {
    throw new Error("a request given a slot at once must not be called back");
  },
};

/** Ports of `count` acquires that must each get a slot at once. */
function grants(lb: FirstComeBalancer, count: number, ctx: PickContext = EMPTY_PICK_CONTEXT) {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const result = lb.acquire(ctx, nobody);
    if (typeof result !== "object") throw new Error(`expected an endpoint, got ${result}`);
    out.push(result.port);
  }
  return out;
}

/** `count` new waiters, each of which must be queued. */
function queue(lb: FirstComeBalancer, count: number, from = 0, ctx = EMPTY_PICK_CONTEXT) {
  const waiters: Waiter[] = [];
  for (let i = from; i < from + count; i++) {
    const waiter = new Waiter(`w${i}`);
    expect(lb.acquire(ctx, waiter)).toBe(QUEUED);
    waiters.push(waiter);
  }
  return waiters;
}

function active(lb: FirstComeBalancer, ...endpoints: Endpoint[]): number[] {
  return endpoints.map((endpoint) => lb.activeOn(endpoint.id));
}

describe("FirstComeBalancer: free slots", () => {
  it("reports its canonical policy name and is registered under it and FIRST_COME", () => {
    expect(balancer().policy).toBe("first-come");
    expect(knownPolicies()).toContain("first-come");
    expect(knownPolicies()).toContain("FIRST_COME");
    expect(isKnownPolicy("FIRST_COME")).toBe(true);
    const made = createBalancer(settings({ maxConcurrent: 2 }), {
      random: () => 0.5,
      clock: () => performance.now(),
    });
    expect(made).toBeInstanceOf(FirstComeBalancer);
    expect(made.policy).toBe("first-come");
    // The injected random reaches it: the rotation starts half-way through the set.
    made.update([a, b, c, d]);
    expect(made.pick(EMPTY_PICK_CONTEXT)).toBe(c);
  });

  it("rejects settings it cannot honour, once, in the constructor", () => {
    expect(() => balancer({ maxConcurrent: 0 })).toThrow(RangeError);
    expect(() => balancer({ maxConcurrent: 1.5 })).toThrow(/maxConcurrent/);
    expect(() => balancer({ maxQueue: -1 })).toThrow(/maxQueue/);
    expect(() => balancer({ queueTimeoutMs: 0 })).toThrow(/queueTimeoutMs/);
    expect(() => balancer({ queueTimeoutMs: Number.POSITIVE_INFINITY })).toThrow(/queueTimeoutMs/);
    // What `createBalancer("first-come")` passes (maxConcurrent 0 of the other policies' defaults).
    expect(() => createBalancer("first-come")).toThrow(/maxConcurrent/);
  });

  it("picks the endpoint with the fewest active requests", () => {
    const lb = balancer({ maxConcurrent: 3 });
    lb.update([a, b, c]);
    expect(grants(lb, 6)).toEqual([1, 2, 3, 1, 2, 3]);
    lb.onEnd(b, true);
    expect(grants(lb, 1)).toEqual([2]);
    lb.onEnd(c, true);
    lb.onEnd(c, true);
    lb.onEnd(a, false);
    // c has 0, a has 1: c first, then a and c tie at 1 (a reached 1 first).
    expect(grants(lb, 3)).toEqual([3, 1, 3]);
    expect(active(lb, a, b, c)).toEqual([2, 2, 2]);
  });

  it("rotates among endpoints with equal counts", () => {
    const lb = balancer({ maxConcurrent: 1 });
    lb.update([a, b, c]);
    const ports: number[] = [];
    for (let i = 0; i < 7; i++) {
      const [port] = grants(lb, 1);
      ports.push(port!);
      lb.onEnd(endpoint(port!), true);
    }
    expect(ports).toEqual([1, 2, 3, 1, 2, 3, 1]);
  });

  it("starts the rotation at a random offset, only when the set starts from empty", () => {
    const start = (random: number) => {
      const lb = balancer({ maxConcurrent: 2 }, () => random);
      lb.update([a, b, c, d]);
      return grants(lb, 5);
    };
    expect(start(0)).toEqual([1, 2, 3, 4, 1]);
    expect(start(0.5)).toEqual([3, 4, 1, 2, 3]);
    expect(start(0.99)).toEqual([4, 1, 2, 3, 4]);
    // A misbehaving random() returning 1 must not index past the end.
    expect(start(1)).toEqual([4, 1, 2, 3, 4]);

    let calls = 0;
    const lb = balancer({}, () => {
      calls++;
      return 0;
    });
    lb.update([a, b]);
    lb.update([a, b, c]);
    expect(calls).toBe(1);
    lb.update([]);
    lb.update([a, b]);
    expect(calls).toBe(2);
  });

  it("keeps each endpoint's place in the rotation across updates", () => {
    const lb = balancer({ maxConcurrent: 1 });
    lb.update([a, b, c]);
    const [first] = grants(lb, 1);
    lb.onEnd(endpoint(first!), true); // a goes to the back: b, c, a
    lb.update([c, b, a, d]); // d is new: after the others
    const ports: number[] = [];
    for (let i = 0; i < 5; i++) {
      const [port] = grants(lb, 1);
      ports.push(port!);
      lb.onEnd(endpoint(port!), true);
    }
    expect(ports).toEqual([2, 3, 1, 4, 2]);
  });

  it("returns undefined with no endpoints, for acquire and pick, and queues nobody", () => {
    const lb = balancer();
    const waiter = new Waiter("w0");
    expect(lb.acquire(EMPTY_PICK_CONTEXT, waiter)).toBeUndefined();
    expect(lb.pick(EMPTY_PICK_CONTEXT)).toBeUndefined();
    lb.update([a]);
    lb.update([]);
    expect(lb.acquire(EMPTY_PICK_CONTEXT, waiter)).toBeUndefined();
    expect(lb.queued).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    expect(lb.stats).toEqual({ dispatched: 0, timedOut: 0, rejected: 0, cancelled: 0 });
  });

  it("gives weight-0 endpoints no new requests", () => {
    const lb = balancer({ maxConcurrent: 2 });
    lb.update([endpoint(1, 0), b]);
    expect(grants(lb, 2)).toEqual([2, 2]);
    expect(lb.acquire(EMPTY_PICK_CONTEXT, new Waiter("w0"))).toBe(QUEUED);
    const only = balancer();
    only.update([endpoint(1, 0)]);
    expect(only.acquire(EMPTY_PICK_CONTEXT, new Waiter("w1"))).toBeUndefined();
  });

  it("counts a duplicate id once", () => {
    const lb = balancer({ maxConcurrent: 1 });
    lb.update([a, a, b]);
    expect(grants(lb, 2)).toEqual([1, 2]);
    expect(lb.acquire(EMPTY_PICK_CONTEXT, new Waiter("w0"))).toBe(QUEUED);
  });

  it("hands out the newest endpoint object for an id", () => {
    const lb = balancer({ maxConcurrent: 1 });
    lb.update([a]);
    const renewed = { ...a, labels: { version: "v2" } };
    lb.update([renewed]);
    expect(lb.acquire(EMPTY_PICK_CONTEXT, nobody)).toBe(renewed);
  });
});

describe("FirstComeBalancer: caps and the FIFO queue", () => {
  it("never gives an endpoint more than maxConcurrent", () => {
    const lb = balancer({ maxConcurrent: 2 });
    lb.update([a, b]);
    expect(grants(lb, 4)).toEqual([1, 2, 1, 2]);
    const [w0] = queue(lb, 1);
    expect(active(lb, a, b)).toEqual([2, 2]);
    lb.onEnd(a, true);
    expect(w0!.endpoint).toBe(a);
    expect(active(lb, a, b)).toEqual([2, 2]);
    lb.onEnd(a, true);
    lb.onEnd(b, true);
    expect(active(lb, a, b)).toEqual([1, 1]);
    expect(grants(lb, 2)).toEqual([1, 2]);
  });

  it("dispatches in arrival order, each waiter taking the slot just freed on any endpoint", () => {
    const lb = balancer({ maxConcurrent: 1 });
    lb.update([a, b, c]);
    expect(grants(lb, 3)).toEqual([1, 2, 3]);
    const waiters = queue(lb, 10);
    expect(lb.queued).toBe(10);
    const freed = [c, a, b, b, c, a, a, c, b, a];
    for (const endpoint of freed) lb.onEnd(endpoint, true);
    expect(events).toEqual(freed.map((endpoint, i) => `w${i}>${endpoint.port}`));
    expect(waiters.map((w) => w.endpoint)).toEqual(freed);
    expect(lb.queued).toBe(0);
    expect(active(lb, a, b, c)).toEqual([1, 1, 1]);
    expect(lb.stats.dispatched).toBe(10);
  });

  it("calls onSlot inside onEnd, before onEnd returns", () => {
    const lb = balancer();
    lb.update([a]);
    grants(lb, 1);
    queue(lb, 1);
    events.push("before");
    lb.onEnd(a, true);
    events.push("after");
    expect(events).toEqual(["before", "w0>1", "after"]);
  });

  it("queues new arrivals behind waiters even when a slot could be free", () => {
    const lb = balancer({ maxConcurrent: 1 });
    lb.update([a]);
    grants(lb, 1);
    const [w0] = queue(lb, 1);
    lb.onEnd(a, true); // to w0
    expect(w0!.endpoint).toBe(a);
    expect(lb.acquire(EMPTY_PICK_CONTEXT, new Waiter("w1"))).toBe(QUEUED);
  });

  it("answers QUEUE_FULL when maxQueue waiters are waiting, and counts it", () => {
    const lb = balancer({ maxQueue: 3 });
    lb.update([a]);
    grants(lb, 1);
    queue(lb, 3);
    expect(lb.acquire(EMPTY_PICK_CONTEXT, new Waiter("late"))).toBe(QUEUE_FULL);
    expect(lb.acquire(EMPTY_PICK_CONTEXT, new Waiter("later"))).toBe(QUEUE_FULL);
    expect(lb.queued).toBe(3);
    expect(lb.stats.rejected).toBe(2);
    lb.onEnd(a, true); // w0 leaves the queue: room for one
    expect(lb.acquire(EMPTY_PICK_CONTEXT, new Waiter("w3"))).toBe(QUEUED);
    expect(lb.acquire(EMPTY_PICK_CONTEXT, new Waiter("w4"))).toBe(QUEUE_FULL);
    expect(lb.stats.rejected).toBe(3);
  });

  it("with maxQueue 0 never queues: full means QUEUE_FULL at once", () => {
    const lb = balancer({ maxQueue: 0, maxConcurrent: 2 });
    lb.update([a]);
    grants(lb, 2);
    expect(lb.acquire(EMPTY_PICK_CONTEXT, new Waiter("w0"))).toBe(QUEUE_FULL);
    expect(lb.queued).toBe(0);
    expect(vi.getTimerCount()).toBe(0);
    lb.onEnd(a, true);
    expect(grants(lb, 1)).toEqual([1]);
  });

  it("keeps a waiter's place when it calls acquire again while queued", () => {
    const lb = balancer();
    lb.update([a]);
    grants(lb, 1);
    const [w0, w1] = queue(lb, 2);
    expect(lb.acquire(EMPTY_PICK_CONTEXT, w1!)).toBe(QUEUED);
    expect(lb.acquire(EMPTY_PICK_CONTEXT, w0!)).toBe(QUEUED);
    expect(lb.queued).toBe(2);
    lb.onEnd(a, true);
    lb.onEnd(a, true);
    lb.onEnd(a, true);
    expect(events).toEqual(["w0>1", "w1>1"]);
  });

  it("holds the caps and FIFO order over a long random script of acquires, ends, cancels, time and updates", () => {
    const cap = 2;
    const maxQueue = 6;
    const lb = balancer({ maxConcurrent: cap, maxQueue }, seededRandom(1));
    const random = seededRandom(42);
    const pool = [a, b, c, d];
    let set: Endpoint[] = [a, b, c];
    lb.update(set);
    /** Requests holding a slot, by endpoint id (the model's counts). */
    const held = new Map<string, number>();
    const running: Endpoint[] = [];
    /** The model queue: waiters in arrival order with their enqueue time. */
    const waiting: { waiter: SlotWaiter; at: number; exclude?: ReadonlySet<string> }[] = [];
    let serial = 0;
    const inSet = (id: string) => set.some((e) => e.id === id);
    const start = (endpoint: Endpoint) => {
      held.set(endpoint.id, (held.get(endpoint.id) ?? 0) + 1);
      running.push(endpoint);
      // Never over the cap: nothing here uses onStart.
      expect(held.get(endpoint.id)).toBeLessThanOrEqual(cap);
      expect(inSet(endpoint.id)).toBe(true);
    };
    const modelWaiter = (): SlotWaiter => {
      const waiter: SlotWaiter = {
        onSlot(endpoint) {
          // The head of the model queue, and nobody else, gets the slot.
          expect(waiting[0]?.waiter).toBe(waiter);
          waiting.shift();
          start(endpoint);
        },
        onQueueTimeout() {
          expect(waiting[0]?.waiter).toBe(waiter);
          expect(performance.now() - waiting[0]!.at).toBeGreaterThanOrEqual(TIMEOUT);
          waiting.shift();
        },
      };
      return waiter;
    };
    const counts = { dispatched: 0, full: 0, none: 0, granted: 0 };
    for (let step = 0; step < 10_000; step++) {
      const op = random();
      if (op < 0.4) {
        const exclude = random() < 0.3 ? new Set([pool[Math.floor(random() * 4)]!.id]) : undefined;
        const waiter = modelWaiter();
        const freeInSet = set.filter((e) => (held.get(e.id) ?? 0) < cap);
        const untried = set.filter((e) => !exclude?.has(e.id));
        const allowedNow = freeInSet.filter((e) => !exclude?.has(e.id));
        // A retry waits for a host it has not tried while the set has one.
        const grant =
          waiting.length === 0 &&
          (allowedNow.length > 0 || (freeInSet.length > 0 && untried.length === 0));
        const result = lb.acquire(exclude ? { exclude } : EMPTY_PICK_CONTEXT, waiter);
        if (set.length === 0) {
          expect(result).toBeUndefined();
          counts.none++;
        } else if (grant) {
          expect(typeof result).toBe("object");
          const endpoint = result as Endpoint;
          const fewest = Math.min(...freeInSet.map((e) => held.get(e.id) ?? 0));
          const allowed = freeInSet.filter((e) => !exclude?.has(e.id));
          const candidates = allowed.length > 0 ? allowed : freeInSet;
          const best = Math.min(...candidates.map((e) => held.get(e.id) ?? 0));
          expect(held.get(endpoint.id) ?? 0).toBe(allowed.length > 0 ? best : fewest);
          if (allowed.length > 0) expect(exclude?.has(endpoint.id) ?? false).toBe(false);
          start(endpoint);
          counts.granted++;
        } else if (waiting.length >= maxQueue) {
          expect(result).toBe(QUEUE_FULL);
          counts.full++;
        } else {
          expect(result).toBe(QUEUED);
          waiting.push({ waiter, at: performance.now(), exclude });
        }
      } else if (op < 0.75) {
        if (running.length === 0) continue;
        const index = Math.floor(random() * running.length);
        const [endpoint] = running.splice(index, 1);
        held.set(endpoint!.id, held.get(endpoint!.id)! - 1);
        const before = waiting.length;
        lb.onEnd(endpoint!, random() < 0.8);
        if (before > waiting.length) counts.dispatched++;
      } else if (op < 0.8) {
        if (waiting.length === 0) continue;
        const index = Math.floor(random() * waiting.length);
        const [gone] = waiting.splice(index, 1);
        lb.cancel(gone!.waiter);
      } else if (op < 0.97) {
        vi.advanceTimersByTime(Math.floor(random() * 600));
      } else {
        set = pool.filter(() => random() < 0.6);
        serial++;
        lb.update(set);
      }
      // After every step: the balancer's counts match the model, nobody is over the cap, the
      // queue matches, nobody is queued past its deadline, and a non-empty queue means no free
      // slot in the set.
      for (const endpoint of pool) {
        expect(lb.activeOn(endpoint.id)).toBe(held.get(endpoint.id) ?? 0);
        expect(lb.activeOn(endpoint.id)).toBeLessThanOrEqual(cap);
      }
      expect(lb.queued).toBe(waiting.length);
      for (const { at } of waiting) expect(performance.now() - at).toBeLessThan(TIMEOUT);
      if (waiting.length > 0) {
        // Every free slot is on a host the head already tried, and it has one left to try.
        const head = waiting[0]!.exclude;
        for (const endpoint of set) {
          if ((held.get(endpoint.id) ?? 0) < cap) expect(head?.has(endpoint.id)).toBe(true);
        }
        if (set.some((e) => (held.get(e.id) ?? 0) < cap)) {
          expect(set.some((e) => !head?.has(e.id))).toBe(true);
        }
      }
      expect(vi.getTimerCount()).toBeLessThanOrEqual(1);
    }
    // The script reached every branch many times.
    expect(counts.granted).toBeGreaterThan(1000);
    expect(counts.dispatched).toBeGreaterThan(1000);
    expect(counts.full).toBeGreaterThan(100);
    expect(counts.none).toBeGreaterThan(30);
    expect(lb.stats.timedOut).toBeGreaterThan(100);
    expect(lb.stats.cancelled).toBeGreaterThan(100);
    expect(serial).toBeGreaterThan(200);
  });
});

describe("FirstComeBalancer: queue timeout", () => {
  it("times out the head at its deadline, then the next at its own", () => {
    const lb = balancer();
    lb.update([a]);
    grants(lb, 1);
    const [w0] = queue(lb, 1, 0);
    vi.advanceTimersByTime(300);
    const [w1] = queue(lb, 1, 1);
    vi.advanceTimersByTime(400);
    const [w2] = queue(lb, 1, 2);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(299); // t = 999
    expect(events).toEqual([]);
    vi.advanceTimersByTime(1); // t = 1000
    expect(events).toEqual(["w0 timeout"]);
    expect(lb.queued).toBe(2);
    vi.advanceTimersByTime(299); // t = 1299
    expect(w1!.timedOut).toBe(false);
    vi.advanceTimersByTime(1); // t = 1300
    expect(w1!.timedOut).toBe(true);
    vi.advanceTimersByTime(399); // t = 1699
    expect(w2!.timedOut).toBe(false);
    vi.advanceTimersByTime(1); // t = 1700
    expect(events).toEqual(["w0 timeout", "w1 timeout", "w2 timeout"]);
    expect(lb.queued).toBe(0);
    expect(lb.stats.timedOut).toBe(3);
    expect(vi.getTimerCount()).toBe(0);
    // Timed-out waiters never get a slot afterwards.
    lb.onEnd(a, true);
    expect(w0!.endpoint).toBeUndefined();
    expect(lb.activeOn(a.id)).toBe(0);
  });

  it("uses one timer for the whole queue, not one per waiter", () => {
    const timers = vi.spyOn(globalThis, "setTimeout");
    const lb = balancer();
    lb.update([a]);
    grants(lb, 1);
    for (let i = 0; i < 100; i++) {
      queue(lb, 1, i);
      vi.advanceTimersByTime(5);
      expect(vi.getTimerCount()).toBe(1);
    }
    // Dispatching heads does not touch the timer.
    for (let i = 0; i < 50; i++) lb.onEnd(a, true);
    expect(timers).toHaveBeenCalledTimes(1);
    // At t = 1000 the timer finds w50 (deadline 1250) and re-arms once for it; after that, each
    // timeout re-arms once for the next head.
    vi.advanceTimersByTime(1000 - 500);
    expect(timers).toHaveBeenCalledTimes(2);
    expect(lb.stats.timedOut).toBe(0);
    vi.advanceTimersByTime(250);
    expect(events.at(-1)).toBe("w50 timeout");
    vi.advanceTimersByTime(245);
    expect(lb.queued).toBe(0);
    expect(lb.stats.timedOut).toBe(50);
    expect(events.slice(50)).toEqual(Array.from({ length: 50 }, (_, i) => `w${i + 50} timeout`));
    expect(vi.getTimerCount()).toBe(0);
    timers.mockRestore();
  });

  it("splits a timeout longer than Node's timer range (24.8 days) instead of spinning", () => {
    // Node (and the fake timers) run a delay above 2^31 - 1 ms after 1 ms instead.
    const timers = vi.spyOn(globalThis, "setTimeout");
    const day = 24 * 60 * 60 * 1000;
    const lb = balancer({ queueTimeoutMs: 40 * day });
    lb.update([a]);
    grants(lb, 1);
    const [w0] = queue(lb, 1);
    vi.advanceTimersByTime(40 * day - 1);
    expect(w0!.timedOut).toBe(false);
    vi.advanceTimersByTime(1);
    expect(w0!.timedOut).toBe(true);
    expect(timers).toHaveBeenCalledTimes(2);
    timers.mockRestore();
  });

  it("a waiter that re-acquires from onQueueTimeout queues again with a fresh deadline", () => {
    const lb = balancer();
    lb.update([a]);
    grants(lb, 1);
    const [w0] = queue(lb, 1);
    vi.advanceTimersByTime(500);
    const [w1] = queue(lb, 1, 1);
    const again = new Waiter("w0-again");
    w0!.afterTimeout = () => expect(lb.acquire(EMPTY_PICK_CONTEXT, again)).toBe(QUEUED);
    vi.advanceTimersByTime(500); // t = 1000: w0 out, w0-again in (deadline 2000)
    expect(lb.queued).toBe(2);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(499);
    expect(w1!.timedOut).toBe(false);
    vi.advanceTimersByTime(1); // t = 1500: w1's own deadline, not w0-again's
    expect(w1!.timedOut).toBe(true);
    lb.onEnd(a, true);
    expect(events).toEqual(["w0 timeout", "w1 timeout", "w0-again>1"]);
  });

  it("keeps the queue working when a callback throws", () => {
    const lb = balancer();
    lb.update([a]);
    grants(lb, 1);
    const [w0, w1] = queue(lb, 2);
    w0!.afterTimeout = () => {
      throw new Error("caller bug");
    };
    expect(() => vi.advanceTimersByTime(TIMEOUT)).toThrow("caller bug");
    // The timer re-armed for w1 despite the throw (both deadlines were 1000: w1 is due too).
    vi.advanceTimersByTime(1);
    expect(w1!.timedOut).toBe(true);
  });
});

describe("FirstComeBalancer: cancel", () => {
  it("removes a waiter from the head, the middle and the tail; the timer follows the new head", () => {
    const lb = balancer();
    lb.update([a]);
    grants(lb, 1);
    const waiters: Waiter[] = [];
    for (let i = 0; i < 5; i++) {
      waiters.push(...queue(lb, 1, i));
      vi.advanceTimersByTime(100);
    } // w_i queued at t = 100 * i; now t = 500
    const [w0, w1, w2, w3, w4] = waiters;
    lb.cancel(w0!);
    lb.cancel(w2!);
    lb.cancel(w4!);
    expect(lb.queued).toBe(2);
    expect(lb.stats.cancelled).toBe(3);
    lb.cancel(w0!); // twice: no-op
    lb.cancel(new Waiter("stranger"));
    expect(lb.queued).toBe(2);
    expect(lb.stats.cancelled).toBe(3);
    vi.advanceTimersByTime(599); // t = 1099: w0's old deadline passed, nobody is due
    expect(events).toEqual([]);
    vi.advanceTimersByTime(1); // t = 1100: w1's deadline
    expect(events).toEqual(["w1 timeout"]);
    expect(w1!.timedOut).toBe(true);
    expect(vi.getTimerCount()).toBe(1);
    lb.onEnd(a, true); // the slot goes to w3, never to a cancelled waiter
    expect(events).toEqual(["w1 timeout", "w3>1"]);
    expect(w3!.endpoint).toBe(a);
    expect(lb.queued).toBe(0);
    vi.advanceTimersByTime(TIMEOUT);
    expect(events).toEqual(["w1 timeout", "w3>1"]);
  });

  it("after cancelling the only waiter, the next one still times out at its own deadline", () => {
    const lb = balancer();
    lb.update([a]);
    grants(lb, 1);
    const [w0] = queue(lb, 1);
    vi.advanceTimersByTime(200);
    lb.cancel(w0!);
    vi.advanceTimersByTime(600); // t = 800
    const [w1] = queue(lb, 1, 1);
    vi.advanceTimersByTime(999); // t = 1799
    expect(w1!.timedOut).toBe(false);
    vi.advanceTimersByTime(1);
    expect(w1!.timedOut).toBe(true);
    expect(w0!.timedOut).toBe(false);
  });

  it("frees the cancelled waiter's place for the next in line and in the queue", () => {
    const lb = balancer({ maxQueue: 2 });
    lb.update([a]);
    grants(lb, 1);
    const [w0] = queue(lb, 2);
    expect(lb.acquire(EMPTY_PICK_CONTEXT, new Waiter("late"))).toBe(QUEUE_FULL);
    lb.cancel(w0!);
    queue(lb, 1, 2);
    lb.onEnd(a, true);
    lb.onEnd(a, true);
    expect(events).toEqual(["w1>1", "w2>1"]);
  });
});

describe("FirstComeBalancer: update", () => {
  it("dispatches queued waiters to new endpoints inside update, in order", () => {
    const lb = balancer({ maxConcurrent: 2 });
    lb.update([a]);
    grants(lb, 2);
    queue(lb, 5);
    events.push("update 1");
    lb.update([a, b]);
    events.push("update 2");
    lb.update([a, b, c]);
    events.push("done");
    expect(events).toEqual(["update 1", "w0>2", "w1>2", "update 2", "w2>3", "w3>3", "done"]);
    expect(lb.queued).toBe(1);
    expect(active(lb, a, b, c)).toEqual([2, 2, 2]);
    expect(lb.stats.dispatched).toBe(4);
  });

  it("keeps a departed endpoint's count, never dispatches to it, and counts again when it returns", () => {
    const lb = balancer({ maxConcurrent: 1 });
    lb.update([a, b]);
    grants(lb, 2);
    queue(lb, 2);
    lb.update([a]); // b leaves with one request in flight
    expect(active(lb, a, b)).toEqual([1, 1]);
    lb.onEnd(b, true); // freed on a departed endpoint: nobody gets it
    expect(events).toEqual([]);
    expect(active(lb, a, b)).toEqual([1, 0]);
    lb.onEnd(a, true);
    expect(events).toEqual(["w0>1"]);
    lb.update([a, b]); // b back with a free slot
    expect(events).toEqual(["w0>1", "w1>2"]);

    // A return while requests are still in flight: they count against the cap.
    const lb2 = balancer({ maxConcurrent: 2 });
    lb2.update([a, b]);
    expect(grants(lb2, 2)).toEqual([1, 2]);
    lb2.update([a]);
    expect(grants(lb2, 1)).toEqual([1]);
    lb2.update([a, b]);
    expect(active(lb2, a, b)).toEqual([2, 1]);
    expect(grants(lb2, 1)).toEqual([2]);
    expect(lb2.acquire(EMPTY_PICK_CONTEXT, new Waiter("w9"))).toBe(QUEUED);
  });

  it("forgets a departed endpoint once its last request ends", () => {
    const lb = balancer({ maxConcurrent: 3 });
    lb.update([a, b]);
    grants(lb, 2);
    lb.update([a]);
    lb.onEnd(b, true);
    lb.onEnd(b, true); // an extra end is ignored, never negative
    expect(lb.activeOn(b.id)).toBe(0);
    lb.update([a, b]);
    // b is back at 0 (a has 1): b, then a (at 1 before b got there), then b.
    expect(grants(lb, 3)).toEqual([2, 1, 2]);
  });

  it("keeps waiters queued when the set becomes empty, and serves them when endpoints return", () => {
    const lb = balancer();
    lb.update([a]);
    grants(lb, 1);
    const [w0, w1] = queue(lb, 2);
    vi.advanceTimersByTime(100);
    lb.update([]);
    expect(lb.queued).toBe(2);
    // Nothing to wait for: new arrivals are not queued.
    expect(lb.acquire(EMPTY_PICK_CONTEXT, new Waiter("new"))).toBeUndefined();
    lb.onEnd(a, true); // a left: its slot goes to nobody
    expect(lb.queued).toBe(2);
    lb.update([b]);
    expect(w0!.endpoint).toBe(b);
    expect(lb.queued).toBe(1);
    lb.update([]);
    vi.advanceTimersByTime(900);
    expect(w1!.timedOut).toBe(true);
    expect(events).toEqual(["w0>2", "w1 timeout"]);
  });

  it("copies the endpoint list so later caller mutation is invisible", () => {
    const lb = balancer({ maxConcurrent: 1 });
    const list = [a, b];
    lb.update(list);
    list.length = 0;
    expect(grants(lb, 2)).toEqual([1, 2]);
  });
});

describe("FirstComeBalancer: exclusions (retries)", () => {
  it("takes a free slot on a non-excluded endpoint even when an excluded one has fewer requests", () => {
    const lb = balancer({ maxConcurrent: 3 });
    lb.update([a, b, c]);
    expect(grants(lb, 5)).toEqual([1, 2, 3, 1, 2]); // a 2, b 2, c 1
    lb.onEnd(a, true);
    lb.onEnd(a, true); // a 0, b 2, c 1
    expect(grants(lb, 1, { exclude: new Set([a.id]) })).toEqual([3]);
    expect(grants(lb, 1, { exclude: new Set([a.id, c.id]) })).toEqual([2]);
    expect(active(lb, a, b, c)).toEqual([0, 3, 2]);
  });

  it("waits for a host it has not tried rather than take a free slot on one it has", () => {
    const lb = balancer({ maxConcurrent: 1 });
    lb.update([a, b]);
    expect(grants(lb, 1)).toEqual([1]); // a busy, b free
    const [retry] = queue(lb, 1, 0, { exclude: new Set([b.id]) });
    expect(retry!.endpoint).toBeUndefined();
    expect(lb.queued).toBe(1);
    // Everyone else waits behind it, even with b free (FIFO).
    const [later] = queue(lb, 1, 1);
    expect(later!.endpoint).toBeUndefined();
    lb.onEnd(a, true);
    expect(retry!.endpoint).toBe(a);
    // The head left, so the next waiter takes the free slot on b at once.
    expect(later!.endpoint).toBe(b);
  });

  it("takes a slot on a host it already tried when it has tried them all", () => {
    const lb = balancer({ maxConcurrent: 1 });
    lb.update([a, b]);
    expect(grants(lb, 1)).toEqual([1]);
    lb.onEnd(a, false);
    // Both free; both tried: it goes now, to the next in rotation, instead of queueing.
    expect(grants(lb, 1, { exclude: new Set([a.id, b.id]) })).toEqual([2]);
    expect(lb.queued).toBe(0);
  });

  it("hands a free slot on to the next waiter when a waiting retry gives up", () => {
    const lb = balancer({ maxConcurrent: 1 });
    lb.update([a, b]);
    grants(lb, 1); // a busy, b free
    const [retry] = queue(lb, 1, 0, { exclude: new Set([b.id]) });
    const [later] = queue(lb, 1, 1);
    lb.cancel(retry!);
    expect(later!.endpoint).toBe(b);
  });

  it("ignores an empty exclusion set and unknown ids", () => {
    const lb = balancer({ maxConcurrent: 1 });
    lb.update([a, b]);
    expect(grants(lb, 1, { exclude: new Set() })).toEqual([1]);
    expect(grants(lb, 1, { exclude: new Set(["10.9.9.9:1"]) })).toEqual([2]);
  });

  it("a queued retry lets a freed slot on a host it tried pass until one it has not tried frees", () => {
    const lb = balancer({ maxConcurrent: 1 });
    lb.update([a, b]);
    grants(lb, 2);
    const [retry] = queue(lb, 1, 0, { exclude: new Set([a.id]) });
    const [w1] = queue(lb, 1, 1);
    lb.onEnd(a, false);
    expect(retry!.endpoint).toBeUndefined();
    lb.onEnd(b, true);
    expect(retry!.endpoint).toBe(b);
    expect(w1!.endpoint).toBe(a);
  });

  it("a queued retry prefers a non-excluded endpoint when several slots free at once", () => {
    const lb = balancer({ maxConcurrent: 1 });
    lb.update([a]);
    grants(lb, 1);
    const [retry] = queue(lb, 1, 0, { exclude: new Set([b.id]) });
    const [w1] = queue(lb, 1, 1);
    lb.update([a, b, c]); // b and c free together: the retry avoids b
    expect(retry!.endpoint).toBe(c);
    expect(w1!.endpoint).toBe(b);
  });

  it("counts a retry against the cap like any request", () => {
    const lb = balancer({ maxConcurrent: 1 });
    lb.update([a, b]);
    grants(lb, 2);
    // The first attempt on a failed: the caller ends it, then retries avoiding a.
    const [w0] = queue(lb, 1);
    lb.onEnd(a, false);
    expect(w0!.endpoint).toBe(a); // the waiter took the slot the failure freed
    const retry = new Waiter("retry");
    expect(lb.acquire({ exclude: new Set([a.id]) }, retry)).toBe(QUEUED);
    expect(active(lb, a, b)).toEqual([1, 1]);
  });
});

describe("FirstComeBalancer: pick and onStart (callers that cannot queue)", () => {
  it("pick returns what acquire would give, without reserving it", () => {
    const lb = balancer({ maxConcurrent: 2 });
    lb.update([a, b]);
    expect(lb.pick(EMPTY_PICK_CONTEXT)).toBe(a);
    expect(lb.pick(EMPTY_PICK_CONTEXT)).toBe(a);
    expect(lb.pick({ exclude: new Set([a.id]) })).toBe(b);
    expect(active(lb, a, b)).toEqual([0, 0]);
    lb.onStart(a);
    expect(lb.pick(EMPTY_PICK_CONTEXT)).toBe(b);
    expect(lb.acquire(EMPTY_PICK_CONTEXT, nobody)).toBe(b);
  });

  it("pick returns undefined when every endpoint is full or waiters are queued", () => {
    const lb = balancer();
    lb.update([a, b]);
    grants(lb, 2);
    expect(lb.pick(EMPTY_PICK_CONTEXT)).toBeUndefined();
    queue(lb, 1);
    lb.onStart(c); // not in the set: counted anyway
    expect(lb.activeOn(c.id)).toBe(1);
    lb.onEnd(c, true);
    expect(lb.activeOn(c.id)).toBe(0);
    expect(lb.pick(EMPTY_PICK_CONTEXT)).toBeUndefined();
  });

  it("onStart reserves past the cap; the queue waits until the endpoint is under it again", () => {
    const lb = balancer({ maxConcurrent: 2 });
    lb.update([a]);
    lb.onStart(a);
    lb.onStart(a);
    lb.onStart(a);
    expect(lb.activeOn(a.id)).toBe(3);
    const [w0] = queue(lb, 1);
    lb.onEnd(a, true); // 2 of 2: still full
    expect(w0!.endpoint).toBeUndefined();
    lb.onEnd(a, true); // 1 of 2: the slot goes to w0
    expect(w0!.endpoint).toBe(a);
    expect(lb.activeOn(a.id)).toBe(2);
  });

  it("ignores onEnd for endpoints it never counted, and never goes negative", () => {
    const lb = balancer({ maxConcurrent: 1 });
    lb.update([a]);
    lb.onEnd(d, true);
    lb.onEnd(a, true);
    expect(lb.activeOn(a.id)).toBe(0);
    expect(lb.activeOn(d.id)).toBe(0);
    // The extra end did not create a second slot.
    grants(lb, 1);
    expect(lb.acquire(EMPTY_PICK_CONTEXT, new Waiter("w0"))).toBe(QUEUED);
  });
});

describe("FirstComeBalancer: re-entrancy", () => {
  it("a waiter that ends its request inside onSlot passes the slot on, counts stay right", () => {
    const lb = balancer({ maxConcurrent: 1 });
    lb.update([a]);
    grants(lb, 1);
    const waiters = queue(lb, 5);
    for (const waiter of waiters) waiter.afterSlot = (endpoint) => lb.onEnd(endpoint, false);
    lb.onEnd(a, true);
    expect(events).toEqual(["w0>1", "w1>1", "w2>1", "w3>1", "w4>1"]);
    expect(lb.activeOn(a.id)).toBe(0);
    expect(lb.queued).toBe(0);
    expect(lb.stats.dispatched).toBe(5);
    expect(grants(lb, 1)).toEqual([1]);
  });

  it("keeps the stack flat when thousands of waiters end at once", () => {
    const count = 50_000;
    const lb = balancer({ maxConcurrent: 1, maxQueue: count });
    lb.update([a]);
    grants(lb, 1);
    let served = 0;
    const waiter: SlotWaiter = {
      onSlot(endpoint) {
        served++;
        lb.onEnd(endpoint, true);
      },
      onQueueTimeout() {},
    };
    let queued = 0;
    for (let i = 0; i < count; i++) {
      if (lb.acquire(EMPTY_PICK_CONTEXT, { ...waiter }) === QUEUED) queued++;
    }
    expect(queued).toBe(count);
    lb.onEnd(a, true);
    expect(served).toBe(count);
    expect(lb.activeOn(a.id)).toBe(0);
  });

  it("an acquire made inside onSlot queues behind waiters still queued", () => {
    const lb = balancer({ maxConcurrent: 1 });
    lb.update([a]);
    grants(lb, 1);
    const [w0] = queue(lb, 2);
    const again = new Waiter("w0-retry");
    w0!.afterSlot = (endpoint) => {
      lb.onEnd(endpoint, false); // the attempt failed at once: free the slot, then retry
      expect(lb.acquire({ exclude: new Set([endpoint.id]) }, again)).toBe(QUEUED);
    };
    lb.onEnd(a, true);
    // w1 got the slot w0 freed; the retry waits behind it.
    expect(events).toEqual(["w0>1", "w1>1"]);
    expect(lb.queued).toBe(1);
    lb.onEnd(a, true);
    expect(events).toEqual(["w0>1", "w1>1", "w0-retry>1"]);
    expect(lb.activeOn(a.id)).toBe(1);
  });

  it("a cancel or an update inside onSlot is honoured by the ongoing dispatch", () => {
    const lb = balancer({ maxConcurrent: 1 });
    lb.update([a]);
    grants(lb, 1);
    const [w0, w1, w2, w3] = queue(lb, 4);
    w0!.afterSlot = () => {
      lb.cancel(w1!);
      lb.update([a, b]); // frees b: w2 gets it once w0's callback returns
    };
    lb.onEnd(a, true);
    expect(events).toEqual(["w0>1", "w2>2"]);
    expect(w2!.endpoint).toBe(b);
    expect(w1!.endpoint).toBeUndefined();
    expect(w3!.endpoint).toBeUndefined();
    expect(lb.queued).toBe(1);
    expect(active(lb, a, b)).toEqual([1, 1]);
  });

  it("keeps dispatching later after an onSlot throws", () => {
    const lb = balancer({ maxConcurrent: 1 });
    lb.update([a]);
    grants(lb, 1);
    const [w0, w1] = queue(lb, 2);
    w0!.afterSlot = () => {
      throw new Error("caller bug");
    };
    expect(() => lb.onEnd(a, true)).toThrow("caller bug");
    expect(lb.activeOn(a.id)).toBe(1); // w0 holds the slot it was given
    lb.onEnd(a, true);
    expect(w1!.endpoint).toBe(a);
  });
});

describe("FirstComeBalancer: stats", () => {
  it("counts dispatched, timed out, rejected and cancelled waiters", () => {
    const lb = balancer({ maxQueue: 3 });
    lb.update([a]);
    grants(lb, 1);
    const [w0] = queue(lb, 3);
    lb.acquire(EMPTY_PICK_CONTEXT, new Waiter("full"));
    lb.cancel(w0!);
    lb.onEnd(a, true);
    vi.advanceTimersByTime(TIMEOUT);
    expect(lb.stats).toEqual({ dispatched: 1, timedOut: 1, rejected: 1, cancelled: 1 });
  });
});
