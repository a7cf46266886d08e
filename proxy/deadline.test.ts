import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { Deadline } from "./deadline.js";

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
});
afterEach(() => {
  vi.useRealTimers();
});

const now = (): number => performance.now();

describe("Deadline", () => {
  it("expires once, at the deadline", () => {
    const expired = vi.fn();
    const deadline = new Deadline(expired, now);
    deadline.set(now(), 100);
    vi.advanceTimersByTime(99);
    expect(expired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(expired).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(1000);
    expect(expired).toHaveBeenCalledTimes(1);
  });

  it("moves later with no new timer, and still expires on time", () => {
    const expired = vi.fn();
    const deadline = new Deadline(expired, now);
    const timers = vi.spyOn(globalThis, "setTimeout");
    for (let t = 0; t < 1000; t++) {
      deadline.set(now(), 100);
      vi.advanceTimersByTime(0.05);
    }
    // One timer for 1,000 moves; it fires once before the deadline and re-arms for the rest.
    expect(timers).toHaveBeenCalledTimes(1);
    const last = now() + 100 - 0.05;
    vi.advanceTimersByTime(last - now() - 1);
    expect(expired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(2);
    expect(expired).toHaveBeenCalledTimes(1);
    expect(timers).toHaveBeenCalledTimes(2);
    timers.mockRestore();
  });

  it("re-arms at once when moved earlier", () => {
    const expired = vi.fn();
    const deadline = new Deadline(expired, now);
    deadline.set(now(), 10_000);
    vi.advanceTimersByTime(10);
    deadline.set(now(), 50);
    vi.advanceTimersByTime(50);
    expect(expired).toHaveBeenCalledTimes(1);
  });

  it("clear and stop prevent expiry; set works again after either", () => {
    const expired = vi.fn();
    const deadline = new Deadline(expired, now);
    deadline.set(now(), 100);
    deadline.clear();
    vi.advanceTimersByTime(500);
    deadline.set(now(), 100);
    deadline.stop();
    vi.advanceTimersByTime(500);
    expect(expired).not.toHaveBeenCalled();
    deadline.set(now(), 100);
    vi.advanceTimersByTime(100);
    expect(expired).toHaveBeenCalledTimes(1);
  });

  it("re-arms when the timer fires before the clock reaches the deadline", () => {
    const expired = vi.fn();
    let lag = 0;
    const deadline = new Deadline(expired, () => performance.now() - lag);
    deadline.set(now(), 100);
    lag = 5; // by the deadline's clock, the timer fires 5 ms early
    vi.advanceTimersByTime(100);
    expect(expired).not.toHaveBeenCalled();
    vi.advanceTimersByTime(5);
    expect(expired).toHaveBeenCalledTimes(1);
  });
});
