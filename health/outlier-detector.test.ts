import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  type AttemptResult,
  type FlagReason,
  HealthFlag,
  type HealthFlagSink,
  ResultKind,
} from "./health.js";
import {
  DEFAULT_OUTLIER_SETTINGS,
  describeResult,
  OUTLIER_SOURCE,
  OutlierDetector,
  type OutlierEvent,
  type OutlierLogger,
  type OutlierSettings,
} from "./outlier-detector.js";

beforeEach(() => {
  vi.useFakeTimers({
    toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "performance"],
  });
});
afterEach(() => {
  vi.useRealTimers();
});

function http(status: number): AttemptResult {
  return { kind: ResultKind.HTTP, status };
}
const OK = http(200);
const E500 = http(500);
const E502 = http(502);
const E503 = http(503);
const E504 = http(504);
const CONNECT: AttemptResult = { kind: ResultKind.CONNECT_FAILED, status: 0 };
const RESET: AttemptResult = { kind: ResultKind.RESET, status: 0 };
const TIMEOUT: AttemptResult = { kind: ResultKind.TIMEOUT, status: 0 };

const BASE = DEFAULT_OUTLIER_SETTINGS.baseEjectionTimeMs;
const INTERVAL = DEFAULT_OUTLIER_SETTINGS.intervalMs;

function ids(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `10.0.0.${i + 1}:8080`);
}
const [A, B, C] = ids(3) as [string, string, string];

type SinkCall = ["set", string, FlagReason] | ["clear", string, HealthFlag];
type LogCall = [level: "info" | "warn", fields: Record<string, unknown>, message: string];

/**
 * One detector over a recording sink, logger and event listener, with the fake clock. Times in
 * expectations are relative to `t0`, the fake clock when the harness was made.
 */
class Harness implements HealthFlagSink {
  readonly t0 = performance.now();
  sinkCalls: SinkCall[] = [];
  events: OutlierEvent[] = [];
  logs: LogCall[] = [];
  /** Runs inside `set`, after recording (re-entrancy tests). */
  afterSet: ((endpointId: string) => void) | undefined;
  readonly detector: OutlierDetector;

  constructor(over: Partial<OutlierSettings> = {}, endpointIds: readonly string[] = [A, B, C]) {
    const logger = {
      info: (fields: Record<string, unknown>, message: string) => {
        this.logs.push(["info", fields, message]);
      },
      warn: (fields: Record<string, unknown>, message: string) => {
        this.logs.push(["warn", fields, message]);
      },
    } as unknown as OutlierLogger;
    this.detector = new OutlierDetector({ ...DEFAULT_OUTLIER_SETTINGS, ...over }, this, {
      clock: () => performance.now(),
      logger,
      onEvent: (event) => this.events.push(event),
    });
    this.detector.update(endpointIds);
  }

  set(endpointId: string, reason: FlagReason): void {
    this.sinkCalls.push(["set", endpointId, reason]);
    this.afterSet?.(endpointId);
  }

  clear(endpointId: string, flag: HealthFlag): void {
    this.sinkCalls.push(["clear", endpointId, flag]);
  }

  put(endpointId: string, result: AttemptResult, times = 1): void {
    for (let i = 0; i < times; i++) this.detector.putResult(endpointId, result);
  }

  /** Move the fake clock to `ms` after t0 (never backwards), firing timers on the way. */
  at(ms: number): void {
    const delta = this.t0 + ms - performance.now();
    expect(delta).toBeGreaterThanOrEqual(0);
    vi.advanceTimersByTime(delta);
  }

  /** Epoch ms of `ms` after t0, as the detector reports it. */
  epoch(ms: number): number {
    return Math.round(performance.timeOrigin + this.t0 + ms);
  }

  ejected(endpointId: string): boolean {
    return this.detector.describe(endpointId)?.ejected ?? false;
  }

  /** Sink calls and events since the last take, then forgets them (and the logs). */
  take(): { sink: SinkCall[]; events: OutlierEvent[] } {
    const out = { sink: this.sinkCalls, events: this.events };
    this.sinkCalls = [];
    this.events = [];
    this.logs = [];
    return out;
  }

  /** What one enforced ejection must produce: exactly one set and one eject event. */
  expectEjected(endpointId: string, reason: string, untilMs: number, ejections: number): void {
    expect(this.take()).toEqual({
      sink: [
        [
          "set",
          endpointId,
          {
            flag: HealthFlag.FAILED_OUTLIER_CHECK,
            source: "outlier-detection",
            reason,
            untilMs: this.epoch(untilMs),
          },
        ],
      ],
      events: [{ kind: "eject", endpointId, reason, untilMs: this.epoch(untilMs), ejections }],
    });
  }

  /** What one return must produce: exactly one clear and one return event. */
  expectReturned(endpointId: string, ejections: number): void {
    expect(this.take()).toEqual({
      sink: [["clear", endpointId, HealthFlag.FAILED_OUTLIER_CHECK]],
      events: [
        { kind: "return", endpointId, reason: "ejection time passed", untilMs: 0, ejections },
      ],
    });
  }

  expectNothing(): void {
    expect(this.take()).toEqual({ sink: [], events: [] });
  }
}

describe("OutlierDetector: settings", () => {
  it("defaults to Istio's values, consecutive mode, split off", () => {
    expect(DEFAULT_OUTLIER_SETTINGS).toEqual({
      mode: "consecutive",
      consecutiveErrors: 5,
      consecutiveGatewayErrors: 0,
      consecutiveLocalOriginFailures: 5,
      splitExternalLocalOriginErrors: false,
      intervalMs: 10_000,
      baseEjectionTimeMs: 30_000,
      maxEjectionTimeMs: 300_000,
      maxEjectionPercent: 10,
    });
    expect(Object.isFrozen(DEFAULT_OUTLIER_SETTINGS)).toBe(true);
    expect(OUTLIER_SOURCE).toBe("outlier-detection");
  });

  it("rejects settings it cannot honour, once, in the constructor", () => {
    const make = (over: Partial<OutlierSettings>) => () => new Harness(over);
    expect(make({ mode: "sometimes" as "consecutive" })).toThrow(/mode/);
    expect(make({ consecutiveErrors: -1 })).toThrow(RangeError);
    expect(make({ consecutiveErrors: 1.5 })).toThrow(/consecutiveErrors/);
    expect(make({ consecutiveGatewayErrors: Number.NaN })).toThrow(/consecutiveGatewayErrors/);
    expect(make({ consecutiveLocalOriginFailures: -2 })).toThrow(/consecutiveLocalOriginFailures/);
    expect(make({ intervalMs: 0 })).toThrow(/intervalMs/);
    expect(make({ baseEjectionTimeMs: Number.POSITIVE_INFINITY })).toThrow(/baseEjectionTimeMs/);
    expect(make({ maxEjectionTimeMs: -1 })).toThrow(/maxEjectionTimeMs/);
    expect(make({ maxEjectionPercent: 101 })).toThrow(/maxEjectionPercent/);
    expect(make({ maxEjectionPercent: -1 })).toThrow(/maxEjectionPercent/);
    // 0 is "off" for the counts and "detect only" for the percentage: accepted.
    expect(
      make({ consecutiveErrors: 0, consecutiveGatewayErrors: 0, maxEjectionPercent: 0 }),
    ).not.toThrow();
  });

  it("names the last result in reasons", () => {
    expect([OK, E503, CONNECT, RESET, TIMEOUT].map(describeResult)).toEqual([
      "200",
      "503",
      "connect failed",
      "reset",
      "timeout",
    ]);
  });
});

describe("OutlierDetector: fail-fast", () => {
  it("ejects on exactly one failure and returns exactly at the base ejection time", () => {
    const h = new Harness({ mode: "fail-fast" });
    h.put(A, OK, 3);
    h.expectNothing();

    h.at(1000);
    h.put(A, CONNECT);
    h.expectEjected(A, "first failure (fail-fast): connect failed", 1000 + BASE, 1);
    expect(h.detector.describe(A)).toEqual({
      ejected: true,
      untilMs: h.epoch(1000 + BASE),
      ejections: 1,
      reason: "first failure (fail-fast): connect failed",
      probation: false,
    });
    expect(h.detector.stats).toEqual({ ejectionsEnforced: 1, ejectionsDetected: 1, ejectedNow: 1 });

    h.at(1000 + BASE - 1);
    expect(h.ejected(A)).toBe(true);
    h.expectNothing();
    h.at(1000 + BASE);
    h.expectReturned(A, 1);
    expect(h.detector.describe(A)).toEqual({
      ejected: false,
      untilMs: 0,
      ejections: 1,
      reason: "",
      probation: true,
    });
    expect(h.detector.stats).toEqual({ ejectionsEnforced: 1, ejectionsDetected: 1, ejectedNow: 0 });
  });

  it("counts every kind of failure, and nothing below 500", () => {
    for (const [result, last] of [
      [E500, "500"],
      [E503, "503"],
      [RESET, "reset"],
      [TIMEOUT, "timeout"],
    ] as const) {
      const h = new Harness({ mode: "fail-fast" });
      h.put(A, result);
      h.expectEjected(A, `first failure (fail-fast): ${last}`, BASE, 1);
    }
    const h = new Harness({ mode: "fail-fast" });
    for (const status of [200, 204, 301, 400, 404, 429, 499]) h.put(A, http(status));
    h.expectNothing();
    expect(h.ejected(A)).toBe(false);
  });

  it("ejects again on the first failure after a return, for twice as long", () => {
    const h = new Harness({ mode: "fail-fast" });
    h.put(B, E502);
    h.expectEjected(B, "first failure (fail-fast): 502", BASE, 1);
    h.at(BASE);
    h.expectReturned(B, 1);
    h.put(B, TIMEOUT);
    h.expectEjected(B, "first failure (fail-fast): timeout", 3 * BASE, 2);
  });
});

describe("OutlierDetector: consecutive", () => {
  it("ejects after exactly consecutiveErrors failures, not one fewer", () => {
    const h = new Harness();
    h.put(A, E503, 4);
    h.expectNothing();
    expect(h.ejected(A)).toBe(false);
    h.put(A, E503);
    h.expectEjected(A, "5 consecutive errors (last: 503)", BASE, 1);
  });

  it("resets the count on a success (any status below 500)", () => {
    const h = new Harness();
    h.put(A, E503, 4);
    h.put(A, OK);
    h.put(A, E503, 4);
    h.put(A, http(404));
    h.put(A, E503, 4);
    h.expectNothing();
    h.put(A, E503);
    h.expectEjected(A, "5 consecutive errors (last: 503)", BASE, 1);
  });

  it("counts 5xx and local-origin failures together, per endpoint", () => {
    const h = new Harness({ consecutiveErrors: 3, maxEjectionPercent: 100 });
    h.put(A, E500);
    h.put(B, CONNECT, 2);
    h.put(A, RESET);
    h.expectNothing();
    h.put(A, TIMEOUT);
    h.expectEjected(A, "3 consecutive errors (last: timeout)", BASE, 1);
    expect(h.ejected(B)).toBe(false);
    h.put(B, E504);
    h.expectEjected(B, "3 consecutive errors (last: 504)", BASE, 1);
  });

  it("counts gateway errors (502/503/504 and local origin) when consecutiveGatewayErrors > 0", () => {
    const h = new Harness({ consecutiveGatewayErrors: 3, maxEjectionPercent: 100 });
    h.put(A, E502);
    h.put(A, E503);
    h.expectNothing();
    h.put(A, E504);
    h.expectEjected(A, "3 consecutive gateway errors (last: 504)", BASE, 1);

    // Local-origin failures are gateway errors too (Envoy's mapping when split is off).
    h.put(B, E503);
    h.put(B, CONNECT);
    h.put(B, RESET);
    h.expectEjected(B, "3 consecutive gateway errors (last: reset)", BASE, 1);
  });

  it("lets a 500 break a gateway streak but count toward consecutiveErrors", () => {
    const h = new Harness({ consecutiveGatewayErrors: 3, maxEjectionPercent: 100 });
    // Gateway streak: 2, then 0 (500), then 2: never 3. Failures in a row: 5.
    h.put(A, E503, 2);
    h.put(A, E500);
    h.put(A, E503);
    h.expectNothing();
    h.put(A, E503);
    h.expectEjected(A, "5 consecutive errors (last: 503)", BASE, 1);
  });

  it("names consecutiveErrors when both conditions are met by the same result", () => {
    const h = new Harness({ consecutiveErrors: 3, consecutiveGatewayErrors: 3 });
    h.put(A, E503, 3);
    h.expectEjected(A, "3 consecutive errors (last: 503)", BASE, 1);
  });

  it("never ejects on 500s when only gateway errors are enabled", () => {
    const h = new Harness({ consecutiveErrors: 0, consecutiveGatewayErrors: 2 });
    h.put(A, E500, 50);
    h.expectNothing();
    h.put(A, E503, 2);
    h.expectEjected(A, "2 consecutive gateway errors (last: 503)", BASE, 1);
  });

  it("ejects nothing when every count is off", () => {
    const h = new Harness({ consecutiveErrors: 0, consecutiveGatewayErrors: 0 });
    h.put(A, E503, 100);
    h.put(A, CONNECT, 100);
    h.expectNothing();
    expect(h.detector.stats).toEqual({ ejectionsEnforced: 0, ejectionsDetected: 0, ejectedNow: 0 });
  });

  it("ignores results for an ejected endpoint (in flight): no second ejection, no count", () => {
    const h = new Harness();
    h.put(A, E503, 5);
    h.expectEjected(A, "5 consecutive errors (last: 503)", BASE, 1);
    h.put(A, E503, 20);
    h.put(A, OK, 3); // successes do not end the ejection either
    h.put(A, CONNECT, 20);
    h.expectNothing();
    expect(h.detector.stats).toEqual({ ejectionsEnforced: 1, ejectionsDetected: 1, ejectedNow: 1 });
    expect(h.detector.describe(A)?.untilMs).toBe(h.epoch(BASE));
    h.at(BASE);
    h.expectReturned(A, 1);
  });

  it("ignores results for ids not in the set", () => {
    const h = new Harness({ mode: "fail-fast" });
    h.put("10.9.9.9:80", CONNECT, 10);
    h.expectNothing();
    expect(h.detector.describe("10.9.9.9:80")).toBeUndefined();
  });
});

describe("OutlierDetector: split local-origin errors", () => {
  const split = { splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailures: 2 };

  it("counts local-origin failures only toward consecutiveLocalOriginFailures", () => {
    const h = new Harness({ ...split, consecutiveErrors: 3, consecutiveGatewayErrors: 3 });
    h.put(A, CONNECT);
    h.expectNothing();
    h.put(A, TIMEOUT);
    h.expectEjected(A, "2 consecutive local-origin failures (last: timeout)", BASE, 1);
  });

  it("leaves the HTTP streak alone on local-origin failures", () => {
    const h = new Harness({ ...split, consecutiveLocalOriginFailures: 5, consecutiveErrors: 3 });
    // Not split, these would be 4 failures in a row; split, the 5xx streak is 503, 503, 503.
    h.put(A, E503, 2);
    h.put(A, RESET);
    h.expectNothing();
    h.put(A, E503);
    h.expectEjected(A, "3 consecutive errors (last: 503)", BASE, 1);
  });

  it("does not count local-origin failures as gateway errors", () => {
    const h = new Harness({
      ...split,
      consecutiveLocalOriginFailures: 0,
      consecutiveErrors: 0,
      consecutiveGatewayErrors: 2,
    });
    h.put(A, CONNECT, 10);
    h.put(A, E503);
    h.put(A, RESET, 10);
    h.expectNothing();
    h.put(A, E502);
    h.expectEjected(A, "2 consecutive gateway errors (last: 502)", BASE, 1);
  });

  it("resets the local-origin count on any HTTP response, even a 5xx", () => {
    const h = new Harness({ ...split, consecutiveErrors: 0 });
    h.put(A, CONNECT);
    h.put(A, OK);
    h.put(A, CONNECT);
    h.put(A, E500);
    h.put(A, CONNECT);
    h.expectNothing();
    h.put(A, CONNECT);
    h.expectEjected(A, "2 consecutive local-origin failures (last: connect failed)", BASE, 1);
  });

  it("never ejects on local-origin failures with consecutiveLocalOriginFailures 0", () => {
    const h = new Harness({ ...split, consecutiveLocalOriginFailures: 0 });
    h.put(A, CONNECT, 100);
    h.expectNothing();
  });

  it("is ignored when split is off: consecutiveLocalOriginFailures has no effect", () => {
    const h = new Harness({ consecutiveLocalOriginFailures: 2 });
    h.put(A, CONNECT, 4);
    h.expectNothing();
    h.put(A, CONNECT);
    h.expectEjected(A, "5 consecutive errors (last: connect failed)", BASE, 1);
  });
});

describe("OutlierDetector: probation", () => {
  it("re-ejects on one failure after a return, for 2× base", () => {
    const h = new Harness();
    h.put(A, E503, 5);
    h.expectEjected(A, "5 consecutive errors (last: 503)", BASE, 1);
    h.at(BASE);
    h.expectReturned(A, 1);
    expect(h.detector.describe(A)?.probation).toBe(true);
    h.at(BASE + 500);
    h.put(A, RESET);
    h.expectEjected(A, "probation failed: reset", BASE + 500 + 2 * BASE, 2);
    expect(h.detector.describe(A)).toEqual({
      ejected: true,
      untilMs: h.epoch(BASE + 500 + 2 * BASE),
      ejections: 2,
      reason: "probation failed: reset",
      probation: false,
    });
    h.at(BASE + 500 + 2 * BASE - 1);
    expect(h.ejected(A)).toBe(true);
    h.at(BASE + 500 + 2 * BASE);
    h.expectReturned(A, 2);
  });

  it("restores on success: counting starts again from zero", () => {
    const h = new Harness();
    h.put(A, E503, 5);
    h.take();
    h.at(BASE);
    h.expectReturned(A, 1);
    h.put(A, OK);
    expect(h.detector.describe(A)).toEqual({
      ejected: false,
      untilMs: 0,
      ejections: 1,
      reason: "",
      probation: false,
    });
    h.put(A, E503, 4);
    h.expectNothing();
    h.put(A, E503);
    // The multiplier has not decayed (no sweep since the success): 2× base.
    h.expectEjected(A, "5 consecutive errors (last: 503)", BASE + 2 * BASE, 2);
  });

  it("waits as long as it takes for the first result", () => {
    const h = new Harness();
    h.put(A, E503, 5);
    h.at(BASE);
    h.take();
    h.at(BASE + 10 * INTERVAL);
    expect(h.detector.describe(A)?.probation).toBe(true);
    h.put(A, E503);
    h.expectEjected(A, "probation failed: 503", BASE + 10 * INTERVAL + 2 * BASE, 2);
  });

  it("judges by the enabled conditions: a 500 passes probation when only gateway errors count", () => {
    const h = new Harness({ consecutiveErrors: 0, consecutiveGatewayErrors: 1 });
    h.put(A, E503);
    h.expectEjected(A, "1 consecutive gateway errors (last: 503)", BASE, 1);
    h.at(BASE);
    h.expectReturned(A, 1);
    h.put(A, E500);
    h.expectNothing();
    expect(h.detector.describe(A)?.probation).toBe(false);
  });
});

describe("OutlierDetector: ejection time", () => {
  it("grows 1×, 2×, 3× base and is capped by maxEjectionTime", () => {
    // A long interval: no decay between ejections.
    const h = new Harness({
      mode: "fail-fast",
      baseEjectionTimeMs: 1000,
      maxEjectionTimeMs: 3500,
      intervalMs: 1e9,
    });
    let now = 0;
    const expected = [
      [1000, 1],
      [2000, 2],
      [3000, 3],
      [3500, 4], // 4000 capped
      [3500, 4], // the multiplier stops at the cap, so decay starts working at once
      [3500, 4],
    ] as const;
    for (const [duration, ejections] of expected) {
      h.put(A, E503);
      h.expectEjected(A, "first failure (fail-fast): 503", now + duration, ejections);
      h.at(now + duration - 1);
      expect(h.ejected(A)).toBe(true);
      now += duration;
      h.at(now);
      h.expectReturned(A, ejections);
    }
  });

  it("treats maxEjectionTime below baseEjectionTime as baseEjectionTime (Envoy)", () => {
    const h = new Harness({ mode: "fail-fast", baseEjectionTimeMs: 1000, maxEjectionTimeMs: 10 });
    for (let i = 0; i < 3; i++) {
      h.put(A, E503);
      h.expectEjected(A, "first failure (fail-fast): 503", (i + 1) * 1000, 1);
      h.at((i + 1) * 1000);
      h.expectReturned(A, 1);
    }
  });

  it("decays the multiplier by one per interval while healthy, never below 0", () => {
    const h = new Harness({ mode: "fail-fast" });
    // Three ejections in a row: ends at BASE + 2 BASE + 3 BASE = 6 BASE, multiplier 3.
    h.put(A, E503);
    h.at(BASE);
    h.put(A, E503);
    h.at(3 * BASE);
    h.put(A, E503);
    h.take();
    expect(h.detector.describe(A)?.ejections).toBe(3);
    h.at(6 * BASE);
    h.expectReturned(A, 3);
    // On probation: not healthy yet, no decay however many sweeps pass.
    h.at(6 * BASE + 5 * INTERVAL);
    expect(h.detector.describe(A)?.ejections).toBe(3);
    h.put(A, OK);
    // Sweeps run every INTERVAL from the first ejection (t = 0).
    const start = 6 * BASE + 5 * INTERVAL;
    h.at(start + INTERVAL - 1);
    expect(h.detector.describe(A)?.ejections).toBe(3);
    h.at(start + INTERVAL);
    expect(h.detector.describe(A)?.ejections).toBe(2);
    h.at(start + 2 * INTERVAL);
    expect(h.detector.describe(A)?.ejections).toBe(1);
    h.at(start + 3 * INTERVAL);
    expect(h.detector.describe(A)?.ejections).toBe(0);
    // Nothing left to decay: the sweep stops.
    expect(vi.getTimerCount()).toBe(0);
    h.at(start + 10 * INTERVAL);
    expect(h.detector.describe(A)?.ejections).toBe(0);
    h.expectNothing();
    h.put(A, E503);
    h.expectEjected(A, "first failure (fail-fast): 503", start + 10 * INTERVAL + BASE, 1);
  });

  it("does not decay while ejected", () => {
    const h = new Harness({ mode: "fail-fast", baseEjectionTimeMs: 5 * INTERVAL });
    h.put(A, E503);
    h.at(5 * INTERVAL - 1);
    expect(h.detector.describe(A)?.ejections).toBe(1);
    h.at(5 * INTERVAL);
    h.put(A, E503); // probation fails at once: 2× base
    h.take();
    h.at(15 * INTERVAL - 1);
    expect(h.detector.describe(A)?.ejections).toBe(2);
  });

  it("decays partly, so the next ejection is shorter than the last", () => {
    const h = new Harness({ mode: "fail-fast" });
    h.put(A, E503);
    h.at(BASE);
    h.put(A, E503);
    h.at(3 * BASE);
    h.put(A, E503);
    h.at(6 * BASE);
    h.put(A, OK);
    h.take();
    // One sweep after 6 BASE (a multiple of INTERVAL): 3 → 2.
    h.at(6 * BASE + INTERVAL);
    expect(h.detector.describe(A)?.ejections).toBe(2);
    h.put(A, E503);
    h.expectEjected(A, "first failure (fail-fast): 503", 6 * BASE + INTERVAL + 3 * BASE, 3);
  });
});

describe("OutlierDetector: maxEjectionPercent", () => {
  it("10 endpoints at 10%: one enforced, the next detected only", () => {
    const all = ids(10);
    const h = new Harness({ mode: "fail-fast" }, all);
    h.put(all[0]!, E503);
    h.expectEjected(all[0]!, "first failure (fail-fast): 503", BASE, 1);

    h.put(all[1]!, CONNECT);
    expect(h.logs).toEqual([
      [
        "warn",
        {
          endpoint: all[1],
          reason: "first failure (fail-fast): connect failed",
          ejectedNow: 1,
          endpoints: 10,
          maxEjectionPercent: 10,
        },
        "outlier detected, not ejected: maxEjectionPercent reached",
      ],
    ]);
    expect(h.take()).toEqual({
      sink: [],
      events: [
        {
          kind: "detected",
          endpointId: all[1],
          reason: "first failure (fail-fast): connect failed",
          untilMs: 0,
          ejections: 0,
        },
      ],
    });
    expect(h.detector.stats).toEqual({ ejectionsEnforced: 1, ejectionsDetected: 2, ejectedNow: 1 });
    expect(h.detector.describe(all[1]!)).toEqual({
      ejected: false,
      untilMs: 0,
      ejections: 0,
      reason:
        "first failure (fail-fast): connect failed (not ejected: maxEjectionPercent 10 reached)",
      probation: false,
    });

    // The same streak is reported once, however long it goes on.
    h.put(all[1]!, CONNECT, 50);
    h.expectNothing();
    expect(h.logs).toEqual([]);
    expect(h.detector.stats).toEqual({ ejectionsEnforced: 1, ejectionsDetected: 2, ejectedNow: 1 });

    // Another endpoint: its own detection.
    h.put(all[2]!, E500);
    expect(h.take().events.map((e) => [e.kind, e.endpointId])).toEqual([["detected", all[2]]]);
    expect(h.detector.stats).toEqual({ ejectionsEnforced: 1, ejectionsDetected: 3, ejectedNow: 1 });
  });

  it("ejects a held endpoint on its next failure once room frees up, counted detected once", () => {
    const all = ids(10);
    const h = new Harness({ mode: "fail-fast" }, all);
    h.put(all[0]!, E503);
    h.put(all[1]!, E503, 3);
    h.take();
    h.at(BASE);
    h.expectReturned(all[0]!, 1);
    h.put(all[1]!, E503);
    h.expectEjected(all[1]!, "4 consecutive errors (fail-fast, last: 503)", 2 * BASE, 1);
    expect(h.detector.stats).toEqual({ ejectionsEnforced: 2, ejectionsDetected: 2, ejectedNow: 1 });
  });

  it("a success ends a held streak: the next failure is a new detection", () => {
    const all = ids(10);
    const h = new Harness({}, all);
    h.put(all[0]!, E503, 5);
    h.put(all[1]!, E503, 5);
    expect(h.take().events.map((e) => e.kind)).toEqual(["eject", "detected"]);
    h.put(all[1]!, OK);
    expect(h.detector.describe(all[1]!)?.reason).toBe("");
    h.put(all[1]!, E503, 4);
    h.expectNothing();
    h.put(all[1]!, E503);
    expect(h.take().events).toEqual([
      {
        kind: "detected",
        endpointId: all[1],
        reason: "5 consecutive errors (last: 503)",
        untilMs: 0,
        ejections: 0,
      },
    ]);
    expect(h.detector.stats).toEqual({ ejectionsEnforced: 1, ejectionsDetected: 3, ejectedNow: 1 });
  });

  it("3 endpoints at 10%: one may still be ejected (at least one), not two", () => {
    const h = new Harness({ mode: "fail-fast" }, [A, B, C]);
    h.put(A, E503);
    h.expectEjected(A, "first failure (fail-fast): 503", BASE, 1);
    h.put(B, E503);
    expect(h.take()).toEqual({
      sink: [],
      events: [
        {
          kind: "detected",
          endpointId: B,
          reason: "first failure (fail-fast): 503",
          untilMs: 0,
          ejections: 0,
        },
      ],
    });
  });

  it("20 endpoints at 10%: two at once, the third detected", () => {
    const all = ids(20);
    const h = new Harness({ mode: "fail-fast" }, all);
    for (const id of all.slice(0, 3)) h.put(id, E503);
    expect(h.take().events.map((e) => e.kind)).toEqual(["eject", "eject", "detected"]);
    expect(h.detector.stats).toEqual({ ejectionsEnforced: 2, ejectionsDetected: 3, ejectedNow: 2 });
  });

  it("15 endpoints at 10%: one, since two would be 13%", () => {
    const all = ids(15);
    const h = new Harness({ mode: "fail-fast" }, all);
    for (const id of all.slice(0, 2)) h.put(id, E503);
    expect(h.take().events.map((e) => e.kind)).toEqual(["eject", "detected"]);
  });

  it("100% ejects every endpoint; 0% ejects none (detect only)", () => {
    const h = new Harness({ mode: "fail-fast", maxEjectionPercent: 100 });
    for (const id of [A, B, C]) h.put(id, E503);
    expect(h.take().events.map((e) => e.kind)).toEqual(["eject", "eject", "eject"]);

    const none = new Harness({ mode: "fail-fast", maxEjectionPercent: 0 });
    none.put(A, E503);
    expect(none.take()).toEqual({
      sink: [],
      events: [
        {
          kind: "detected",
          endpointId: A,
          reason: "first failure (fail-fast): 503",
          untilMs: 0,
          ejections: 0,
        },
      ],
    });
    expect(none.detector.stats).toEqual({
      ejectionsEnforced: 0,
      ejectionsDetected: 1,
      ejectedNow: 0,
    });
  });

  it("a held endpoint on probation is re-ejected once room frees up, reason probation", () => {
    const all = ids(10);
    const h = new Harness({ mode: "consecutive", consecutiveErrors: 1 }, all);
    h.put(all[0]!, E503);
    h.at(BASE / 2);
    h.put(all[1]!, E503);
    h.at(BASE);
    h.take();
    // all[0] returns; all[1] is ejected on its next failure, and all[0] fails probation.
    h.put(all[1]!, E503);
    h.expectEjected(all[1]!, "2 consecutive errors (last: 503)", 2 * BASE, 1);
    h.put(all[0]!, E503);
    expect(h.take().events).toEqual([
      {
        kind: "detected",
        endpointId: all[0],
        reason: "probation failed: 503",
        untilMs: 0,
        ejections: 1,
      },
    ]);
    expect(h.detector.describe(all[0]!)?.probation).toBe(true);
    // Held, on probation: no decay.
    h.at(2 * BASE - 1);
    expect(h.detector.describe(all[0]!)?.ejections).toBe(1);
    h.at(2 * BASE);
    h.expectReturned(all[1]!, 1);
    h.put(all[0]!, RESET);
    h.expectEjected(all[0]!, "probation failed: reset", 4 * BASE, 2);
  });
});

describe("OutlierDetector: update", () => {
  it("keeps the state of endpoints that stay and drops departed ones", () => {
    const h = new Harness({}, [A, B]);
    h.put(A, E503, 4);
    h.put(B, E503, 4);
    h.detector.update([A, C]);
    expect(h.detector.describe(B)).toBeUndefined();
    h.put(B, E503, 10); // gone: ignored
    h.expectNothing();
    h.put(A, E503);
    h.expectEjected(A, "5 consecutive errors (last: 503)", BASE, 1);
    // B comes back: a fresh start.
    h.detector.update([A, B, C]);
    expect(h.detector.describe(B)).toEqual({
      ejected: false,
      untilMs: 0,
      ejections: 0,
      reason: "",
      probation: false,
    });
    h.put(B, E503, 4);
    h.expectNothing();
  });

  it("clears the flag of a departed ejected endpoint and forgets it; a return does not fire", () => {
    const h = new Harness({ mode: "fail-fast", maxEjectionPercent: 100 });
    h.put(A, E503);
    h.put(B, E503);
    h.take();
    h.at(BASE / 2);
    h.detector.update([B, C]);
    expect(h.take()).toEqual({
      sink: [["clear", A, HealthFlag.FAILED_OUTLIER_CHECK]],
      events: [],
    });
    expect(h.detector.stats).toEqual({ ejectionsEnforced: 2, ejectionsDetected: 2, ejectedNow: 1 });
    h.at(BASE);
    h.expectReturned(B, 1);
    h.detector.update([C]);
    h.expectNothing(); // B was not ejected any more: nothing to clear
    // Nothing ejected, no multiplier left: the sweep ends itself at its next run.
    h.at(BASE + INTERVAL);
    expect(vi.getTimerCount()).toBe(0);
    // A is back later: multiplier 0, first ejection 1× base.
    h.detector.update([A, C]);
    h.put(A, E503);
    h.expectEjected(A, "first failure (fail-fast): 503", 2 * BASE + INTERVAL, 1);
  });

  it("stops the return timer when the last ejected endpoint departs", () => {
    const h = new Harness({ mode: "fail-fast", intervalMs: 1e9 });
    h.put(A, E503);
    expect(vi.getTimerCount()).toBe(2); // return timer and sweep
    h.detector.update([B, C]);
    expect(vi.getTimerCount()).toBe(1); // the sweep ends itself at its next run
    vi.advanceTimersByTime(1e9);
    expect(vi.getTimerCount()).toBe(0);
  });

  it("takes the percentage base from the current set; duplicates count once", () => {
    const all = ids(20);
    const h = new Harness({ mode: "fail-fast" }, all.slice(0, 10));
    h.put(all[0]!, E503);
    h.put(all[1]!, E503);
    expect(h.take().events.map((e) => e.kind)).toEqual(["eject", "detected"]);
    h.detector.update([...all.slice(0, 10), ...all.slice(0, 10)]);
    h.put(all[1]!, OK);
    h.put(all[1]!, E503);
    expect(h.take().events.map((e) => e.kind)).toEqual(["detected"]);
    h.detector.update(all);
    h.put(all[1]!, E503);
    expect(h.take().events.map((e) => e.kind)).toEqual(["eject"]);
  });

  it("does not return a shrunken set's ejections early", () => {
    const all = ids(20);
    const h = new Harness({ mode: "fail-fast" }, all);
    h.put(all[0]!, E503);
    h.put(all[1]!, E503);
    h.take();
    h.detector.update(all.slice(0, 3));
    h.expectNothing();
    expect(h.detector.stats.ejectedNow).toBe(2);
    // Over the bound now: nothing more until both return.
    h.put(all[2]!, E503);
    expect(h.take().events.map((e) => e.kind)).toEqual(["detected"]);
  });
});

describe("OutlierDetector: timers", () => {
  it("returns each endpoint exactly at its own time, the earliest first", () => {
    const h = new Harness({ mode: "fail-fast", maxEjectionPercent: 100 });
    h.put(B, E503);
    h.at(BASE);
    h.put(B, E503); // 2× base: until 3 BASE
    h.at(BASE + 1000);
    h.put(A, E503); // ejected later, returns earlier: until 2 BASE + 1000
    h.at(BASE + 2000);
    h.put(C, E503); // until 2 BASE + 2000
    h.take();
    h.at(2 * BASE + 999);
    h.expectNothing();
    h.at(2 * BASE + 1000);
    h.expectReturned(A, 1);
    h.at(2 * BASE + 1999);
    h.expectNothing();
    h.at(2 * BASE + 2000);
    h.expectReturned(C, 1);
    h.at(3 * BASE - 1);
    h.expectNothing();
    h.at(3 * BASE);
    h.expectReturned(B, 2);
  });

  it("re-arms instead of returning early when the timer fires before the clock says so", () => {
    // A clock that lags the timers by 0.4 ms: the timer fires, the ejection has not ended yet.
    let lag = 0.4;
    const sink = new Harness(); // only for its recording sink
    const detector = new OutlierDetector({ ...DEFAULT_OUTLIER_SETTINGS, mode: "fail-fast" }, sink, {
      clock: () => performance.now() - lag,
    });
    detector.update([A]);
    lag = 0;
    detector.putResult(A, E503);
    sink.take();
    lag = 0.4;
    vi.advanceTimersByTime(BASE);
    expect(detector.describe(A)?.ejected).toBe(true);
    expect(sink.take().sink).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(detector.describe(A)?.ejected).toBe(false);
    expect(sink.take().sink).toEqual([["clear", A, HealthFlag.FAILED_OUTLIER_CHECK]]);
  });

  it("close() stops every timer and ignores later calls", () => {
    const h = new Harness({ mode: "fail-fast" });
    h.put(A, E503);
    h.take();
    expect(vi.getTimerCount()).toBe(2);
    h.detector.close();
    expect(vi.getTimerCount()).toBe(0);
    h.at(10 * BASE);
    h.put(B, E503);
    h.detector.update([A, B, C]);
    h.put(C, E503);
    h.expectNothing();
    expect(vi.getTimerCount()).toBe(0);
  });

  it("arms nothing and calls nobody on results that eject nothing", () => {
    const h = new Harness();
    for (let i = 0; i < 10_000; i++) {
      h.put(A, OK);
      h.put(B, i % 5 === 4 ? OK : E503); // 4 failures, then a success
      h.put(C, i % 2 === 0 ? CONNECT : http(404));
    }
    h.expectNothing();
    expect(h.logs).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
    expect(h.detector.stats).toEqual({ ejectionsEnforced: 0, ejectionsDetected: 0, ejectedNow: 0 });
  });
});

describe("OutlierDetector: logs and re-entrancy", () => {
  it("logs every ejection (warn) and return (info) once, with its reason", () => {
    const h = new Harness();
    h.put(A, E503, 5);
    expect(h.logs).toEqual([
      [
        "warn",
        {
          endpoint: A,
          reason: "5 consecutive errors (last: 503)",
          ejections: 1,
          ejectionMs: BASE,
          until: new Date(h.epoch(BASE)).toISOString(),
        },
        "outlier ejected",
      ],
    ]);
    h.take();
    h.put(A, E503, 5);
    expect(h.logs).toEqual([]);
    h.at(BASE);
    expect(h.logs).toEqual([
      [
        "info",
        { endpoint: A, reason: "ejection time passed", ejections: 1 },
        "outlier returned (on probation)",
      ],
    ]);
  });

  it("settles its state before calling the sink: an in-flight result reported from set() is ignored", () => {
    const h = new Harness({ mode: "fail-fast" });
    h.afterSet = (id) => {
      h.detector.putResult(id, E503);
      expect(h.detector.describe(id)?.ejected).toBe(true);
      expect(h.detector.stats.ejectedNow).toBe(1);
    };
    h.put(A, E503);
    h.expectEjected(A, "first failure (fail-fast): 503", BASE, 1);
  });

  it("works without a logger or listener", () => {
    const sets: string[] = [];
    const detector = new OutlierDetector(
      { ...DEFAULT_OUTLIER_SETTINGS, mode: "fail-fast" },
      { set: (id) => sets.push(`set ${id}`), clear: (id) => sets.push(`clear ${id}`) },
    );
    detector.update([A]);
    detector.putResult(A, CONNECT);
    vi.advanceTimersByTime(BASE);
    expect(sets).toEqual([`set ${A}`, `clear ${A}`]);
    detector.close();
  });
});

describe("OutlierDetector: a passing active health check", () => {
  it("returns an ejected endpoint at once, on probation (Envoy's uneject on active check)", () => {
    const h = new Harness({ mode: "fail-fast" });
    h.detector.putResult(A, E503);
    expect(h.detector.describe(A)?.ejected).toBe(true);
    h.sinkCalls = [];
    h.events = [];
    vi.advanceTimersByTime(BASE / 10);
    h.detector.activeCheckPassed(A);
    expect(h.sinkCalls).toEqual([["clear", A, HealthFlag.FAILED_OUTLIER_CHECK]]);
    expect(h.events).toEqual([
      {
        kind: "return",
        endpointId: A,
        reason: "active health check passed",
        untilMs: 0,
        ejections: 1,
      },
    ]);
    expect(h.detector.describe(A)).toMatchObject({ ejected: false, probation: true });
    // On probation: its next failure ejects it again at once, for longer.
    h.detector.putResult(A, E503);
    expect(h.detector.describe(A)).toMatchObject({ ejected: true, ejections: 2 });
  });

  it("does nothing for an endpoint that is not ejected, or unknown", () => {
    const h = new Harness({ mode: "fail-fast" });
    h.detector.activeCheckPassed(A);
    h.detector.activeCheckPassed("10.9.9.9:1");
    expect(h.sinkCalls).toEqual([]);
    expect(h.events).toEqual([]);
  });
});
