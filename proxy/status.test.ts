import { describe, expect, it } from "vitest";
import type { DashboardSnapshot, LastMinute } from "./dashboard.js";
import { adminBase, formatStatus, StatusError } from "./status.js";

function minute(over: Partial<LastMinute> = {}): LastMinute {
  return {
    requests: 0,
    errors: 0,
    requestsPerSecond: 0,
    errorRate: 0,
    p50Ms: null,
    p99Ms: null,
    responseFlags: {},
    ...over,
  };
}

function endpoint(address: string, status: string, lastMinute: LastMinute) {
  return {
    address,
    weight: 1,
    labels: {},
    health: { status, flags: [] },
    connections: { open: 1, idle: 1, connecting: 0 },
    lastMinute,
  };
}

const SNAPSHOT: DashboardSnapshot = {
  generatedAt: "2025-01-01T00:02:00.000Z",
  server: { state: "LIVE", uptimeSeconds: 3725.4, node: "v24.21.0", pid: 4242 },
  config: {
    hash: "0123456789abcdef",
    appliedAt: "2025-01-01T00:00:00.000Z",
    reloads: { ok: 2, failed: 1, lastAttemptAt: "2025-01-01T00:01:00.000Z", lastError: "bad key" },
  },
  downstream: { connections: 3 },
  window: { seconds: 60, spanSeconds: 60 },
  total: minute({
    requests: 600,
    errors: 100,
    requestsPerSecond: 10,
    errorRate: 1 / 6,
    p50Ms: 1.234,
    p99Ms: 25.5,
  }),
  listeners: [{ name: "outbound", kind: "outbound", address: "127.0.0.1", port: 15001 }],
  services: [
    {
      name: "hello.default",
      policy: "round-robin",
      activeRequests: 0,
      requests: 600,
      responses: { reset: 0, "1xx": 0, "2xx": 550, "3xx": 0, "4xx": 0, "5xx": 50 },
      lastMinute: minute({
        requests: 600,
        errors: 100,
        requestsPerSecond: 10,
        errorRate: 1 / 6,
        p50Ms: 1.234,
        p99Ms: 25.5,
        responseFlags: { UC: 50 },
      }),
      endpoints: [
        endpoint(
          "10.0.0.1:8080",
          "HEALTHY",
          minute({ requests: 300, requestsPerSecond: 5, p50Ms: 0.9, p99Ms: 2 }),
        ),
        endpoint(
          "10.0.0.22:8080",
          "UNHEALTHY",
          minute({
            requests: 300,
            errors: 100,
            requestsPerSecond: 5,
            errorRate: 1 / 3,
            p50Ms: 1.5,
            p99Ms: 1500,
            responseFlags: { UF: 2, UC: 50 },
          }),
        ),
      ],
    },
    {
      name: "idle.default",
      policy: "round-robin",
      activeRequests: 0,
      requests: 0,
      responses: { reset: 0, "1xx": 0, "2xx": 0, "3xx": 0, "4xx": 0, "5xx": 0 },
      lastMinute: minute(),
      endpoints: [],
    },
  ],
};

describe("remora status output", () => {
  it("is a header and one row per service and endpoint, columns aligned", () => {
    expect(formatStatus(SNAPSHOT, "http://127.0.0.1:15000")).toBe(
      [
        "remora at http://127.0.0.1:15000: LIVE, up 1h2m, Node v24.21.0, pid 4242",
        "config 0123456789abcdef, applied 2025-01-01T00:00:00.000Z; reloads 2 ok, 1 failed (last error: bad key)",
        "last 60s: 10.00 req/s, 16.7% errors, p50 1.23ms, p99 25.5ms; 3 downstream connections",
        "listeners: outbound (outbound) 127.0.0.1:15001",
        "",
        "SERVICE        ENDPOINT        HEALTH     REQ/S  ERRORS     P50     P99  FLAGS",
        "hello.default  (all)           1/2        10.00   16.7%  1.23ms  25.5ms  UC=50",
        "hello.default  10.0.0.1:8080   HEALTHY     5.00    0.0%  0.90ms  2.00ms  -",
        "hello.default  10.0.0.22:8080  UNHEALTHY   5.00   33.3%  1.50ms   1.50s  UC=50,UF=2",
        "idle.default   (all)           0/0         0.00    0.0%       -       -  -",
        "",
      ].join("\n"),
    );
  });

  it("says so when there are no services", () => {
    const text = formatStatus({ ...SNAPSHOT, services: [], listeners: [] }, "http://h:1");
    expect(text).toContain("listeners: none\n");
    expect(text.endsWith("\nno services configured or discovered yet\n")).toBe(true);
  });
});

describe("--admin", () => {
  it("takes a URL, HOST:PORT or a port", () => {
    expect(adminBase("http://127.0.0.1:15000").href).toBe("http://127.0.0.1:15000/");
    expect(adminBase("15001").href).toBe("http://127.0.0.1:15001/");
    expect(adminBase("localhost:9").href).toBe("http://localhost:9/");
    expect(adminBase("https://proxy.example/admin?x=1").href).toBe("https://proxy.example/admin/");
  });

  it("rejects what is not an http URL", () => {
    expect(() => adminBase("ftp://host")).toThrow(StatusError);
    expect(() => adminBase("http://")).toThrow(/expected a URL/);
  });
});
