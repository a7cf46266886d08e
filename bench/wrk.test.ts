import { describe, expect, it } from "vitest";
import type { LoadRequest } from "./load.js";
import { loadClientFor, SCENARIOS, type ScenarioSpec } from "./scenarios.js";
import {
  parseWrkBytes,
  parseWrkOutput,
  parseWrkTime,
  wrkArgs,
  wrkScript,
  wrkVersion,
} from "./wrk.js";

// Outputs of wrk 4.1.0 (Debian 4.1.0-3+b2), captured on the benchmark machine.

/** nginx backend directly, tiny GET, 32 connections: latency in microseconds. */
const GET_US = `Running 3s test @ http://127.0.0.1:28480/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   326.67us   53.26us   1.04ms   82.41%
    Req/Sec    71.59k     3.05k   73.51k    96.67%
  Latency Distribution
     50%  331.00us
     75%  358.00us
     90%  377.00us
     99%  458.00us
  213404 requests in 3.00s, 32.77MB read
Requests/sec:  71114.09
Transfer/sec:     10.92MB
`;

/** 1 KiB POST with the generated script, whose done hook adds the p99.9 line. */
const POST_WITH_P999 = `Running 3s test @ http://127.0.0.1:28480/post
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   449.79us  552.76us  10.52ms   98.80%
    Req/Sec    63.44k     3.21k   65.57k    87.10%
  Latency Distribution
     50%  410.00us
     75%  442.00us
     90%  473.00us
     99%    1.60ms
  195846 requests in 3.10s, 28.02MB read
Requests/sec:  63189.22
Transfer/sec:      9.04MB
  Latency p99.9: 9087us
`;

/** A flaky server: every 50th response a 502, every 997th connection reset. */
const ERRORS_AND_NON_2XX = `Running 3s test @ http://127.0.0.1:18081/
  1 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     2.88ms    5.12ms  95.93ms   97.64%
    Req/Sec    13.75k     3.79k   24.15k    80.00%
  Latency Distribution
     50%    2.40ms
     75%    2.88ms
     90%    4.13ms
     99%   17.99ms
  41092 requests in 3.01s, 5.34MB read
  Socket errors: connect 0, read 41, write 0, timeout 0
  Non-2xx or 3xx responses: 822
Requests/sec:  13667.80
Transfer/sec:      1.77MB
`;

/** A server answering in 1.2–1.6 s: latency in seconds (wrk pads "1.40s" with a space). */
const SECONDS = `Running 5s test @ http://127.0.0.1:18082/
  1 threads and 20 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.40s   142.41ms   1.61s    60.00%
    Req/Sec    22.81     14.46    50.00     57.14%
  Latency Distribution
     50%    1.40s 
     75%    1.50s 
     90%    1.60s 
     99%    1.61s 
  60 requests in 5.01s, 7.44KB read
Requests/sec:     11.97
Transfer/sec:      1.48KB
`;

/** The same server with --timeout 1s: every response a timeout, no latency recorded. */
const ALL_TIMEOUTS = `Running 5s test @ http://127.0.0.1:18082/
  1 threads and 20 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.00us    0.00us   0.00us    -nan%
    Req/Sec    24.14     15.45    50.00     47.62%
  Latency Distribution
     50%    0.00us
     75%    0.00us
     90%    0.00us
     99%    0.00us
  60 requests in 5.01s, 7.44KB read
  Socket errors: connect 0, read 0, write 0, timeout 60
Requests/sec:     11.98
Transfer/sec:      1.49KB
`;

/** 1,000 connections, with the p99.9 line. */
const CONN_1000 = `Running 3s test @ http://127.0.0.1:28480/
  1 threads and 1000 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     9.60ms    2.64ms  21.61ms   68.37%
    Req/Sec    62.70k     3.11k   67.84k    79.31%
  Latency Distribution
     50%    9.49ms
     75%   10.78ms
     90%   13.49ms
     99%   16.14ms
  186380 requests in 3.05s, 28.62MB read
Requests/sec:  61141.07
Transfer/sec:      9.39MB
  Latency p99.9: 20875us
`;

describe("wrk units", () => {
  it("reads times in us, ms and s as milliseconds", () => {
    expect(parseWrkTime("331.00us")).toBeCloseTo(0.331, 9);
    expect(parseWrkTime("2.40ms")).toBe(2.4);
    expect(parseWrkTime("1.40s")).toBe(1400);
    expect(parseWrkTime("1.61s ")).toBe(1610);
    expect(parseWrkTime("20875us")).toBeCloseTo(20.875, 9);
    expect(() => parseWrkTime("-nan%")).toThrow(/not a wrk time/);
  });

  it("reads sizes in binary units as bytes", () => {
    expect(parseWrkBytes("512.00B")).toBe(512);
    expect(parseWrkBytes("7.44KB")).toBeCloseTo(7.44 * 1024, 6);
    expect(parseWrkBytes("32.77MB")).toBeCloseTo(32.77 * 1024 ** 2, 3);
    expect(parseWrkBytes("1.02GB")).toBeCloseTo(1.02 * 1024 ** 3, 0);
    expect(() => parseWrkBytes("12 MB")).toThrow(/not a wrk size/);
  });

  it("finds the version in wrk -v", () => {
    expect(wrkVersion("wrk debian/4.1.0-3+b2 [epoll] Copyright (C) 2012 Will Glozer")).toBe(
      "4.1.0",
    );
    expect(wrkVersion("wrk 4.2.0 [epoll] Copyright (C) 2012 Will Glozer")).toBe("4.2.0");
    expect(wrkVersion("command not found")).toBeNull();
  });
});

describe("parseWrkOutput", () => {
  it("takes rate, totals and microsecond latencies from a clean run", () => {
    const s = parseWrkOutput(GET_US);
    expect(s.requestsPerSec).toBe(71114.09);
    expect(s.completed).toBe(213_404);
    expect(s.durationSec).toBe(3);
    expect(s.totalBytes).toBeCloseTo(32.77 * 1024 ** 2, 3);
    expect(s.bytesPerSec).toBeCloseTo((32.77 * 1024 ** 2) / 3, 3);
    expect(s.errors).toBe(0);
    expect(s.non2xx).toBe(0);
    expect(s.latencySource).toBe("wrk");
    expect(s.latency.p50).toBeCloseTo(0.331, 9);
    expect(s.latency.p90).toBeCloseTo(0.377, 9);
    expect(s.latency.p99).toBeCloseTo(0.458, 9);
    expect(s.latency.mean).toBeCloseTo(0.32667, 9);
    expect(s.latency.max).toBeCloseTo(1.04, 9);
    // Without the script's p99.9 line, the max stands in (an upper bound).
    expect(s.latency.p999).toBe(s.latency.max);
  });

  it("uses the script's p99.9 line and counts the request bodies of 2xx responses", () => {
    const s = parseWrkOutput(POST_WITH_P999, { requestBodyBytes: 1024 });
    expect(s.completed).toBe(195_846);
    expect(s.durationSec).toBeCloseTo(3.1, 9);
    expect(s.requestsPerSec).toBe(63189.22);
    expect(s.latency.p99).toBeCloseTo(1.6, 9);
    expect(s.latency.p999).toBeCloseTo(9.087, 9);
    expect(s.latency.max).toBeCloseTo(10.52, 9);
    expect(s.totalBytes).toBeCloseTo(28.02 * 1024 ** 2 + 195_846 * 1024, 3);
    expect(s.bytesPerSec).toBeCloseTo(s.totalBytes / 3.1, 6);
  });

  it("sums socket errors and reads non-2xx responses", () => {
    const s = parseWrkOutput(ERRORS_AND_NON_2XX, { requestBodyBytes: 10 });
    expect(s.completed).toBe(41_092);
    expect(s.errors).toBe(41);
    expect(s.non2xx).toBe(822);
    expect(s.requestsPerSec).toBe(13667.8);
    expect(s.latency.p50).toBe(2.4);
    expect(s.latency.p90).toBe(4.13);
    expect(s.latency.p99).toBe(17.99);
    expect(s.latency.max).toBe(95.93);
    // Bodies count only for the responses that were not errors.
    expect(s.totalBytes).toBeCloseTo(5.34 * 1024 ** 2 + (41_092 - 822) * 10, 3);
  });

  it("reads latencies in seconds", () => {
    const s = parseWrkOutput(SECONDS);
    expect(s.latency).toEqual({
      p50: 1400,
      p90: 1600,
      p99: 1610,
      p999: 1610,
      max: 1610,
      mean: 1400,
    });
    expect(s.completed).toBe(60);
    expect(s.durationSec).toBeCloseTo(5.01, 9);
    expect(s.totalBytes).toBeCloseTo(7.44 * 1024, 6);
  });

  it("counts wrk's timeouts as errors and copes with its -nan", () => {
    const s = parseWrkOutput(ALL_TIMEOUTS);
    expect(s.errors).toBe(60);
    expect(s.completed).toBe(60);
    expect(s.latency.p99).toBe(0);
    expect(s.latency.max).toBe(0);
  });

  it("reads a 1,000-connection run", () => {
    const s = parseWrkOutput(CONN_1000);
    expect(s.requestsPerSec).toBe(61141.07);
    expect(s.latency.p50).toBe(9.49);
    expect(s.latency.p999).toBeCloseTo(20.875, 9);
    expect(s.errors).toBe(0);
  });

  it("names what is missing rather than returning zeros", () => {
    expect(() => parseWrkOutput("unable to connect to 127.0.0.1:28499 Connection refused")).toThrow(
      /requests in/,
    );
    const noDistribution = GET_US.split("\n")
      .filter((line) => !/^ +(\d+%|Latency Distribution)/.test(line))
      .join("\n");
    expect(() => parseWrkOutput(noDistribution)).toThrow(/--latency/);
  });
});

const request: LoadRequest = {
  client: "wrk",
  url: "http://127.0.0.1:8080",
  connections: 1000,
  durationSec: 2.5,
  method: "POST",
  path: "/post",
  headers: { host: "hello", "x-request-id": "1" },
  bodyBytes: 1024,
  timeoutSec: 10,
};

describe("wrk command line and script", () => {
  it("runs one thread over all connections, whole seconds, with canonical header names", () => {
    expect(wrkArgs(request, "/tmp/x/load.lua")).toEqual([
      "-t1",
      "-c1000",
      "-d3s",
      "--timeout",
      "10s",
      "--latency",
      "-s",
      "/tmp/x/load.lua",
      "-H",
      // wrk adds its own Host header unless one is named exactly "Host".
      "Host: hello",
      "-H",
      "X-Request-Id: 1",
      "http://127.0.0.1:8080/post",
    ]);
  });

  it("sets the method and body in Lua and prints p99.9 from the done hook", () => {
    const lua = wrkScript(request);
    expect(lua).toContain('wrk.method = "POST"');
    expect(lua).toContain('wrk.body = string.rep("b", 1024)');
    expect(lua).toContain('wrk.headers["Content-Type"] = "application/octet-stream"');
    expect(lua).toContain("latency:percentile(99.9)");
    const get = wrkScript({ ...request, method: "GET", bodyBytes: 0 });
    expect(get).not.toContain("wrk.body");
    expect(get).not.toContain("Content-Type");
  });
});

describe("loadClientFor", () => {
  const byId = (id: string): ScenarioSpec => {
    const spec = SCENARIOS.find((s) => s.id === id);
    if (spec === undefined) throw new Error(id);
    return spec;
  };

  it("puts wrk on the saturation scenarios only (churn's too), when installed or forced", () => {
    const saturation = SCENARIOS.filter((s) => loadClientFor(s, "auto", true) === "wrk");
    expect(saturation.map((s) => s.id)).toEqual(["small-get", "post-1k", "conn-1000", "churn"]);
    expect(loadClientFor(byId("small-get"), "auto", false)).toBe("autocannon");
    expect(loadClientFor(byId("small-get"), "autocannon", true)).toBe("autocannon");
    expect(loadClientFor(byId("small-get"), "wrk", true)).toBe("wrk");
    expect(loadClientFor(byId("latency"), "wrk", true)).toBe("autocannon");
    expect(loadClientFor(byId("failover"), "wrk", true)).toBe("autocannon");
    expect(loadClientFor(byId("stream-download"), "wrk", true)).toBe("stream");
    expect(loadClientFor(byId("conn-1000-open"), "wrk", true)).toBe("hold");
  });
});
