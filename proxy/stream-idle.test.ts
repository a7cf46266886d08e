import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { STALLED_CLIENT, STALLED_UPSTREAM, StreamIdleTimer, stalledSide } from "./stream-idle.js";

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
});
afterEach(() => {
  vi.useRealTimers();
});

const now = (): number => performance.now();

describe("StreamIdleTimer", () => {
  it("fires once when no byte moves for the timeout", () => {
    const idle = vi.fn();
    const timer = new StreamIdleTimer(idle, now);
    timer.start(300);
    vi.advanceTimersByTime(299);
    expect(idle).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(idle).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(10_000);
    expect(idle).toHaveBeenCalledTimes(1);
  });

  it("every touch moves it later, with no new timer per touch: a byte every 100 ms never fires", () => {
    const idle = vi.fn();
    const timer = new StreamIdleTimer(idle, now);
    const timers = vi.spyOn(globalThis, "setTimeout");
    timer.start(300);
    for (let i = 0; i < 10; i++) {
      vi.advanceTimersByTime(100);
      timer.touch();
    }
    expect(idle).not.toHaveBeenCalled();
    // One timer armed at start, re-armed only when it fires before the moved deadline.
    expect(timers.mock.calls.length).toBeLessThanOrEqual(5);
    vi.advanceTimersByTime(300);
    expect(idle).toHaveBeenCalledTimes(1);
  });

  it("clear stops timing, and touches after it do not start it again", () => {
    const idle = vi.fn();
    const timer = new StreamIdleTimer(idle, now);
    timer.start(300);
    timer.clear();
    timer.touch();
    vi.advanceTimersByTime(1000);
    expect(idle).not.toHaveBeenCalled();
  });

  it("0 ms (streamIdleTimeout: 0s) never fires, even when an earlier attempt timed", () => {
    const idle = vi.fn();
    const timer = new StreamIdleTimer(idle, now);
    timer.start(300);
    timer.start(0);
    timer.touch();
    vi.advanceTimersByTime(10_000);
    expect(idle).not.toHaveBeenCalled();
  });

  it("stop releases the armed timer", () => {
    const idle = vi.fn();
    const timer = new StreamIdleTimer(idle, now);
    timer.start(300_000);
    expect(vi.getTimerCount()).toBe(1);
    timer.stop();
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe("stalledSide", () => {
  it("blames the client when it stops reading the response", () => {
    expect(stalledSide(true, false, false)).toBe(STALLED_CLIENT);
    expect(stalledSide(true, true, true)).toBe(STALLED_CLIENT);
  });

  it("blames the client when it owes body bytes and the upstream is reading", () => {
    expect(stalledSide(false, true, false)).toBe(STALLED_CLIENT);
  });

  it("blames the upstream when it stops reading the body, or owes the response", () => {
    expect(stalledSide(false, true, true)).toBe(STALLED_UPSTREAM);
    expect(stalledSide(false, false, false)).toBe(STALLED_UPSTREAM);
  });
});
