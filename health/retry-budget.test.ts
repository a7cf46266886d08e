import { describe, expect, it } from "vitest";
import { RetryBudget, type RetryBudgetSettings } from "./retry-budget.js";
import { DEFAULT_RETRY_SETTINGS } from "./retry-policy.js";

function budget(over: Partial<RetryBudgetSettings> = {}): RetryBudget {
  return new RetryBudget({ ...DEFAULT_RETRY_SETTINGS, ...over });
}

/** How many `tryAcquire(activeRequests)` calls succeed in a row before the first refusal. */
function fill(made: RetryBudget, activeRequests: number): number {
  let n = 0;
  while (made.tryAcquire(activeRequests)) {
    n++;
    if (n > 10_000) throw new Error("the budget never refused");
  }
  return n;
}

describe("RetryBudget: the limit", () => {
  it("is 20% of active requests, at least 3 (Envoy's defaults), truncated like Envoy", () => {
    const made = new RetryBudget();
    expect(made.limit(100)).toBe(20);
    expect(made.limit(0)).toBe(3);
    expect(made.limit(14)).toBe(3);
    expect(made.limit(19)).toBe(3);
    expect(made.limit(20)).toBe(4);
    expect(made.limit(99)).toBe(19);
    expect(made.limit(145)).toBe(29);
    expect(made.limit(10_000)).toBe(2000);
    // A bad count from a caller never lifts the limit above the minimum.
    expect(made.limit(Number.NaN)).toBe(3);
    expect(made.limit(-50)).toBe(3);
  });

  it("is capped by maxRetries, and follows other percentages and minimums", () => {
    expect(budget({ maxRetries: 5 }).limit(100)).toBe(5);
    expect(budget({ maxRetries: 2 }).limit(0)).toBe(2);
    expect(budget({ budgetPercent: 50, minRetryConcurrency: 1 }).limit(7)).toBe(3);
    expect(budget({ budgetPercent: 0, minRetryConcurrency: 0 }).limit(1000)).toBe(0);
    expect(budget({ budgetPercent: 100, minRetryConcurrency: 0 }).limit(42)).toBe(42);
    expect(budget({ budgetPercent: 12.5, minRetryConcurrency: 0 }).limit(80)).toBe(10);
    // 0.29 × 100 is 28.999999999999996 in floating point; the budget must still say 29.
    expect(budget({ budgetPercent: 29 }).limit(100)).toBe(29);
    expect(budget({ budgetPercent: 70 }).limit(90)).toBe(63);
  });
});

describe("RetryBudget: acquire and release", () => {
  it("lets 20 retries start with 100 active requests, refuses the 21st, then one per release", () => {
    const made = new RetryBudget();
    expect(fill(made, 100)).toBe(20);
    expect(made.active).toBe(20);
    expect(made.stats).toEqual({ allowed: 20, refusedBudget: 1, refusedMax: 0 });
    made.release();
    expect(made.active).toBe(19);
    expect(made.tryAcquire(100)).toBe(true);
    expect(made.tryAcquire(100)).toBe(false);
    expect(made.stats).toEqual({ allowed: 21, refusedBudget: 2, refusedMax: 0 });
  });

  it("always allows the minimum, even with no active requests counted", () => {
    const made = new RetryBudget();
    expect(fill(made, 0)).toBe(3);
    expect(made.stats).toEqual({ allowed: 3, refusedBudget: 1, refusedMax: 0 });
  });

  it("re-reads the active count on every call: a shrinking cluster refuses until retries end", () => {
    const made = new RetryBudget();
    expect(fill(made, 100)).toBe(20);
    // Now 30 active: the budget is 6 and 20 are in flight.
    for (let i = 0; i < 14; i++) {
      expect(made.tryAcquire(30)).toBe(false);
      made.release();
    }
    expect(made.active).toBe(6);
    expect(made.tryAcquire(30)).toBe(false);
    made.release();
    expect(made.tryAcquire(30)).toBe(true);
    expect(made.active).toBe(6);
  });

  it("caps retries in flight at maxRetries, counted apart from the budget, and checked first", () => {
    const made = budget({ maxRetries: 5 });
    expect(fill(made, 100)).toBe(5);
    expect(made.stats).toEqual({ allowed: 5, refusedBudget: 0, refusedMax: 1 });
    // Both limits reached (minimum 3, max 5, 5 in flight): the hard cap is the one counted.
    expect(made.tryAcquire(0)).toBe(false);
    expect(made.stats).toEqual({ allowed: 5, refusedBudget: 0, refusedMax: 2 });
    made.release();
    made.release();
    made.release();
    // 2 in flight, budget 3 with nothing active: one more, then the budget refuses.
    expect(made.tryAcquire(0)).toBe(true);
    expect(made.tryAcquire(0)).toBe(false);
    expect(made.stats).toEqual({ allowed: 6, refusedBudget: 1, refusedMax: 2 });
  });

  it("allows nothing with maxRetries 0, or with a zero budget and minimum", () => {
    const none = budget({ maxRetries: 0 });
    expect(none.tryAcquire(1000)).toBe(false);
    expect(none.stats).toEqual({ allowed: 0, refusedBudget: 0, refusedMax: 1 });
    const zero = budget({ budgetPercent: 0, minRetryConcurrency: 0 });
    expect(zero.tryAcquire(1000)).toBe(false);
    expect(zero.stats).toEqual({ allowed: 0, refusedBudget: 1, refusedMax: 0 });
  });

  it("never goes negative: a release without an acquire frees nothing", () => {
    const made = new RetryBudget();
    made.release();
    made.release();
    expect(made.active).toBe(0);
    // The stray releases did not buy extra room.
    expect(fill(made, 0)).toBe(3);
    for (let i = 0; i < 5; i++) made.release();
    expect(made.active).toBe(0);
    expect(fill(made, 0)).toBe(3);
  });

  it("holds a storm to the budget: every attempt failing, concurrent retries stay at 20%", () => {
    // 500 requests in flight, every one failing and asking to retry at once.
    const made = new RetryBudget();
    let started = 0;
    for (let i = 0; i < 500; i++) if (made.tryAcquire(500)) started++;
    expect(started).toBe(100);
    expect(made.stats.refusedBudget).toBe(400);
  });

  it("returns a snapshot of its counters", () => {
    const made = new RetryBudget();
    const before = made.stats;
    made.tryAcquire(0);
    expect(before).toEqual({ allowed: 0, refusedBudget: 0, refusedMax: 0 });
    expect(made.stats.allowed).toBe(1);
  });
});

describe("RetryBudget: settings", () => {
  it("rejects settings it cannot honour, once, in the constructor", () => {
    expect(() => budget({ budgetPercent: -1 })).toThrow(/budgetPercent/);
    expect(() => budget({ budgetPercent: 101 })).toThrow(/budgetPercent/);
    expect(() => budget({ budgetPercent: Number.NaN })).toThrow(RangeError);
    expect(() => budget({ minRetryConcurrency: -1 })).toThrow(/minRetryConcurrency/);
    expect(() => budget({ minRetryConcurrency: 1.5 })).toThrow(/minRetryConcurrency/);
    expect(() => budget({ maxRetries: -1 })).toThrow(/maxRetries/);
    expect(() => budget({ maxRetries: Number.POSITIVE_INFINITY })).toThrow(/maxRetries/);
  });
});

describe("RetryBudget: retries of a failed connect", () => {
  it("are bounded by maxRetries only, not by the budget", () => {
    const budget = new RetryBudget({ budgetPercent: 20, minRetryConcurrency: 3, maxRetries: 5 });
    for (let i = 0; i < 3; i++) expect(budget.tryAcquire(0)).toBe(true);
    // The budget (3 at 0 active) is spent, but a connect failure's retry still goes...
    expect(budget.tryAcquire(0)).toBe(false);
    expect(budget.tryAcquire(0, false)).toBe(true);
    expect(budget.tryAcquire(0, false)).toBe(true);
    // ...until maxRetries.
    expect(budget.tryAcquire(0, false)).toBe(false);
    expect(budget.stats).toEqual({ allowed: 5, refusedBudget: 1, refusedMax: 1 });
  });
});
