import { describe, expect, it } from "vitest";
import { chiSquare, seededRandom } from "../lb/testing.js";
import { type AttemptResult, ResultKind } from "./health.js";
import {
  DEFAULT_RETRY_SETTINGS,
  fullJitterBackoffMs,
  InvalidRetryOnError,
  isIdempotent,
  parseRetryOn,
  RETRY_ON_CONDITIONS,
  type RetryAttempt,
  RetryCondition,
  RetryPolicy,
  type RetrySettings,
  RetryVerdict,
} from "./retry-policy.js";

const CONNECT_FAILED: AttemptResult = { kind: ResultKind.CONNECT_FAILED, status: 0 };
const RESET: AttemptResult = { kind: ResultKind.RESET, status: 0 };
const TIMEOUT: AttemptResult = { kind: ResultKind.TIMEOUT, status: 0 };
const http = (status: number): AttemptResult => ({ kind: ResultKind.HTTP, status });

function policy(over: Partial<RetrySettings> = {}): RetryPolicy {
  return new RetryPolicy({ ...DEFAULT_RETRY_SETTINGS, ...over });
}

/** The error `parseRetryOn(text)` throws. */
function parseError(text: string): InvalidRetryOnError {
  try {
    parseRetryOn(text);
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidRetryOnError);
    return error as InvalidRetryOnError;
  }
  throw new Error(`parseRetryOn(${JSON.stringify(text)}) did not throw`);
}

describe("parseRetryOn", () => {
  const EVERY_NAME: [string, RetryCondition][] = [
    ["connect-failure", RetryCondition.CONNECT_FAILURE],
    ["refused-stream", RetryCondition.REFUSED_STREAM],
    ["reset", RetryCondition.RESET],
    ["5xx", RetryCondition.STATUS_5XX],
    ["gateway-error", RetryCondition.GATEWAY_ERROR],
    ["retriable-4xx", RetryCondition.RETRIABLE_4XX],
    ["retriable-status-codes", RetryCondition.RETRIABLE_STATUS_CODES],
    ["unavailable", RetryCondition.GRPC_UNAVAILABLE],
    ["cancelled", RetryCondition.GRPC_CANCELLED],
    ["deadline-exceeded", RetryCondition.GRPC_DEADLINE_EXCEEDED],
    ["resource-exhausted", RetryCondition.GRPC_RESOURCE_EXHAUSTED],
    ["internal", RetryCondition.GRPC_INTERNAL],
  ];

  it.each(EVERY_NAME)("accepts %s as its own condition bit", (name, condition) => {
    expect(parseRetryOn(name)).toEqual({ conditions: condition, statusCodes: [] });
  });

  it("lists exactly the accepted names, each with a distinct bit", () => {
    expect(RETRY_ON_CONDITIONS).toEqual(EVERY_NAME.map(([name]) => name));
    const bits = EVERY_NAME.map(([, bit]) => bit);
    expect(new Set(bits).size).toBe(bits.length);
    const all = parseRetryOn(RETRY_ON_CONDITIONS.join(","));
    expect(all.conditions).toBe(bits.reduce((sum, bit) => sum | bit, 0));
  });

  it("parses Istio's default list", () => {
    expect(parseRetryOn(DEFAULT_RETRY_SETTINGS.retryOn)).toEqual({
      conditions:
        RetryCondition.CONNECT_FAILURE |
        RetryCondition.REFUSED_STREAM |
        RetryCondition.GRPC_UNAVAILABLE |
        RetryCondition.GRPC_CANCELLED |
        RetryCondition.RETRIABLE_STATUS_CODES,
      statusCodes: [],
    });
  });

  it("takes bare status codes as retriable codes, sorted and without duplicates", () => {
    expect(parseRetryOn("503")).toEqual({ conditions: 0, statusCodes: [503] });
    expect(parseRetryOn("reset,504,503,503,100,599")).toEqual({
      conditions: RetryCondition.RESET,
      statusCodes: [100, 503, 504, 599],
    });
  });

  it("tolerates whitespace around entries", () => {
    expect(parseRetryOn(" 5xx ,\tgateway-error\n, 503 ")).toEqual({
      conditions: RetryCondition.STATUS_5XX | RetryCondition.GATEWAY_ERROR,
      statusCodes: [503],
    });
  });

  it("reads an empty or blank string as retry on nothing", () => {
    expect(parseRetryOn("")).toEqual({ conditions: 0, statusCodes: [] });
    expect(parseRetryOn("  \t ")).toEqual({ conditions: 0, statusCodes: [] });
  });

  it("names the bad entry and the accepted list", () => {
    const error = parseError("5xx, bogus ,reset");
    expect(error.token).toBe("bogus");
    expect(error.code).toBe("REMORA_ERR_INVALID_RETRY_ON");
    expect(error.name).toBe("InvalidRetryOnError");
    expect(error.message).toBe(
      'unknown retryOn condition "bogus"; accepted: connect-failure, refused-stream, reset, 5xx, ' +
        "gateway-error, retriable-4xx, retriable-status-codes, unavailable, cancelled, " +
        "deadline-exceeded, resource-exhausted, internal, or a status code such as 503",
    );
  });

  it("is case-sensitive like Envoy, and suggests the right case", () => {
    const error = parseError("5XX");
    expect(error.token).toBe("5XX");
    expect(error.message).toMatch(
      /^unknown retryOn condition "5XX" \(did you mean "5xx"\?\); accepted: /,
    );
    expect(parseError("Connect-Failure").message).toContain('did you mean "connect-failure"?');
    // Prototype keys are not conditions.
    expect(parseError("constructor").message).toMatch(/^unknown retryOn condition "constructor";/);
  });

  it("rejects empty entries (Istio does too)", () => {
    for (const text of ["5xx,,reset", "5xx,", ",5xx", " , "]) {
      const error = parseError(text);
      expect(error.token).toBe("");
      expect(error.message).toContain("has an empty entry");
      expect(error.message).toContain("accepted: connect-failure");
    }
  });

  it("rejects numbers that are not HTTP status codes", () => {
    for (const text of ["99", "600", "0503", "1000", "000"]) {
      const error = parseError(`reset,${text}`);
      expect(error.token).toBe(text);
      expect(error.message).toBe(`retryOn entry "${text}" is not an HTTP status code (100-599)`);
    }
    expect(parseError("5.03").token).toBe("5.03");
    expect(parseError("-503").token).toBe("-503");
  });

  it("says which Envoy conditions remora does not support", () => {
    for (const name of ["retriable-headers", "reset-before-request", "envoy-ratelimited"]) {
      expect(parseError(name).message).toMatch(
        new RegExp(
          `^retryOn condition "${name}" is Envoy's but remora does not support it; accepted: `,
        ),
      );
    }
  });
});

describe("RetryPolicy: settings", () => {
  it("defaults to Istio's retry policy and Envoy's backoff and budget", () => {
    expect(DEFAULT_RETRY_SETTINGS).toEqual({
      attempts: 2,
      retryOn: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
      retriableStatusCodes: [503],
      perTryTimeoutMs: 0,
      backoffBaseMs: 25,
      backoffMaxMs: 250,
      retryNonIdempotent: false,
      budgetPercent: 20,
      minRetryConcurrency: 3,
      maxRetries: 4294967295,
    });
    expect(Object.isFrozen(DEFAULT_RETRY_SETTINGS)).toBe(true);
    expect(Object.isFrozen(DEFAULT_RETRY_SETTINGS.retriableStatusCodes)).toBe(true);
    const made = new RetryPolicy();
    expect(made.settings).toBe(DEFAULT_RETRY_SETTINGS);
    expect(made.retryOn).toEqual(parseRetryOn(DEFAULT_RETRY_SETTINGS.retryOn));
  });

  it("rejects settings it cannot honour, once, in the constructor", () => {
    expect(() => policy({ attempts: -1 })).toThrow(/attempts/);
    expect(() => policy({ attempts: 1.5 })).toThrow(RangeError);
    expect(() => policy({ retriableStatusCodes: [503, 600] })).toThrow(/retriableStatusCodes.*600/);
    expect(() => policy({ retriableStatusCodes: [99] })).toThrow(/retriableStatusCodes/);
    expect(() => policy({ perTryTimeoutMs: -1 })).toThrow(/perTryTimeout/);
    expect(() => policy({ backoffBaseMs: -1 })).toThrow(/base/);
    expect(() => policy({ backoffBaseMs: Number.NaN })).toThrow(/base/);
    expect(() => policy({ backoffBaseMs: 100, backoffMaxMs: 50 })).toThrow(/max/);
    expect(() => policy({ retryOn: "5xx,nope" })).toThrow(InvalidRetryOnError);
  });
});

describe("RetryPolicy: which results each retryOn condition retries", () => {
  const SAMPLES: [string, AttemptResult][] = [
    ["connect-failed", CONNECT_FAILED],
    ["reset", RESET],
    ["timeout", TIMEOUT],
    ...[200, 204, 304, 404, 409, 429, 500, 501, 502, 503, 504, 505, 599].map(
      (status): [string, AttemptResult] => [String(status), http(status)],
    ),
    // Out of any table: never retried, whatever the list says.
    ...[0, -1, 600, 999, 1000, 1e9, Number.NaN].map((status): [string, AttemptResult] => [
      `bad-${status}`,
      http(status),
    ]),
  ];

  function retried(retryOn: string, over: Partial<RetrySettings> = {}): string[] {
    const made = policy({ retryOn, ...over });
    return SAMPLES.filter(([, result]) => made.retriable(result)).map(([name]) => name);
  }

  const LOCAL = ["connect-failed", "reset", "timeout"];
  const ALL_5XX = ["500", "501", "502", "503", "504", "505", "599"];

  it.each([
    ["connect-failure", ["connect-failed"]],
    // HTTP/1.1 has no REFUSED_STREAM; Envoy does not retry an HTTP/1 close under it either.
    ["refused-stream", []],
    // Envoy: connect failures, resets and per-try timeouts (a local reset) all count.
    ["reset", LOCAL],
    ["5xx", [...LOCAL, ...ALL_5XX]],
    ["gateway-error", [...LOCAL, "502", "503", "504"]],
    ["retriable-4xx", ["409"]],
    ["retriable-status-codes", ["503"]],
    // gRPC conditions need a grpc-status, which HTTP/1.1 responses do not carry.
    ["unavailable", []],
    ["cancelled", []],
    ["deadline-exceeded", []],
    ["resource-exhausted", []],
    ["internal", []],
    ["429", ["429"]],
    ["", []],
    [DEFAULT_RETRY_SETTINGS.retryOn, ["connect-failed", "503"]],
  ])("%j retries %j", (retryOn, expected) => {
    expect(retried(retryOn)).toEqual(expected);
  });

  it("enables retriableStatusCodes only with retriable-status-codes; bare codes always", () => {
    const codes = { retriableStatusCodes: [429, 500] };
    expect(retried("retriable-status-codes", codes)).toEqual(["429", "500"]);
    expect(retried("reset", codes)).toEqual(LOCAL);
    // A bare code does not switch the list on: "reset,409" means 409, not 409 + the list's 503.
    expect(retried("reset,409")).toEqual([...LOCAL, "409"]);
    expect(retried("409,retriable-status-codes", codes)).toEqual(["409", "429", "500"]);
    expect(retried("retriable-status-codes", { retriableStatusCodes: [] })).toEqual([]);
  });

  it("retries nothing with attempts 0, connect failures included", () => {
    expect(retried("5xx,retriable-4xx,503,retriable-status-codes", { attempts: 0 })).toEqual([]);
    expect(retried(DEFAULT_RETRY_SETTINGS.retryOn, { attempts: 0 })).toEqual([]);
  });
});

describe("RetryPolicy: decide", () => {
  const BASE: RetryAttempt = {
    result: RESET,
    attemptsMade: 0,
    method: "GET",
    requestBodySent: false,
    replayable: true,
    responseStarted: false,
  };

  const { RETRY, NO_RETRY_NOT_RETRIABLE, NO_RETRY_LIMIT, NO_RETRY_UNSAFE, NO_RETRY_STARTED } =
    RetryVerdict;

  // The decision table the docs carry: retryOn "5xx" (every failure kind retriable), attempts 2.
  const every = policy({ retryOn: "5xx" });
  const TABLE: [string, Partial<RetryAttempt>, RetryVerdict][] = [
    ["GET, connect failed", { result: CONNECT_FAILED }, RETRY],
    ["GET, reset", { result: RESET }, RETRY],
    ["GET, per-try timeout", { result: TIMEOUT }, RETRY],
    ["GET, 503", { result: http(503) }, RETRY],
    ["GET, 200", { result: http(200) }, NO_RETRY_NOT_RETRIABLE],
    ["GET, 404", { result: http(404) }, NO_RETRY_NOT_RETRIABLE],
    ["PUT, reset, body sent, replayable", { method: "PUT", requestBodySent: true }, RETRY],
    [
      "PUT, reset, body sent, beyond the replay limit",
      { method: "PUT", requestBodySent: true, replayable: false },
      NO_RETRY_UNSAFE,
    ],
    [
      "PUT, reset, body not sent yet, beyond the replay limit",
      { method: "PUT", replayable: false },
      RETRY,
    ],
    [
      "PUT, connect failed, beyond the replay limit",
      { method: "PUT", result: CONNECT_FAILED, replayable: false },
      RETRY,
    ],
    ["POST, connect failed", { method: "POST", result: CONNECT_FAILED }, RETRY],
    [
      "POST, connect failed, beyond the replay limit",
      { method: "POST", result: CONNECT_FAILED, replayable: false },
      RETRY,
    ],
    ["POST, reset, body sent", { method: "POST", requestBodySent: true }, NO_RETRY_UNSAFE],
    // The head reached the upstream: a bodiless POST may have been acted on too.
    ["POST, reset, no body sent", { method: "POST" }, NO_RETRY_UNSAFE],
    ["POST, per-try timeout", { method: "POST", result: TIMEOUT }, NO_RETRY_UNSAFE],
    ["POST, 503", { method: "POST", result: http(503) }, NO_RETRY_UNSAFE],
    ["POST, 200", { method: "POST", result: http(200) }, NO_RETRY_NOT_RETRIABLE],
    ["PATCH, reset", { method: "PATCH" }, NO_RETRY_UNSAFE],
    ["GET, reset, response started", { responseStarted: true }, NO_RETRY_STARTED],
    ["GET, 503, response started", { result: http(503), responseStarted: true }, NO_RETRY_STARTED],
    // Precedence: started beats everything; not-retriable beats unsafe; unsafe beats the limit.
    ["GET, 200, response started", { result: http(200), responseStarted: true }, NO_RETRY_STARTED],
    ["POST, reset, started", { method: "POST", responseStarted: true }, NO_RETRY_STARTED],
    ["GET, reset, 1 retry made", { attemptsMade: 1 }, RETRY],
    ["GET, reset, 2 retries made", { attemptsMade: 2 }, NO_RETRY_LIMIT],
    ["GET, reset, 7 retries made", { attemptsMade: 7 }, NO_RETRY_LIMIT],
    [
      "GET, connect failed, 2 retries made",
      { result: CONNECT_FAILED, attemptsMade: 2 },
      NO_RETRY_LIMIT,
    ],
    ["GET, 200, 2 retries made", { result: http(200), attemptsMade: 2 }, NO_RETRY_NOT_RETRIABLE],
    ["POST, reset, 2 retries made", { method: "POST", attemptsMade: 2 }, NO_RETRY_UNSAFE],
  ];

  it.each(TABLE)("%s", (_name, over, verdict) => {
    expect(RetryVerdict[every.decide({ ...BASE, ...over })]).toBe(RetryVerdict[verdict]);
  });

  it("replays only RFC 9110's idempotent methods after the request reached the upstream", () => {
    for (const method of ["GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"]) {
      expect(isIdempotent(method)).toBe(true);
      expect(every.decide({ ...BASE, method })).toBe(RETRY);
    }
    // Methods are case-sensitive (RFC 9110 §9.1): "get" is not GET.
    for (const method of ["POST", "PATCH", "CONNECT", "PROPFIND", "get", "put", ""]) {
      expect(isIdempotent(method)).toBe(false);
      expect(every.decide({ ...BASE, method })).toBe(NO_RETRY_UNSAFE);
      expect(every.decide({ ...BASE, method, result: CONNECT_FAILED })).toBe(RETRY);
    }
  });

  it("replays a non-idempotent request with retryNonIdempotent, if it can resend the body", () => {
    const allow = policy({ retryOn: "5xx", retryNonIdempotent: true });
    const post = { ...BASE, method: "POST" };
    expect(allow.decide({ ...post, requestBodySent: true })).toBe(RETRY);
    expect(allow.decide({ ...post, result: http(503) })).toBe(RETRY);
    expect(allow.decide({ ...post, result: TIMEOUT })).toBe(RETRY);
    expect(allow.decide({ ...post, replayable: false })).toBe(RETRY);
    expect(allow.decide({ ...post, requestBodySent: true, replayable: false })).toBe(
      NO_RETRY_UNSAFE,
    );
    expect(allow.decide({ ...post, responseStarted: true })).toBe(NO_RETRY_STARTED);
    expect(allow.decide({ ...post, attemptsMade: 2 })).toBe(NO_RETRY_LIMIT);
  });

  it("follows the attempts count: 0 disables every retry, 1 allows one", () => {
    const none = policy({ retryOn: "5xx", attempts: 0 });
    for (const result of [CONNECT_FAILED, RESET, TIMEOUT, http(503)]) {
      // No retry policy at all (Istio's reading of 0), so no URX either.
      expect(none.decide({ ...BASE, result })).toBe(NO_RETRY_NOT_RETRIABLE);
    }
    expect(policy({ attempts: 0 }).decide({ ...BASE, result: CONNECT_FAILED })).toBe(
      NO_RETRY_NOT_RETRIABLE,
    );
    const one = policy({ retryOn: "5xx", attempts: 1 });
    expect(one.decide({ ...BASE, attemptsMade: 0 })).toBe(RETRY);
    expect(one.decide({ ...BASE, attemptsMade: 1 })).toBe(NO_RETRY_LIMIT);
  });

  it("with Istio's default policy: connect failures and 503 only, 503 for idempotent requests", () => {
    const made = new RetryPolicy();
    expect(made.decide({ ...BASE, result: CONNECT_FAILED })).toBe(RETRY);
    expect(made.decide({ ...BASE, result: CONNECT_FAILED, method: "POST" })).toBe(RETRY);
    expect(made.decide({ ...BASE, result: http(503) })).toBe(RETRY);
    expect(made.decide({ ...BASE, result: http(503), method: "POST" })).toBe(NO_RETRY_UNSAFE);
    expect(made.decide({ ...BASE, result: http(502) })).toBe(NO_RETRY_NOT_RETRIABLE);
    expect(made.decide({ ...BASE, result: http(500) })).toBe(NO_RETRY_NOT_RETRIABLE);
    expect(made.decide({ ...BASE, result: RESET })).toBe(NO_RETRY_NOT_RETRIABLE);
    expect(made.decide({ ...BASE, result: TIMEOUT })).toBe(NO_RETRY_NOT_RETRIABLE);
    expect(made.decide({ ...BASE, result: http(503), attemptsMade: 2 })).toBe(NO_RETRY_LIMIT);
  });

  it("never breaks its rules over every combination of inputs", () => {
    const results = [CONNECT_FAILED, RESET, TIMEOUT, http(200), http(409), http(503), http(500)];
    const methods = ["GET", "PUT", "POST", "PATCH"];
    const bools = [false, true];
    let retries = 0;
    for (const retryNonIdempotent of bools) {
      for (const retryOn of ["5xx", "connect-failure,503", "reset,retriable-4xx", ""]) {
        const made = policy({ retryOn, retryNonIdempotent, attempts: 2 });
        for (const result of results) {
          const retriable = made.retriable(result);
          for (const method of methods) {
            for (const requestBodySent of bools) {
              for (const replayable of bools) {
                for (const responseStarted of bools) {
                  for (let attemptsMade = 0; attemptsMade <= 3; attemptsMade++) {
                    const attempt = {
                      result,
                      attemptsMade,
                      method,
                      requestBodySent,
                      replayable,
                      responseStarted,
                    };
                    const verdict = made.decide(attempt);
                    const safe =
                      result.kind === ResultKind.CONNECT_FAILED ||
                      ((retryNonIdempotent || isIdempotent(method)) &&
                        (!requestBodySent || replayable));
                    const expected = responseStarted
                      ? NO_RETRY_STARTED
                      : !retriable
                        ? NO_RETRY_NOT_RETRIABLE
                        : !safe
                          ? NO_RETRY_UNSAFE
                          : attemptsMade >= 2
                            ? NO_RETRY_LIMIT
                            : RETRY;
                    if (verdict !== expected) {
                      throw new Error(
                        `${JSON.stringify({ retryOn, retryNonIdempotent, ...attempt })}: got ${RetryVerdict[verdict]}, expected ${RetryVerdict[expected]}`,
                      );
                    }
                    if (verdict === RETRY) retries++;
                  }
                }
              }
            }
          }
        }
      }
    }
    // The sweep reached RETRY often enough to mean something.
    expect(retries).toBeGreaterThan(100);
  });
});

describe("RetryPolicy: backoff (Envoy's full jitter)", () => {
  const SAMPLES = 20_000;

  function samples(made: RetryPolicy, retryNumber: number, seed = 7): number[] {
    const random = seededRandom(seed);
    const out: number[] = [];
    for (let i = 0; i < SAMPLES; i++) out.push(made.backoffMs(retryNumber, random));
    return out;
  }

  it("draws whole milliseconds in [0, min(250, 25 × 2^(n-1))), the window doubling to the cap", () => {
    const made = new RetryPolicy();
    const windows = [25, 50, 100, 200, 250, 250, 250];
    windows.forEach((window, i) => {
      const drawn = samples(made, i + 1);
      expect(drawn.every((ms) => Number.isInteger(ms) && ms >= 0 && ms < window)).toBe(true);
      // The window is used to its end, so it really grows with n.
      expect(Math.max(...drawn)).toBe(window - 1);
      expect(Math.min(...drawn)).toBe(0);
      // Mean of a uniform whole number in [0, window): (window - 1) / 2.
      const mean = drawn.reduce((sum, ms) => sum + ms, 0) / SAMPLES;
      expect(Math.abs(mean - (window - 1) / 2)).toBeLessThan(window * 0.02);
    });
  });

  it("spreads draws uniformly over the window (chi-square, 10 buckets)", () => {
    // Windows of 50, 100, 200 and 250 ms: ten buckets of equally many whole milliseconds.
    for (const retryNumber of [2, 3, 4, 5]) {
      const window = Math.min(250, 25 * 2 ** (retryNumber - 1));
      const buckets = new Array<number>(10).fill(0);
      for (const ms of samples(new RetryPolicy(), retryNumber, 11)) {
        buckets[Math.floor((ms * 10) / window)]!++;
      }
      const { statistic, critical } = chiSquare(buckets, new Array(10).fill(1));
      expect(statistic).toBeLessThan(critical);
    }
  });

  it("stays inside the window at the random source's extremes", () => {
    const made = new RetryPolicy();
    expect(made.backoffMs(1, () => 0)).toBe(0);
    expect(made.backoffMs(1, () => 0.999999)).toBe(24);
    expect(made.backoffMs(5, () => 0.999999)).toBe(249);
    // A misbehaving random() that returns 1 must not reach the window's end.
    expect(made.backoffMs(1, () => 1)).toBe(24);
    expect(made.backoffMs(9, () => 1)).toBe(249);
  });

  it("treats retry numbers below 1 as the first, and huge ones as capped", () => {
    const made = new RetryPolicy();
    expect(made.backoffMs(0, () => 0.999999)).toBe(24);
    expect(made.backoffMs(-3, () => 0.999999)).toBe(24);
    expect(made.backoffMs(2000, () => 0.999999)).toBe(249);
    expect(made.backoffMs(Number.POSITIVE_INFINITY, () => 0.999999)).toBe(249);
  });

  it("uses the configured base and cap", () => {
    const made = policy({ backoffBaseMs: 100, backoffMaxMs: 1000 });
    const top = (n: number) => made.backoffMs(n, () => 0.999999);
    expect([1, 2, 3, 4, 5, 6].map(top)).toEqual([99, 199, 399, 799, 999, 999]);
    expect(fullJitterBackoffMs(3, 10, 30, () => 0.5)).toBe(15);
    // Base 0: retries go at once.
    expect(policy({ backoffBaseMs: 0, backoffMaxMs: 0 }).backoffMs(3, () => 0.7)).toBe(0);
  });
});
