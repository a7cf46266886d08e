/**
 * Metrics scraped from a real remora process with real traffic: every Istio metric and label
 * name against Istio's, values for known traffic, histogram invariants, TCP metrics through a tcp
 * listener, reporter=destination on inbound, workload labels from the downward-API environment,
 * the metrics listener on port 0, and `metrics.enabled: false`.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type HttpBackend,
  httpBackend,
  type RawBackend,
  RawClient,
  rawBackend,
  type SpawnedRemora,
  spawnRemora,
} from "./harness.js";
import { checkHistogram, type Family, one, parseExposition, samples } from "./prometheus-text.js";

/**
 * Istio's standard metrics and their labels, from https://istio.io/latest/docs/reference/config/metrics/
 * and the order Istio's stats filter writes them (istio/proxy istio_stats.cc). Written out here,
 * not imported, so the test checks the implementation against Istio rather than against itself.
 */
const ISTIO_HTTP = {
  istio_requests_total: "counter",
  istio_request_duration_milliseconds: "histogram",
  istio_request_bytes: "histogram",
  istio_response_bytes: "histogram",
};
const ISTIO_TCP = {
  istio_tcp_connections_opened_total: "counter",
  istio_tcp_connections_closed_total: "counter",
  istio_tcp_sent_bytes_total: "counter",
  istio_tcp_received_bytes_total: "counter",
};
const SOURCE_LABELS = [
  "reporter",
  "source_workload",
  "source_canonical_service",
  "source_canonical_revision",
  "source_workload_namespace",
  "source_principal",
  "source_app",
  "source_version",
  "source_cluster",
];
const DESTINATION_LABELS = [
  "destination_workload",
  "destination_workload_namespace",
  "destination_principal",
  "destination_app",
  "destination_version",
  "destination_service",
  "destination_canonical_service",
  "destination_canonical_revision",
  "destination_service_name",
  "destination_service_namespace",
  "destination_cluster",
];
const HTTP_LABELS = [
  ...SOURCE_LABELS,
  ...DESTINATION_LABELS,
  "request_protocol",
  "response_code",
  "grpc_response_status",
  "response_flags",
  "connection_security_policy",
];
const TCP_LABELS = [
  ...SOURCE_LABELS,
  ...DESTINATION_LABELS,
  "request_protocol",
  "response_flags",
  "connection_security_policy",
];
/** Envoy's default buckets, which Istio's histograms use. */
const ENVOY_BUCKETS = [
  "0.5",
  "1",
  "5",
  "10",
  "25",
  "50",
  "100",
  "250",
  "500",
  "1000",
  "2500",
  "5000",
  "10000",
  "30000",
  "60000",
  "300000",
  "600000",
  "1800000",
  "3600000",
  "+Inf",
];

const ENV = {
  POD_NAME: "reviews-v2-7d4f8b9c6d-x2k9p",
  POD_NAMESPACE: "shop",
  SERVICE_ACCOUNT: "bookinfo-reviews",
};

let dir: string;
let backend: HttpBackend;
let echo: RawBackend;
let remora: SpawnedRemora;
let metricsPort: number;
const saved: Record<string, string | undefined> = {};

/** The bound port a log line reported, e.g. "metrics listening". */
function loggedPort(stderr: string, msg: string): number | undefined {
  for (const line of stderr.split("\n")) {
    if (!line.startsWith("{")) continue;
    const rec = JSON.parse(line) as { msg?: string; port?: number };
    if (rec.msg === msg) return rec.port;
  }
  return undefined;
}

async function scrape(port: number): Promise<{ text: string; type: string | null }> {
  const res = await fetch(`http://127.0.0.1:${port}/stats/prometheus`);
  expect(res.status).toBe(200);
  return { text: await res.text(), type: res.headers.get("content-type") };
}

/** Scrape until `ready` holds (reports land just after the client has its response). */
async function scrapeUntil(
  port: number,
  ready: (families: Map<string, Family>) => boolean,
): Promise<Map<string, Family>> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const families = parseExposition((await scrape(port)).text);
    if (ready(families) || Date.now() > deadline) return families;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function total(families: Map<string, Family>, family: string, match: Record<string, string>) {
  return samples(families, family, match).reduce((sum, s) => sum + s.value, 0);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "remora-metrics-"));
  backend = await httpBackend((_req, res) => res.end("hello, world"));
  echo = await rawBackend((socket, data) => socket.write(data));
  const config = join(dir, "remora.yaml");
  writeFileSync(
    config,
    `
admin: { port: 0 }
probes: { port: null }
metrics: { port: 0, address: 127.0.0.1 }
workload: { app: reviews, version: v2 }
listeners:
  - { name: outbound, kind: outbound, port: 0 }
  - { name: inbound, kind: inbound, port: 0, address: 127.0.0.1, app: "${backend.address}" }
  - { name: pg, kind: tcp, port: 0, service: echo.shop }
services:
  - name: hello
    namespace: shop
    endpoints: [{ address: "${backend.address}", labels: { app: hello, version: v1 } }]
  - name: echo
    namespace: shop
    endpoints: [{ address: "${echo.address}" }]
`,
  );
  for (const [name, value] of Object.entries(ENV)) {
    saved[name] = process.env[name];
    process.env[name] = value;
  }
  remora = await spawnRemora(["run", "-c", config], 3);
  metricsPort = loggedPort(remora.stderr(), "metrics listening") ?? -1;
});

afterAll(async () => {
  for (const [name, value] of Object.entries(saved)) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  await remora?.stop();
  await backend?.close();
  await echo?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("metrics from a running remora", () => {
  let families: Map<string, Family>;
  let tcpOpen: Map<string, Family>;

  beforeAll(async () => {
    const outbound = remora.ports.get("outbound")!;
    for (let i = 0; i < 5; i++) {
      const res = await RawClient.exchange(outbound, "GET / HTTP/1.1\r\nHost: hello\r\n\r\n");
      expect(res.status).toBe(200);
    }
    const miss = await RawClient.exchange(outbound, "GET / HTTP/1.1\r\nHost: nope\r\n\r\n");
    expect(miss.status).toBe(404);
    const inbound = remora.ports.get("inbound")!;
    for (let i = 0; i < 2; i++) {
      const res = await RawClient.exchange(
        inbound,
        "POST /in HTTP/1.1\r\nHost: reviews\r\nContent-Length: 3\r\n\r\nabc",
      );
      expect(res.status).toBe(200);
    }
    // A TCP connection through the tcp listener: 4 bytes each way, scraped while open.
    const socket: Socket = connect(remora.ports.get("pg")!, "127.0.0.1");
    await new Promise((resolve) => socket.once("connect", resolve));
    const echoed = new Promise<string>((resolve) => socket.once("data", (d) => resolve(String(d))));
    socket.write("ping");
    expect(await echoed).toBe("ping");
    tcpOpen = await scrapeUntil(metricsPort, (f) =>
      samples(f, "istio_tcp_sent_bytes_total").some((s) => s.value === 4),
    );
    socket.end();
    families = await scrapeUntil(
      metricsPort,
      (f) =>
        total(f, "istio_tcp_connections_closed_total", {}) === 1 &&
        total(f, "istio_requests_total", {}) === 8,
    );
  });

  it("serves the text format on the metrics listener (port 0) and the admin API", async () => {
    expect(metricsPort).toBeGreaterThan(0);
    expect(metricsPort).not.toBe(remora.adminPort);
    const viaMetrics = await scrape(metricsPort);
    expect(viaMetrics.type).toBe("text/plain; version=0.0.4; charset=utf-8");
    const viaAdmin = await scrape(remora.adminPort);
    expect(viaAdmin.type).toBe("text/plain; version=0.0.4; charset=utf-8");
    expect([...parseExposition(viaAdmin.text).keys()]).toEqual([
      ...parseExposition(viaMetrics.text).keys(),
    ]);
    // The metrics listener answers scrapes only, never the admin API.
    const other = await fetch(`http://127.0.0.1:${metricsPort}/quitquitquit`, { method: "POST" });
    expect(other.status).toBe(404);
  });

  it("has every Istio metric with Istio's type and exactly Istio's label names", () => {
    for (const [name, type] of Object.entries({ ...ISTIO_HTTP, ...ISTIO_TCP })) {
      expect(families.get(name)?.type, name).toBe(type);
      expect(families.get(name)!.samples.length, name).toBeGreaterThan(0);
    }
    for (const [name, family] of families) {
      if (!name.startsWith("istio_")) continue;
      const expected = name in ISTIO_HTTP ? HTTP_LABELS : TCP_LABELS;
      for (const sample of family.samples) {
        const names = sample.pairs.map(([label]) => label).filter((label) => label !== "le");
        expect(names, sample.name).toEqual(expected);
      }
    }
    expect([...families.keys()].filter((n) => n.startsWith("istio_")).sort()).toEqual(
      Object.keys({ ...ISTIO_HTTP, ...ISTIO_TCP }).sort(),
    );
  });

  it("counts 5 × 200 and 1 × 404 NR on the outbound listener as the source's sidecar", () => {
    const ok = one(families, "istio_requests_total", {
      reporter: "source",
      response_code: "200",
      response_flags: "-",
    });
    expect(ok.value).toBe(5);
    expect(ok.labels).toMatchObject({
      source_workload: "reviews-v2",
      source_workload_namespace: "shop",
      source_app: "reviews",
      source_version: "v2",
      source_canonical_service: "reviews",
      source_canonical_revision: "v2",
      source_principal: "unknown",
      destination_service: "hello.shop.svc.cluster.local",
      destination_service_name: "hello",
      destination_service_namespace: "shop",
      destination_workload_namespace: "shop",
      destination_app: "hello",
      destination_version: "v1",
      destination_canonical_service: "hello",
      destination_canonical_revision: "v1",
      destination_workload: "unknown",
      request_protocol: "http",
      grpc_response_status: "",
      connection_security_policy: "unknown",
    });
    const nr = one(families, "istio_requests_total", { response_flags: "NR" });
    expect(nr.value).toBe(1);
    expect(nr.labels).toMatchObject({
      response_code: "404",
      destination_service: "unknown",
      destination_service_name: "unknown",
    });
    const duration = one(
      families,
      "istio_request_duration_milliseconds",
      { reporter: "source", response_code: "200" },
      "_count",
    );
    expect(duration.value).toBe(5);
    // Request bytes are the heads read from the client: 5 × "GET / HTTP/1.1\r\nHost: hello\r\n\r\n".
    const requestBytes = one(
      families,
      "istio_request_bytes",
      { reporter: "source", response_code: "200" },
      "_sum",
    );
    expect(requestBytes.value).toBe(5 * "GET / HTTP/1.1\r\nHost: hello\r\n\r\n".length);
    const responseBytes = one(
      families,
      "istio_response_bytes",
      { reporter: "source", response_code: "200" },
      "_sum",
    );
    expect(responseBytes.value).toBeGreaterThan(5 * "hello, world".length);
  });

  it("reports inbound exchanges as the destination's sidecar, with the workload as destination", () => {
    const inbound = one(families, "istio_requests_total", { reporter: "destination" });
    expect(inbound.value).toBe(2);
    expect(inbound.labels).toMatchObject({
      response_code: "200",
      destination_workload: "reviews-v2",
      destination_workload_namespace: "shop",
      destination_app: "reviews",
      destination_version: "v2",
      destination_service: "reviews.shop.svc.cluster.local",
      destination_service_name: "reviews",
      destination_service_namespace: "shop",
      source_workload: "unknown",
      source_workload_namespace: "unknown",
      source_canonical_revision: "latest",
      connection_security_policy: "none",
    });
  });

  it("keeps every histogram cumulative with Envoy's buckets and +Inf equal to _count", () => {
    for (const name of [
      "istio_request_duration_milliseconds",
      "istio_request_bytes",
      "istio_response_bytes",
    ]) {
      expect(checkHistogram(families, name), name).toBe(3);
      const les = samples(families, name, { reporter: "destination" }, "_bucket").map(
        (s) => s.labels.le,
      );
      expect(les, name).toEqual(ENVOY_BUCKETS);
    }
    expect(checkHistogram(families, "remora_event_loop_delay_seconds")).toBe(1);
    // 3-byte bodies plus heads: every inbound request is over 25 bytes and at most 100.
    const small = one(
      families,
      "istio_request_bytes",
      { reporter: "destination", le: "25" },
      "_bucket",
    );
    const medium = one(
      families,
      "istio_request_bytes",
      { reporter: "destination", le: "100" },
      "_bucket",
    );
    expect([small.value, medium.value]).toEqual([0, 2]);
  });

  it("counts the tcp listener's connection and its bytes, while open and after the close", () => {
    const labels = { reporter: "source", request_protocol: "tcp" };
    expect(one(tcpOpen, "istio_tcp_connections_opened_total", labels).value).toBe(1);
    expect(total(tcpOpen, "istio_tcp_connections_closed_total", labels)).toBe(0);
    expect(one(tcpOpen, "istio_tcp_received_bytes_total", labels).value).toBe(4);
    const closed = one(families, "istio_tcp_connections_closed_total", labels);
    expect(closed.value).toBe(1);
    expect(closed.labels).toMatchObject({
      destination_service: "echo.shop.svc.cluster.local",
      destination_service_name: "echo",
      source_workload: "reviews-v2",
      response_flags: "-",
      connection_security_policy: "unknown",
    });
    expect(one(families, "istio_tcp_connections_opened_total", labels).value).toBe(1);
    expect(one(families, "istio_tcp_sent_bytes_total", labels).value).toBe(4);
    expect(one(families, "istio_tcp_received_bytes_total", labels).value).toBe(4);
  });

  it("exports remora's own metrics", () => {
    const rq = one(families, "remora_upstream_rq_total", {
      cluster: "hello.shop",
      endpoint: backend.address,
    });
    expect(rq.labels.response_code_class).toBe("2xx");
    expect(rq.value).toBe(5);
    expect(
      one(families, "remora_upstream_rq_total", { cluster: `inbound|${backend.port}|inbound` })
        .value,
    ).toBe(2);
    expect(
      one(families, "remora_downstream_connections_accepted_total", { listener: "outbound" }).value,
    ).toBe(6);
    expect(
      one(families, "remora_downstream_connections_accepted_total", { listener: "pg" }).value,
    ).toBe(1);
    expect(
      one(families, "remora_downstream_connections_rejected_total", { listener: "inbound" }).value,
    ).toBe(0);
    expect(families.get("remora_downstream_connections")?.type).toBe("gauge");
    expect(
      samples(families, "remora_upstream_connections", { cluster: "hello.shop" }).map(
        (s) => s.labels.state,
      ),
    ).toEqual(["active", "idle", "connecting"]);
    expect(one(families, "remora_upstream_rq_active", { cluster: "hello.shop" }).value).toBe(0);
    expect(one(families, "remora_config_reloads_total", { result: "ok" }).value).toBe(0);
    expect(one(families, "remora_config_reloads_total", { result: "failed" }).value).toBe(0);
    expect(one(families, "remora_config_info").labels.hash).toMatch(/^[0-9a-f]{16}$/);
    expect(one(families, "remora_discovery_synced", { source: "static" }).value).toBe(1);
    expect(
      one(families, "remora_discovery_last_sync_age_seconds", { source: "static" }).value,
    ).toBeGreaterThanOrEqual(0);
    expect(one(families, "remora_workload_info").labels).toEqual({
      workload: "reviews-v2",
      namespace: "shop",
      service_account: "bookinfo-reviews",
      app: "reviews",
      version: "v2",
      cluster: "unknown",
    });
    // prom-client's process metrics, unprefixed.
    expect(families.get("process_cpu_seconds_total")?.type).toBe("counter");
    expect(families.get("nodejs_heap_size_used_bytes")?.type).toBe("gauge");
  });
});

describe("metrics.enabled: false", () => {
  it("collects nothing, starts no metrics listener, and says so on /stats/prometheus", async () => {
    const config = join(dir, "off.yaml");
    writeFileSync(
      config,
      `
admin: { port: 0 }
probes: { port: null }
metrics: { enabled: false, port: 0 }
listeners: [{ name: outbound, kind: outbound, port: 0 }]
services: [{ name: hello, namespace: shop, endpoints: [{ address: "${backend.address}" }] }]
`,
    );
    const off = await spawnRemora(["run", "-c", config]);
    try {
      const res = await RawClient.exchange(
        off.ports.get("outbound")!,
        "GET / HTTP/1.1\r\nHost: hello\r\n\r\n",
      );
      expect(res.status).toBe(200);
      const { text } = await scrape(off.adminPort);
      expect(parseExposition(text).size).toBe(0);
      expect(text).toContain("metrics are disabled");
      expect(loggedPort(off.stderr(), "metrics listening")).toBeUndefined();
    } finally {
      await off.stop();
    }
  });
});
