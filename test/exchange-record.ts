/** A finished exchange with every field set, for the access-log tests; `overrides` adjusts it. */
import { type ExchangeRecord, emptyRecord } from "../proxy/exchange.js";

export function exchangeRecord(overrides: Partial<ExchangeRecord> = {}): ExchangeRecord {
  return {
    ...emptyRecord("outbound"),
    cluster: "hello.default",
    endpoint: "10.0.0.7:8080",
    method: "GET",
    authority: "hello",
    path: "/a?b=1",
    protocol: "HTTP/1.1",
    status: 200,
    requestBytes: 80,
    requestHeadBytes: 80,
    responseBytes: 140,
    responseHeadBytes: 100,
    startMs: Date.UTC(2026, 0, 2, 3, 4, 5, 678) + 0.9,
    durationMs: 12.97,
    upstreamServiceMs: 10.4,
    requestId: "5ffd336e-e191-46c2-b8a4-0b1f93c03949",
    userAgent: "curl/8.0",
    forwardedFor: "192.0.2.1",
    ...overrides,
  };
}
