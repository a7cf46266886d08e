import { afterEach, describe, expect, it } from "vitest";
import { parseExposition, samples } from "../../test/prometheus-text.js";
import { type ExchangeRecord, emptyRecord } from "../exchange.js";
import type { ClusterView, MetricsSubject } from "./contract.js";
import { RuntimeMetrics } from "./runtime-metrics.js";

interface FakeEndpoint {
  id: string;
  labels: Record<string, string>;
}

/** A Runtime stand-in whose clusters the test edits (discovery adding and removing endpoints). */
function fakeRuntime() {
  const clusters = new Map<string, ClusterView & { endpoints: FakeEndpoint[] }>();
  const subject: MetricsSubject = {
    reloads: { ok: 0, failed: 0, hash: "0123456789abcdef", appliedAtMs: 0 },
    clusters: { all: () => clusters.values(), get: (key) => clusters.get(key) },
    appClusters: [],
    registry: { sourceStates: () => [] },
    accessLog: { stats: () => ({ lines: 7, dropped: 2, errors: 1 }) },
  };
  const addCluster = (name: string, endpoints: FakeEndpoint[]) => {
    clusters.set(`${name}.default`, {
      key: `${name}.default`,
      name,
      namespace: "default",
      stats: { active: 0 },
      endpoints,
      poolStats: () => ({ open: 0, idle: 0, connecting: 0 }),
    });
    return clusters.get(`${name}.default`)!;
  };
  return { subject, addCluster };
}

const running: RuntimeMetrics[] = [];
afterEach(async () => {
  for (const metrics of running.splice(0)) await metrics.close();
});

function start(subject: MetricsSubject, next?: (r: ExchangeRecord) => void): RuntimeMetrics {
  const metrics = new RuntimeMetrics(subject, {
    workload: { name: "client", namespace: "default" },
    env: {},
    next: next === undefined ? undefined : { report: next },
  });
  running.push(metrics);
  metrics.addListener("out", "outbound", { connections: 0, accepted: 0 });
  metrics.addListener("db", "tcp", { connections: 0, accepted: 0 });
  return metrics;
}

/** One reused record, as HttpSession reuses its own. */
function reporter(metrics: RuntimeMetrics, listener = "out") {
  const record = emptyRecord(listener);
  return (cluster: string, endpoint: string, status: number, flags = "-") => {
    record.cluster = cluster;
    record.endpoint = endpoint;
    record.status = status;
    record.flags = flags;
    record.durationMs = 3;
    record.requestBytes = 40;
    record.responseBytes = 100;
    metrics.exchanges.report(record);
  };
}

async function scrape(metrics: RuntimeMetrics) {
  return parseExposition(await metrics.exposition());
}

describe("ExchangeMetrics", () => {
  it("counts a reused record by status and flags into separate series", async () => {
    const { subject, addCluster } = fakeRuntime();
    addCluster("hello", [{ id: "10.0.0.1:80", labels: {} }]);
    const metrics = start(subject);
    const report = reporter(metrics);
    for (let i = 0; i < 3; i++) report("hello.default", "10.0.0.1:80", 200);
    report("hello.default", "10.0.0.1:80", 503, "UF");
    report("hello.default", "10.0.0.1:80", 503, "UF");
    report("hello.default", "10.0.0.1:80", 503, "UF,URX");
    const families = await scrape(metrics);
    const byOutcome = samples(families, "istio_requests_total").map((s) => [
      s.labels.response_code,
      s.labels.response_flags,
      s.value,
    ]);
    expect(byOutcome).toEqual([
      ["200", "-", 3],
      ["503", "UF", 2],
      ["503", "UF,URX", 1],
    ]);
    expect(
      samples(families, "remora_upstream_rq_total").map((s) => [
        s.labels.response_code_class,
        s.value,
      ]),
    ).toEqual([
      ["2xx", 3],
      ["5xx", 3],
    ]);
  });

  it("shares one Istio series between endpoints with the same labels, splits by version", async () => {
    const { subject, addCluster } = fakeRuntime();
    addCluster("hello", [
      { id: "10.0.0.1:80", labels: { app: "hello", version: "v1" } },
      { id: "10.0.0.2:80", labels: { app: "hello", version: "v1" } },
      { id: "10.0.0.3:80", labels: { app: "hello", version: "v2" } },
    ]);
    const metrics = start(subject);
    const report = reporter(metrics);
    for (const ip of ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1"]) {
      report("hello.default", `${ip}:80`, 200);
    }
    const families = await scrape(metrics);
    expect(
      samples(families, "istio_requests_total").map((s) => [s.labels.destination_version, s.value]),
    ).toEqual([
      ["v1", 3],
      ["v2", 1],
    ]);
    expect(samples(families, "remora_upstream_rq_total").map((s) => s.value)).toEqual([2, 1, 1]);
  });

  it("drops endpoints that left discovery from remora_upstream_rq_total, and counts a returning one afresh", async () => {
    const { subject, addCluster } = fakeRuntime();
    const cluster = addCluster("hello", [
      { id: "10.0.0.1:80", labels: {} },
      { id: "10.0.0.2:80", labels: {} },
    ]);
    const metrics = start(subject);
    const report = reporter(metrics);
    report("hello.default", "10.0.0.1:80", 200);
    report("hello.default", "10.0.0.2:80", 200);
    cluster.endpoints.splice(0, 1);
    let families = await scrape(metrics);
    expect(samples(families, "remora_upstream_rq_total").map((s) => s.labels.endpoint)).toEqual([
      "10.0.0.2:80",
    ]);
    // Istio's series describe the service, not the endpoint: they keep counting.
    expect(samples(families, "istio_requests_total").map((s) => s.value)).toEqual([2]);
    cluster.endpoints.push({ id: "10.0.0.1:80", labels: {} });
    report("hello.default", "10.0.0.1:80", 404);
    families = await scrape(metrics);
    expect(
      samples(families, "remora_upstream_rq_total", { endpoint: "10.0.0.1:80" }).map((s) => [
        s.labels.response_code_class,
        s.value,
      ]),
    ).toEqual([["4xx", 1]]);
  });

  it("passes every record down the chain, and counts only HTTP listeners it knows", async () => {
    const { subject, addCluster } = fakeRuntime();
    addCluster("hello", [{ id: "10.0.0.1:80", labels: {} }]);
    const seen: string[] = [];
    const metrics = start(subject, (r) => seen.push(`${r.listener}:${r.status}`));
    reporter(metrics, "out")("hello.default", "10.0.0.1:80", 200);
    reporter(metrics, "db")("hello.default", "10.0.0.1:80", 0);
    reporter(metrics, "nobody")("hello.default", "10.0.0.1:80", 200);
    expect(seen).toEqual(["out:200", "db:0", "nobody:200"]);
    const families = await scrape(metrics);
    expect(samples(families, "istio_requests_total").map((s) => s.value)).toEqual([1]);
    expect(samples(families, "istio_tcp_connections_opened_total")).toEqual([]);
  });
});
