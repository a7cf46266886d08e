import { beforeEach, describe, expect, it } from "vitest";
import { type ExchangeRecord, emptyRecord } from "./exchange.js";
import { binValue, LATENCY_BINS, latencyBin, TrafficWindow } from "./traffic-window.js";

class FakeClock {
  ms = 0;
  readonly now = (): number => this.ms;
}

let clock = new FakeClock();
beforeEach(() => {
  clock = new FakeClock();
});

/** An exchange that ends at `clock.ms` (the window files it under its end). */
function exchange(
  cluster: string,
  endpoint: string,
  status: number,
  durationMs: number,
  flags = "-",
): ExchangeRecord {
  const record = emptyRecord("outbound");
  record.cluster = cluster;
  record.endpoint = endpoint;
  record.status = status;
  record.durationMs = durationMs;
  record.startMs = clock.ms - durationMs;
  record.flags = flags;
  return record;
}

const A = "10.0.0.1:80";
const B = "10.0.0.2:80";

describe("latency bins", () => {
  it("put bin edges where the comment says", () => {
    expect(latencyBin(0)).toBe(0);
    expect(latencyBin(0.001)).toBe(0);
    expect(latencyBin(2 ** -5)).toBe(0);
    expect(latencyBin(1)).toBe(20);
    expect(latencyBin(1.0001)).toBe(21);
    expect(latencyBin(1024)).toBe(60);
    expect(latencyBin(2 ** 16.5)).toBe(86);
    expect(latencyBin(100_000)).toBe(LATENCY_BINS - 1);
    expect(latencyBin(Number.POSITIVE_INFINITY)).toBe(LATENCY_BINS - 1);
  });

  it("report every duration from 31 µs to 92 s within ±9.1%", () => {
    for (let ms = 0.032; ms < 92_000; ms *= 1.013) {
      const reported = binValue(latencyBin(ms));
      expect(Math.abs(reported / ms - 1), String(ms)).toBeLessThanOrEqual(2 ** (1 / 8) - 1);
    }
  });
});

describe("TrafficWindow", () => {
  it("counts requests, errors, flags and quantiles per service, endpoint and in total", () => {
    const window = new TrafficWindow({ clock: clock.now });
    clock.ms = 500;
    for (let i = 0; i < 8; i++) window.report(exchange("hello.default", A, 200, 10));
    window.report(exchange("hello.default", A, 503, 20));
    window.report(exchange("hello.default", B, 200, 100, "UC"));
    clock.ms = 1500;
    window.report(exchange("hello.default", B, 404, 10));
    window.report(exchange("", "", 404, 0.01, "NR"));
    clock.ms = 2000;

    const hello = window.service("hello.default");
    expect(hello.requests).toBe(11);
    expect(hello.errors).toBe(2);
    expect(hello.errorRate).toBe(2 / 11);
    // Two seconds since start: 11 requests / 2 s.
    expect(hello.requestsPerSecond).toBe(5.5);
    // Nearest rank: p50 is the 6th of 11 (10 ms), p99 the 11th (100 ms).
    expect(hello.p50Ms).toBe(binValue(latencyBin(10)));
    expect(hello.p99Ms).toBe(binValue(latencyBin(100)));
    expect(hello.responseFlags).toEqual({ UC: 1 });
    expect(hello.perSecond).toHaveLength(60);
    expect(hello.perSecond.slice(-3)).toEqual([10, 1, 0]);
    expect(hello.perSecond.slice(0, -3).every((n) => n === 0)).toBe(true);

    const a = window.service("hello.default", A);
    expect([a.requests, a.errors, a.p99Ms]).toEqual([9, 1, binValue(latencyBin(20))]);
    const b = window.service("hello.default", B);
    expect([b.requests, b.errors, b.responseFlags]).toEqual([2, 1, { UC: 1 }]);

    const total = window.total();
    expect([total.requests, total.errors]).toEqual([12, 3]);
    expect(total.responseFlags).toEqual({ UC: 1, NR: 1 });
    expect(total.p50Ms).toBe(binValue(latencyBin(10)));
  });

  it("files an exchange under the second it ended in, not when it was reported", () => {
    const window = new TrafficWindow({ clock: clock.now });
    clock.ms = 2_400;
    const late = exchange("s.ns", A, 200, 900);
    late.startMs = 100; // ended at 1,000 ms: second 1
    clock.ms = 3_000;
    window.report(late);
    expect(window.service("s.ns").perSecond.slice(-4)).toEqual([0, 1, 0, 0]);
  });

  it("gives zeros and null quantiles for a service without traffic", () => {
    const window = new TrafficWindow({ clock: clock.now });
    const none = window.service("nope.default");
    expect(none).toMatchObject({ requests: 0, errors: 0, requestsPerSecond: 0, errorRate: 0 });
    expect([none.p50Ms, none.p99Ms]).toEqual([null, null]);
    expect(window.service("nope.default", A).requests).toBe(0);
  });

  it("slides: a second leaves the window exactly 60 s after it began, and its slot is reused", () => {
    const window = new TrafficWindow({ clock: clock.now });
    clock.ms = 200;
    for (let i = 0; i < 5; i++) window.report(exchange("s.ns", A, 500, 1, "UF"));
    clock.ms = 59_999;
    expect(window.service("s.ns").requests).toBe(5);
    expect(window.service("s.ns").perSecond[0]).toBe(5);
    clock.ms = 60_000;
    expect(window.service("s.ns").requests).toBe(0);
    expect(window.service("s.ns").responseFlags).toEqual({});
    // Second 60 lands in second 0's slot: only its own counts remain.
    window.report(exchange("s.ns", A, 200, 1));
    const after = window.service("s.ns");
    expect([after.requests, after.errors, after.responseFlags]).toEqual([1, 0, {}]);
    expect(after.perSecond.at(-1)).toBe(1);
  });

  it("divides by the time covered: since start at first, then 59 s plus the current second", () => {
    clock.ms = 10_000;
    const window = new TrafficWindow({ clock: clock.now });
    // A burst right after start reads per second, not per millisecond.
    clock.ms = 10_010;
    window.report(exchange("s.ns", A, 200, 1));
    expect(window.spanSeconds()).toBe(1);
    expect(window.service("s.ns").requestsPerSecond).toBe(1);
    clock.ms = 14_000;
    expect(window.spanSeconds()).toBe(4);
    clock.ms = 110_250;
    for (let i = 0; i < 237; i++) window.report(exchange("s.ns", A, 200, 1));
    expect(window.spanSeconds()).toBe(59.25);
    expect(window.service("s.ns").requestsPerSecond).toBe(4);
  });

  it("counts flag strings past the 15th as other", () => {
    const window = new TrafficWindow({ clock: clock.now });
    for (let i = 0; i < 17; i++) window.report(exchange("s.ns", A, 502, 1, `F${i}`));
    const flags = window.service("s.ns").responseFlags;
    expect(Object.keys(flags)).toHaveLength(16);
    expect(flags.F14).toBe(1);
    expect(flags.F15).toBeUndefined();
    expect(flags.other).toBe(2);
  });

  it("drops a series quiet for a whole window when a new one arrives", () => {
    const window = new TrafficWindow({ clock: clock.now });
    window.report(exchange("old.ns", A, 200, 1));
    window.report(exchange("s.ns", A, 200, 1));
    // Two services, one endpoint each.
    expect(window.seriesCount).toBe(4);
    clock.ms = 30_000;
    window.report(exchange("s.ns", B, 200, 1));
    expect(window.seriesCount).toBe(5);
    clock.ms = 60_000;
    window.report(exchange("new.ns", B, 200, 1));
    // old.ns (quiet since second 0) goes with its endpoint; s.ns (second 30) stays; new.ns + B.
    expect(window.seriesCount).toBe(5 - 2 + 2);
    clock.ms = 90_000;
    window.report(exchange("s.ns", "10.0.0.3:80", 200, 1));
    // s.ns's A (second 0) and B (second 30) are out of the window 31..90; the new one is in.
    expect(window.seriesCount).toBe(5 - 2 + 1);
    expect(window.service("s.ns").requests).toBe(1);
  });

  it("passes every record on to the next reporter", () => {
    const seen: string[] = [];
    const window = new TrafficWindow({
      clock: clock.now,
      next: { report: (r) => seen.push(r.cluster) },
    });
    window.report(exchange("s.ns", A, 200, 1));
    window.report(exchange("", "", 404, 1, "NR"));
    expect(seen).toEqual(["s.ns", ""]);
  });
});
