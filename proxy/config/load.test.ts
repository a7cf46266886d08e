import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { DEFAULT_LB_SETTINGS } from "../../lb/balancer.js";

/** Istio's default HTTPRetry, as the schema fills it in. */
const DEFAULT_RETRIES = {
  attempts: 2,
  perTryTimeout: 0,
  retryOn: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
  retriableStatusCodes: [503],
  retryRemoteLocalities: false,
  retryNonIdempotent: false,
};

import { ConfigError, loadConfigFile, parseConfig, parseServicesFile } from "./load.js";

const FULL = `
admin: { port: 15000, address: 127.0.0.1 }
discovery: { file: ./services.yaml }
listeners:
  - name: outbound
    kind: outbound
    port: 15001
  - name: inbound
    kind: inbound
    port: 15006
    app: 127.0.0.1:8080
    timeouts: { requestHeaders: 5s }
  - name: pg
    kind: tcp
    port: 5432
    service: postgres.data
    maxRequestHeadersKb: 128
services:
  - name: hello
    endpoints:
      - { address: 127.0.0.1:9101, weight: 3, labels: { version: v1 } }
      - address: "[::1]:9102"
    trafficPolicy:
      loadBalancer: { policy: ROUND_ROBIN }
      connectionPool:
        tcp: { connectTimeout: 250ms }
    timeout: 1.5s
`;

/** The issues of a config that must fail. */
function issuesOf(text: string): { path: string; message: string; line?: number }[] {
  try {
    parseConfig(text, "test.yaml");
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return [...(error as ConfigError).issues];
  }
  throw new Error("config was accepted");
}

/** A minimal valid config with `extra` YAML appended to the listener or at the top level. */
const LISTENER = "listeners:\n  - { name: out, kind: outbound, port: 15001 }\n";

describe("parseConfig", () => {
  it("parses a full config and applies every default", () => {
    const config = parseConfig(FULL, "full.yaml");
    expect(config.admin).toEqual({ port: 15000, address: "127.0.0.1" });
    expect(config.discovery).toEqual({ file: "./services.yaml" });
    expect(config.listeners).toEqual([
      {
        name: "outbound",
        kind: "outbound",
        port: 15001,
        address: "127.0.0.1",
        timeouts: { requestHeaders: 10_000, idle: 3_600_000 },
        maxRequestHeadersKb: 64,
      },
      {
        name: "inbound",
        kind: "inbound",
        port: 15006,
        address: "0.0.0.0",
        app: "127.0.0.1:8080",
        timeouts: { requestHeaders: 5000, idle: 3_600_000 },
        maxRequestHeadersKb: 64,
        tls: { mode: "DISABLE" },
      },
      {
        name: "pg",
        kind: "tcp",
        port: 5432,
        address: "127.0.0.1",
        service: "postgres.data",
        timeouts: { requestHeaders: 10_000, idle: 3_600_000 },
        maxRequestHeadersKb: 128,
      },
    ]);
    expect(config.services).toEqual([
      {
        name: "hello",
        namespace: "default",
        endpoints: [
          { address: "127.0.0.1:9101", weight: 3, labels: { version: "v1" } },
          { address: "[::1]:9102", weight: 1, labels: {} },
        ],
        trafficPolicy: {
          loadBalancer: DEFAULT_LB_SETTINGS,
          tls: { mode: "DISABLE", subjectAltNames: [] },
          connectionPool: {
            tcp: { connectTimeout: 250, maxConnections: 1024 },
            http: {
              idleTimeout: 4000,
              streamIdleTimeout: 300_000,
              maxRequestsPerConnection: 0,
              http1MaxPendingRequests: 2 ** 32 - 1,
              maxRetries: 2 ** 32 - 1,
              retryBudget: { percent: 20, minRetryConcurrency: 3 },
            },
          },
        },
        timeout: 1500,
        retries: DEFAULT_RETRIES,
        subsets: [],
        routes: [],
      },
    ]);
  });

  it("fills a minimal config", () => {
    const config = parseConfig(LISTENER, "min.yaml");
    expect(config.admin).toEqual({ port: 15000, address: "127.0.0.1" });
    expect(config.probes).toEqual({ port: 15021, address: "0.0.0.0" });
    expect(config.discovery).toBeUndefined();
    expect(config.services).toEqual([]);
  });

  it("streamIdleTimeout: a duration in ms, 0s (off) allowed", () => {
    const http = (value: string) =>
      parseConfig(
        `${LISTENER}services: [{ name: a, trafficPolicy: { connectionPool: { http: { streamIdleTimeout: ${value} } } } }]`,
        "x.yaml",
      ).services[0]!.trafficPolicy.connectionPool.http;
    expect(http("300ms").streamIdleTimeout).toBe(300);
    expect(http("0s").streamIdleTimeout).toBe(0);
    expect(http("1h").streamIdleTimeout).toBe(3_600_000);
  });

  it("fills a bare service with Istio-like defaults", () => {
    const config = parseConfig(`${LISTENER}services: [{ name: a }]`, "x.yaml");
    expect(config.services[0]).toEqual({
      name: "a",
      namespace: "default",
      endpoints: [],
      trafficPolicy: {
        loadBalancer: DEFAULT_LB_SETTINGS,
        tls: { mode: "DISABLE", subjectAltNames: [] },
        connectionPool: {
          tcp: { connectTimeout: 10_000, maxConnections: 1024 },
          http: {
            idleTimeout: 4000,
            streamIdleTimeout: 300_000,
            maxRequestsPerConnection: 0,
            http1MaxPendingRequests: 2 ** 32 - 1,
            maxRetries: 2 ** 32 - 1,
            retryBudget: { percent: 20, minRetryConcurrency: 3 },
          },
        },
      },
      timeout: 0,
      retries: DEFAULT_RETRIES,
      subsets: [],
      routes: [],
    });
  });

  it("does not share default objects between parses", () => {
    const a = parseConfig(
      `${LISTENER}services: [{ name: a, endpoints: [{ address: "h:1" }] }]`,
      "a",
    );
    a.services[0]?.endpoints[0]?.labels &&
      Object.assign(a.services[0].endpoints[0].labels, { x: "y" });
    a.services.push(a.services[0]!);
    const b = parseConfig(
      `${LISTENER}services: [{ name: a, endpoints: [{ address: "h:1" }] }]`,
      "b",
    );
    expect(b.services).toHaveLength(1);
    expect(b.services[0]?.endpoints[0]?.labels).toEqual({});
    expect(parseConfig(LISTENER, "c").services).toEqual([]);
  });

  it("normalises a tcp listener's service to NAME.NAMESPACE", () => {
    const config = parseConfig(
      "listeners: [{ name: pg, kind: tcp, port: 5432, service: postgres }]\nservices: [{ name: postgres }]",
      "x",
    );
    expect(config.listeners[0]).toMatchObject({ kind: "tcp", service: "postgres.default" });
  });

  it("strips brackets from an IPv6 listen address", () => {
    const config = parseConfig(
      'listeners: [{ name: in, kind: inbound, port: 1, app: "[::1]:2", address: "[::]" }]',
      "x",
    );
    expect(config.listeners[0]?.address).toBe("::");
  });

  it.each([
    [
      "listeners: [{ name: a, kind: outbound, port: 70000 }]",
      "listeners[0].port",
      /from 0 to 65535/,
    ],
    ["listeners: [{ name: a, kind: outbound, port: -1 }]", "listeners[0].port", /from 0 to 65535/],
    ["listeners: [{ name: a, kind: outbound, port: 1.5 }]", "listeners[0].port", /an integer/],
    ['listeners: [{ name: a, kind: outbound, port: "80" }]', "listeners[0].port", /an integer/],
    ["listeners: [{ name: a, kind: outbound }]", "listeners[0].port", /^required$/],
    ["listeners: [{ name: a, kind: udp, port: 1 }]", "listeners[0].kind", /got "udp"/],
    ["listeners: [{ name: a, port: 1 }]", "listeners[0].kind", /^required: expected "outbound"/],
    ["listeners: [{ name: a, kind: inbound, port: 1 }]", "listeners[0].app", /^required$/],
    [
      "listeners: [{ name: a, kind: inbound, port: 1, app: localhost }]",
      "listeners[0].app",
      /missing :PORT/,
    ],
    ["listeners: [{ name: a, kind: tcp, port: 1 }]", "listeners[0].service", /^required$/],
    [
      "listeners: [{ name: a, kind: tcp, port: 1, service: a.b.c }]",
      "listeners[0].service",
      /NAME or NAME.NAMESPACE/,
    ],
    [
      "listeners: [{ name: a, kind: outbound, port: 1, address: 'not an ip' }]",
      "listeners[0].address",
      /IP address or host name/,
    ],
    [
      "listeners: [{ name: a, kind: outbound, port: 1, maxRequestHeadersKb: 0 }]",
      "listeners[0].maxRequestHeadersKb",
      /from 1 to 8192/,
    ],
    [
      "listeners: [{ name: a, kind: outbound, port: 1, timeouts: { idle: 10 } }]",
      "listeners[0].timeouts.idle",
      /invalid duration 10/,
    ],
    [
      "listeners: [{ name: a, kind: outbound, port: 1, timeouts: { requestHeaders: 10x } }]",
      "listeners[0].timeouts.requestHeaders",
      /invalid duration "10x"/,
    ],
    ["listeners: []", "listeners", /at least one listener/],
    ["admin: { port: 1 }", "listeners", /^required$/],
    ["listeners: { name: a }", "listeners", /expected a list, got a mapping/],
    [`${LISTENER}admin: { port: 99999 }`, "admin.port", /from 0 to 65535/],
    [`${LISTENER}discovery: {}`, "discovery.file", /required/],
    [`${LISTENER}services: [{ name: Hello }]`, "services[0].name", /DNS-1123 label/],
    [`${LISTENER}services: [{ name: a, namespace: "" }]`, "services[0].namespace", /DNS-1123/],
    [`${LISTENER}services: [{ endpoints: [] }]`, "services[0].name", /^required$/],
    [
      `${LISTENER}services: [{ name: a, endpoints: [{ address: "1.2.3.4" }] }]`,
      "services[0].endpoints[0].address",
      /missing :PORT/,
    ],
    [
      `${LISTENER}services: [{ name: a, endpoints: [{ address: "h:1", weight: -1 }] }]`,
      "services[0].endpoints[0].weight",
      /from 0 to 128/,
    ],
    [
      `${LISTENER}services: [{ name: a, endpoints: [{ address: "h:1", weight: 129 }] }]`,
      "services[0].endpoints[0].weight",
      /from 0 to 128/,
    ],
    [
      `${LISTENER}services: [{ name: a, endpoints: [{ address: "h:1", labels: { v: 1 } }] }]`,
      "services[0].endpoints[0].labels.v",
      /expected a string, got 1/,
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { loadBalancer: { policy: magic } } }]`,
      "services[0].trafficPolicy.loadBalancer.policy",
      /unknown load-balancer policy "magic": expected one of round-robin, .*LEAST_REQUEST/,
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { loadBalancer: { policy: first-come } } }]`,
      "services[0].trafficPolicy.loadBalancer.maxConcurrent",
      /required for policy first-come/,
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { loadBalancer: { maxConcurrent: 3 } } }]`,
      "services[0].trafficPolicy.loadBalancer.maxConcurrent",
      /only policy first-come takes maxConcurrent/,
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { loadBalancer: { policy: maglev } } }]`,
      "services[0].trafficPolicy.loadBalancer.consistentHash",
      /required for policy maglev/,
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { loadBalancer: { policy: RANDOM, consistentHash: { useSourceIp: true } } } }]`,
      "services[0].trafficPolicy.loadBalancer.consistentHash",
      /policy random does not hash/,
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { loadBalancer: { consistentHash: { useSourceIp: true, httpHeaderName: x-user } } } }]`,
      "services[0].trafficPolicy.loadBalancer.consistentHash",
      /expected one key source, got httpHeaderName and useSourceIp/,
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { loadBalancer: { consistentHash: {} } } }]`,
      "services[0].trafficPolicy.loadBalancer.consistentHash",
      /expected one key source/,
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { loadBalancer: { policy: maglev, consistentHash: { useSourceIp: true, tableSize: 65536 } } } }]`,
      "services[0].trafficPolicy.loadBalancer.consistentHash.tableSize",
      /expected a prime table size, got 65536/,
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { loadBalancer: { policy: random, module: ./x.mjs } } }]`,
      "services[0].trafficPolicy.loadBalancer.module",
      /either policy or module/,
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { loadBalancer: { options: { a: 1 } } } }]`,
      "services[0].trafficPolicy.loadBalancer.options",
      /module is not set/,
    ],
    [
      `${LISTENER}services: [{ name: a, subsets: [{ name: v1 }], routes: [{ route: [{ subset: v2 }] }] }]`,
      "services[0].routes[0].route[0].subset",
      /unknown subset "v2"/,
    ],
    [
      `${LISTENER}services: [{ name: a, routes: [{ route: [{ weight: 50 }, {}] }] }]`,
      "services[0].routes[0].route",
      /every destination needs a weight/,
    ],
    [
      `${LISTENER}services: [{ name: a, routes: [{ match: [{ uri: { prefix: /a, exact: /b } }], route: [{}] }] }]`,
      "services[0].routes[0].match[0].uri",
      /one of exact, prefix, regex, got exact and prefix/,
    ],
    [
      `${LISTENER}services: [{ name: a, retries: { retryOn: "5xx,bogus" } }]`,
      "services[0].retries.retryOn",
      /unknown retryOn condition "bogus"/,
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { outlierDetection: { mode: eager } } }]`,
      "services[0].trafficPolicy.outlierDetection.mode",
      /expected "consecutive" or "fail-fast", got "eager"/,
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { healthCheck: { expectedStatuses: ["299-200"] } } }]`,
      "services[0].trafficPolicy.healthCheck.expectedStatuses[0]",
      /a range like "200-299"/,
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { connectionPool: { tcp: { connectTimeout: 0s } } } }]`,
      "services[0].trafficPolicy.connectionPool.tcp.connectTimeout",
      /greater than 0s/,
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { connectionPool: { tcp: { maxConnections: 0 } } } }]`,
      "services[0].trafficPolicy.connectionPool.tcp.maxConnections",
      /from 1 to 4294967295/,
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { connectionPool: { http: { idleTimeout: 0ms } } } }]`,
      "services[0].trafficPolicy.connectionPool.http.idleTimeout",
      /greater than 0s/,
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { connectionPool: { http: { streamIdleTimeout: 300 } } } }]`,
      "services[0].trafficPolicy.connectionPool.http.streamIdleTimeout",
      /expected a string such as "10s"/,
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { connectionPool: { http: { streamIdleTimeout: 5min } } } }]`,
      "services[0].trafficPolicy.connectionPool.http.streamIdleTimeout",
      /invalid duration "5min"/,
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { connectionPool: { http: { streamIdleTimeout: -1s } } } }]`,
      "services[0].trafficPolicy.connectionPool.http.streamIdleTimeout",
      /invalid duration "-1s"/,
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { connectionPool: { http: { maxRequestsPerConnection: -1 } } } }]`,
      "services[0].trafficPolicy.connectionPool.http.maxRequestsPerConnection",
      /from 0 to/,
    ],
    [
      `${LISTENER}services: [{ name: a, timeout: -1s }]`,
      "services[0].timeout",
      /invalid duration "-1s"/,
    ],
    [`${LISTENER}services: {}`, "services", /expected a list/],
  ])("%s → %s", (text, path, message) => {
    const issues = issuesOf(text);
    expect(issues.map((i) => i.path)).toContain(path);
    expect(issues.find((i) => i.path === path)?.message).toMatch(message);
  });

  it.each([
    [`admin: { port: 1, portt: 2 }\n${LISTENER}`, "admin.portt"],
    [`${LISTENER}extra: 1`, "extra"],
    ["listeners: [{ name: a, kind: outbound, port: 1, app: 'h:1' }]", "listeners[0].app"],
    [
      "listeners: [{ name: a, kind: inbound, port: 1, app: 'h:1', service: x }]",
      "listeners[0].service",
    ],
    [
      "listeners: [{ name: a, kind: outbound, port: 1, timeouts: { connect: 1s } }]",
      "listeners[0].timeouts.connect",
    ],
    [`${LISTENER}discovery: { file: x, consul: {} }`, "discovery.consul"],
    [`${LISTENER}services: [{ name: a, retries: { budget: 5 } }]`, "services[0].retries.budget"],
    [
      `${LISTENER}services: [{ name: a, endpoints: [{ address: "h:1", zone: z }] }]`,
      "services[0].endpoints[0].zone",
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { outlier: {} } }]`,
      "services[0].trafficPolicy.outlier",
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { loadBalancer: { simple: ROUND_ROBIN } } }]`,
      "services[0].trafficPolicy.loadBalancer.simple",
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { connectionPool: { tcp: { keepalive: {} } } } }]`,
      "services[0].trafficPolicy.connectionPool.tcp.keepalive",
    ],
    [
      `${LISTENER}services: [{ name: a, trafficPolicy: { connectionPool: { http: { h2: true } } } }]`,
      "services[0].trafficPolicy.connectionPool.http.h2",
    ],
  ])("unknown key: %s → %s", (text, path) => {
    expect(issuesOf(text)).toContainEqual(
      expect.objectContaining({ path, message: "unknown key" }),
    );
  });

  describe("cross-field checks", () => {
    it("rejects duplicate listener names", () => {
      const issues = issuesOf(
        "listeners:\n  - { name: a, kind: outbound, port: 1 }\n  - { name: a, kind: outbound, port: 2 }",
      );
      expect(issues).toEqual([
        expect.objectContaining({
          path: "listeners[1].name",
          message: 'duplicate listener name "a" (also listeners[0])',
        }),
      ]);
    });

    it("rejects a port used twice, including by the admin API, but not port 0", () => {
      const issues = issuesOf(
        [
          "admin: { port: 15000 }",
          "listeners:",
          "  - { name: a, kind: outbound, port: 15001 }",
          "  - { name: b, kind: outbound, port: 15001 }",
          "  - { name: c, kind: outbound, port: 15000 }",
          "  - { name: d, kind: outbound, port: 0 }",
          "  - { name: e, kind: outbound, port: 0 }",
        ].join("\n"),
      );
      expect(issues.map((i) => [i.path, i.message])).toEqual([
        ["listeners[1].port", "port 15001 is already used by listeners[0].port"],
        ["listeners[2].port", "port 15000 is already used by admin.port"],
      ]);
    });

    it("takes probes port null (no probe listener) and checks a probe port like the others", () => {
      expect(parseConfig(`probes: { port: null }\n${LISTENER}`, "x").probes.port).toBeNull();
      const issues = issuesOf(
        [
          "admin: { port: 15000 }",
          "probes: { port: 15000, address: 10.0.0.1 }",
          "listeners: [{ name: a, kind: outbound, port: 15021 }]",
        ].join("\n"),
      );
      expect(issues.map((i) => [i.path, i.message])).toEqual([
        ["probes.port", "port 15000 is already used by admin.port"],
      ]);
      expect(
        issuesOf("probes: { port: 15021 }\nlisteners: [{ name: a, kind: outbound, port: 15021 }]"),
      ).toEqual([
        expect.objectContaining({
          path: "listeners[0].port",
          message: "port 15021 is already used by probes.port",
        }),
      ]);
    });

    it("allows admin port 0 next to a listener port 0", () => {
      expect(() =>
        parseConfig("admin: { port: 0 }\nlisteners: [{ name: a, kind: outbound, port: 0 }]", "x"),
      ).not.toThrow();
    });

    it("rejects duplicate services by name and namespace", () => {
      const issues = issuesOf(
        `${LISTENER}services:\n  - { name: a }\n  - { name: a, namespace: other }\n  - { name: a, namespace: default }`,
      );
      expect(issues).toEqual([
        expect.objectContaining({
          path: "services[2].name",
          message: "duplicate service a.default (first defined at services[0])",
        }),
      ]);
    });

    it("rejects duplicate endpoints within a service, comparing normalised addresses", () => {
      const issues = issuesOf(
        `${LISTENER}services:\n  - name: a\n    endpoints: [{ address: "H:1" }, { address: "h:2" }, { address: "h:1" }]\n  - name: b\n    endpoints: [{ address: "h:1" }]`,
      );
      expect(issues).toEqual([
        expect.objectContaining({
          path: "services[0].endpoints[2].address",
          message: "duplicate endpoint h:1 (also endpoints[0])",
        }),
      ]);
    });

    it("rejects a tcp listener's unknown service unless a discovery file may supply it", () => {
      const text =
        "listeners: [{ name: pg, kind: tcp, port: 5432, service: pg.data }]\nservices: [{ name: pg }]";
      expect(issuesOf(text)).toEqual([
        expect.objectContaining({
          path: "listeners[0].service",
          message: "unknown service pg.data: not in services (and no discovery.file is configured)",
        }),
      ]);
      expect(() => parseConfig(`${text}\ndiscovery: { file: s.yaml }`, "x")).not.toThrow();
    });
  });

  describe("errors", () => {
    it("lists every issue in the message with its path and line", () => {
      const text = [
        "listeners:",
        "  - name: a",
        "    kind: outbound",
        "    port: 99999",
        "  - name: b",
        "    kind: outbound",
        "    port: 1",
        "    bogus: true",
      ].join("\n");
      try {
        parseConfig(text, "bad.yaml");
        expect.unreachable();
      } catch (error) {
        expect(error).toBeInstanceOf(ConfigError);
        const configError = error as ConfigError;
        expect(configError.code).toBe("REMORA_ERR_CONFIG");
        expect(configError.source).toBe("bad.yaml");
        expect(configError.message).toBe(
          [
            "bad.yaml: invalid config",
            "  - listeners[0].port: expected a port (0 picks a free one): an integer from 0 to 65535 (line 4)",
            "  - listeners[1].bogus: unknown key (line 8)",
          ].join("\n"),
        );
      }
    });

    it("reports YAML syntax errors with line and column", () => {
      const issues = issuesOf("listeners:\n  - name: a\n   kind: [outbound\n");
      expect(issues.length).toBeGreaterThan(0);
      expect(issues[0]?.path).toBe("");
      expect(issues[0]?.message).toMatch(/^YAML error at line \d+, column \d+: /);
      expect(issues[0]?.line).toBeGreaterThanOrEqual(2);
    });

    it("rejects repeated keys", () => {
      const issues = issuesOf("listeners: []\nlisteners: []\n");
      expect(issues[0]?.message).toMatch(/line 2, column 1: .*unique/i);
    });

    it("rejects an empty document and a non-mapping document", () => {
      expect(issuesOf("")[0]?.message).toMatch(/empty/);
      expect(issuesOf("# only a comment\n")[0]?.message).toMatch(/empty/);
      expect(issuesOf("- a\n- b\n")).toEqual([
        expect.objectContaining({ path: "", message: "expected a mapping, got a list" }),
      ]);
    });
  });
});

describe("parseServicesFile", () => {
  it("parses a services list with the config's service schema", () => {
    const services = parseServicesFile(
      "services:\n  - name: a\n    endpoints: [{ address: 10.0.0.1:80 }]\n",
      "s.yaml",
    );
    expect(services).toEqual([
      expect.objectContaining({
        name: "a",
        namespace: "default",
        endpoints: [{ address: "10.0.0.1:80", weight: 1, labels: {} }],
      }),
    ]);
  });

  it("rejects unknown top-level keys and duplicate services", () => {
    expect(() => parseServicesFile("listeners: []\n", "s.yaml")).toThrow(/listeners: unknown key/);
    expect(() => parseServicesFile("services: [{ name: a }, { name: a }]\n", "s.yaml")).toThrow(
      /services\[1\]\.name: duplicate service a\.default/,
    );
  });
});

describe("loadConfigFile", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "remora-config-"));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("resolves a relative discovery.file against the config's directory", () => {
    const path = join(dir, "remora.yaml");
    writeFileSync(path, `discovery: { file: ./eps/services.yaml }\n${LISTENER}`);
    expect(loadConfigFile(path).discovery?.file).toBe(join(dir, "eps", "services.yaml"));
  });

  it("keeps an absolute discovery.file", () => {
    const path = join(dir, "remora.yaml");
    writeFileSync(path, `discovery: { file: /etc/remora/services.yaml }\n${LISTENER}`);
    expect(loadConfigFile(path).discovery?.file).toBe("/etc/remora/services.yaml");
  });

  it("names the file in errors", () => {
    const path = join(dir, "remora.yaml");
    writeFileSync(path, "listeners: []\n");
    expect(() => loadConfigFile(path)).toThrow(`${path}: invalid config`);
  });

  it("reports a missing file as a ConfigError", () => {
    const path = join(dir, "missing.yaml");
    expect(() => loadConfigFile(path)).toThrow(ConfigError);
    expect(() => loadConfigFile(path)).toThrow(/cannot read: ENOENT/);
  });
});

describe("issue reporting", () => {
  it("reports a malformed tcp service once, not again as unknown", () => {
    expect(issuesOf("listeners: [{ name: a, kind: tcp, port: 1, service: a.b.c }]")).toEqual([
      expect.objectContaining({
        path: "listeners[0].service",
        message: expect.stringMatching(/^expected NAME/),
      }),
    ]);
  });

  it("reports an invalid endpoint address once, not again as a duplicate", () => {
    const issues = issuesOf(
      `${LISTENER}services: [{ name: a, endpoints: [{ address: x }, { address: x }] }]`,
    );
    expect(issues.map((i) => i.path)).toEqual([
      "services[0].endpoints[0].address",
      "services[0].endpoints[1].address",
    ]);
  });
});
