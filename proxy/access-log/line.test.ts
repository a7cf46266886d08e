import { describe, expect, it } from "vitest";
import { exchangeRecord } from "../../test/exchange-record.js";
import { accessLogLine } from "./line.js";

const record = exchangeRecord;

describe("accessLogLine", () => {
  it("writes Envoy's default fields under Istio's JSON keys, in order", () => {
    const line = accessLogLine(record());
    expect(line.endsWith("}\n")).toBe(true);
    expect(line.indexOf("\n")).toBe(line.length - 1);
    const parsed = JSON.parse(line);
    expect(Object.keys(parsed)).toEqual([
      "start_time",
      "method",
      "path",
      "protocol",
      "response_code",
      "response_flags",
      "bytes_received",
      "bytes_sent",
      "duration",
      "upstream_service_time",
      "x_forwarded_for",
      "user_agent",
      "request_id",
      "authority",
      "upstream_host",
      "upstream_cluster",
      "listener",
      "queue_time",
    ]);
    expect(parsed).toEqual({
      start_time: "2026-01-02T03:04:05.678Z",
      method: "GET",
      path: "/a?b=1",
      protocol: "HTTP/1.1",
      response_code: 200,
      response_flags: "-",
      // Body bytes, as in Envoy: totals minus heads.
      bytes_received: 0,
      bytes_sent: 40,
      // Whole milliseconds, truncated as Envoy does.
      duration: 12,
      upstream_service_time: 10,
      x_forwarded_for: "192.0.2.1",
      user_agent: "curl/8.0",
      request_id: "5ffd336e-e191-46c2-b8a4-0b1f93c03949",
      authority: "hello",
      upstream_host: "10.0.0.7:8080",
      upstream_cluster: "hello.default",
      listener: "outbound",
      queue_time: null,
    });
  });

  it("writes how long a first-come request waited for a slot, truncated", () => {
    expect(JSON.parse(accessLogLine(record({ queueMs: 41.9 }))).queue_time).toBe(41);
    expect(JSON.parse(accessLogLine(record({ queueMs: 0.2 }))).queue_time).toBe(0);
  });

  it("writes null for what an exchange did not have", () => {
    const parsed = JSON.parse(
      accessLogLine(
        record({
          cluster: "",
          endpoint: "",
          status: 404,
          flags: "NR",
          upstreamServiceMs: -1,
          userAgent: "",
          forwardedFor: "",
        }),
      ),
    );
    expect(parsed.upstream_service_time).toBeNull();
    expect(parsed.upstream_host).toBeNull();
    expect(parsed.upstream_cluster).toBeNull();
    expect(parsed.user_agent).toBeNull();
    expect(parsed.x_forwarded_for).toBeNull();
    expect(parsed.response_flags).toBe("NR");
  });

  it("escapes what a client controls: quotes, backslashes, control and non-ASCII bytes", () => {
    const userAgent = 'evil"agent\\ \t\u0001 caf\u00e9 \u2603';
    const path = '/x"}\n{"forged":1';
    const line = accessLogLine(record({ userAgent, path }));
    expect(line.indexOf("\n")).toBe(line.length - 1);
    const parsed = JSON.parse(line);
    expect(parsed.user_agent).toBe(userAgent);
    expect(parsed.path).toBe(path);
    expect(parsed.forged).toBeUndefined();
  });

  it("formats each start time once per millisecond, correctly across milliseconds", () => {
    const base = Date.UTC(2026, 5, 7, 8, 9, 10, 0);
    for (const offset of [0, 0.2, 0.999, 1, 1.5, 999.9, 1000]) {
      const parsed = JSON.parse(accessLogLine(record({ startMs: base + offset })));
      expect(parsed.start_time).toBe(new Date(base + Math.floor(offset)).toISOString());
    }
  });
});
