import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { STALLED_CLIENT, STALLED_UPSTREAM, StreamIdleTimer, stalledSide } from "./stream-idle.js";

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout"] });
});
afterEach(() => {
  vi.useRealTimers();
});

describe("StreamIdleTimer", () => {
  it("fires once when no byte moves for the timeout", () => {
    const idle = vi.fn();
    const timer = new StreamIdleTimer(idle);
    timer.start(300);
    vi.advanceTimersByTime(299);
    expect(idle).not.toHaveBeenCalled();
    vi.advanceTimersByTime(1);
    expect(idle).toHaveBeenCalledTimes(1);
    vi.advanceTimersByTime(10_000);
    expect(idle).toHaveBeenCalledTimes(1);
  });

  it("a byte every 100 ms never lets it fire, with one timer per period, none per byte", () => {
    const idle = vi.fn();
    const timer = new StreamIdleTimer(idle);
    const timers = vi.spyOn(globalThis, "setTimeout");
    timer.start(300);
    for (let i = 0; i < 30; i++) {
      vi.advanceTimersByTime(100);
      timer.touch();
    }
    expect(idle).not.toHaveBeenCalled();
    // 3 s of bytes at a 300 ms timeout: armed at start, then once per period.
    expect(timers.mock.calls.length).toBeLessThanOrEqual(11);
    // Silence: detected within two timeouts of the last byte, not before one.
    vi.advanceTimersByTime(299);
    expect(idle).not.toHaveBeenCalled();
    vi.advanceTimersByTime(301);
    expect(idle).toHaveBeenCalledTimes(1);
  });

  it("an attempt that reuses a timer armed earlier still gets a whole timeout of silence", () => {
    const idle = vi.fn();
    const timer = new StreamIdleTimer(idle);
    timer.start(300);
    timer.clear();
    vi.advanceTimersByTime(250);
    timer.start(300);
    vi.advanceTimersByTime(299);
    expect(idle).not.toHaveBeenCalled();
    vi.advanceTimersByTime(301);
    expect(idle).toHaveBeenCalledTimes(1);
  });

  it("a shorter timeout than the pending timer's re-arms it", () => {
    const idle = vi.fn();
    const timer = new StreamIdleTimer(idle);
    timer.start(300_000);
    timer.clear();
    timer.start(300);
    vi.advanceTimersByTime(300);
    expect(idle).toHaveBeenCalledTimes(1);
  });

  it("clear stops timing: the pending timer lapses and touches do not revive it", () => {
    const idle = vi.fn();
    const timer = new StreamIdleTimer(idle);
    timer.start(300);
    timer.clear();
    timer.touch();
    vi.advanceTimersByTime(1000);
    expect(idle).not.toHaveBeenCalled();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("0 ms (streamIdleTimeout: 0s) never fires, even when an earlier attempt timed", () => {
    const idle = vi.fn();
    const timer = new StreamIdleTimer(idle);
    timer.start(300);
    timer.start(0);
    timer.touch();
    vi.advanceTimersByTime(10_000);
    expect(idle).not.toHaveBeenCalled();
  });

  it("stop releases the armed timer", () => {
    const idle = vi.fn();
    const timer = new StreamIdleTimer(idle);
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
