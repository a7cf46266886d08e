import { describe, expect, it } from "vitest";
import { DEFAULT_CIRCUIT_BREAKER_SETTINGS, PendingLimit } from "./circuit-breaker.js";

function limit(http1MaxPendingRequests: number): PendingLimit {
  return new PendingLimit({ http1MaxPendingRequests });
}

describe("PendingLimit", () => {
  it("defaults to Istio's 2^32-1: practically unlimited", () => {
    expect(DEFAULT_CIRCUIT_BREAKER_SETTINGS).toEqual({ http1MaxPendingRequests: 4294967295 });
    expect(Object.isFrozen(DEFAULT_CIRCUIT_BREAKER_SETTINGS)).toBe(true);
    const made = new PendingLimit();
    expect(made.max).toBe(4294967295);
    let entered = 0;
    for (let i = 0; i < 100_000; i++) if (made.tryEnter()) entered++;
    expect(entered).toBe(100_000);
    expect(made.pending).toBe(100_000);
    expect(made.stats).toEqual({ overflows: 0 });
  });

  it("lets max requests wait, refuses the next at once, and counts the overflow", () => {
    const made = limit(2);
    expect(made.tryEnter()).toBe(true);
    expect(made.tryEnter()).toBe(true);
    expect(made.pending).toBe(2);
    expect(made.tryEnter()).toBe(false);
    expect(made.tryEnter()).toBe(false);
    expect(made.pending).toBe(2);
    expect(made.stats).toEqual({ overflows: 2 });
    made.leave();
    expect(made.pending).toBe(1);
    expect(made.tryEnter()).toBe(true);
    expect(made.tryEnter()).toBe(false);
    expect(made.stats).toEqual({ overflows: 3 });
  });

  it("takes 0 literally: nothing may wait", () => {
    const made = limit(0);
    expect(made.tryEnter()).toBe(false);
    expect(made.pending).toBe(0);
    expect(made.stats).toEqual({ overflows: 1 });
  });

  it("never goes negative: a leave without an enter frees nothing", () => {
    const made = limit(1);
    made.leave();
    made.leave();
    expect(made.pending).toBe(0);
    expect(made.tryEnter()).toBe(true);
    expect(made.tryEnter()).toBe(false);
    made.leave();
    made.leave();
    expect(made.pending).toBe(0);
    expect(made.tryEnter()).toBe(true);
    expect(made.tryEnter()).toBe(false);
  });

  it("rejects a limit it cannot honour, in the constructor", () => {
    expect(() => limit(-1)).toThrow(/http1MaxPendingRequests/);
    expect(() => limit(1.5)).toThrow(RangeError);
    expect(() => limit(Number.NaN)).toThrow(RangeError);
  });
});
