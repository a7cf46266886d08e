import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
// The built modules, as `npm run bench` runs them (targets.js finds dist/proxy/cli.js from there).
import {
  ChurnCluster,
  type ChurnShape,
  churnHosts,
  churnRunSample,
  churnServiceName,
  churnSlice,
  churnUpdate,
  histogramDelta,
  histogramQuantile,
  parseRemoraScrape,
  remoraKubernetesConfig,
} from "../dist/bench/churn.js";
import { SCENARIOS, scenarioSkipReason } from "../dist/bench/scenarios.js";
import { SERVICE_NAME, TARGETS } from "../dist/bench/targets.js";
import { parseConfig } from "../proxy/config/load.js";
import { namedBackend, RawClient } from "../test/harness.js";
import type { RunSample } from "./report.js";

const SHAPE: ChurnShape = { services: 4, endpointsPerService: 3, updatesPerSec: 500 };

describe("the churn cluster's objects", () => {
  it("takes the Services in turn and moves the one not-ready endpoint on each round", () => {
    const updates = Array.from({ length: 9 }, (_, k) => churnUpdate(k, SHAPE));
    expect(updates.map((u) => u.service)).toEqual([0, 1, 2, 3, 0, 1, 2, 3, 0]);
    expect(updates.map((u) => u.notReady)).toEqual([0, 0, 0, 0, 1, 1, 1, 1, 2]);
    // Round 3 of 3 endpoints wraps to the first again.
    expect(churnUpdate(12, SHAPE).notReady).toBe(0);
  });

  it("puts one Service's endpoints on distinct loopback addresses in one slice, one of them not ready", () => {
    expect(churnHosts(3)).toEqual(["127.0.0.1", "127.0.0.2", "127.0.0.3"]);
    expect(() => churnHosts(255)).toThrow(/1\.\.254/);
    expect(churnServiceName(0, "bench")).toBe("bench");
    expect(churnServiceName(7, "bench")).toBe("svc-0007");
    const slice = churnSlice(7, "bench", churnHosts(3), 8080, 1);
    expect(slice.metadata.labels["kubernetes.io/service-name"]).toBe("svc-0007");
    expect(slice.ports).toEqual([{ protocol: "TCP", name: "http", port: 8080 }]);
    expect(slice.endpoints.map((e: { addresses: string[] }) => e.addresses[0])).toEqual(
      churnHosts(3),
    );
    expect(slice.endpoints.map((e: { conditions: object }) => e.conditions)).toEqual([
      {},
      { ready: false, serving: false },
      {},
    ]);
  });

  it("generates a remora config that validates: the outbound listener and Kubernetes discovery only", () => {
    const text = remoraKubernetesConfig(15001, 15000, "/tmp/kubeconfig.json", "/dev/null");
    const config = parseConfig(text, "churn.yaml");
    expect(config.discovery?.kubernetes?.kubeconfig).toBe("/tmp/kubeconfig.json");
    expect(config.listeners.map((l) => [l.kind, l.port])).toEqual([["outbound", 15001]]);
    expect(config.services).toEqual([]);
    expect(config.accessLog.path).toBe("/dev/null");
  });
});

describe("remora's figures per phase", () => {
  const scrape = (counts: number[], applied: number[]) =>
    [
      "# HELP remora_event_loop_delay_seconds How late...",
      "# TYPE remora_event_loop_delay_seconds histogram",
      ...["0.005", "0.01", "0.02", "0.025", "+Inf"].map(
        (le, i) => `remora_event_loop_delay_seconds_bucket{le="${le}"} ${counts[i]}`,
      ),
      `remora_event_loop_delay_seconds_sum 1.5`,
      `remora_event_loop_delay_seconds_count ${counts.at(-1)}`,
      ...applied.map(
        (n, i) =>
          `remora_kubernetes_events_applied_total{resource="${i === 0 ? "services" : "endpointslices.discovery.k8s.io"}"} ${n}`,
      ),
      "",
    ].join("\n");

  it("reads the loop-delay histogram and the events applied, summed over resources", () => {
    const parsed = parseRemoraScrape(scrape([10, 20, 30, 40, 50], [3, 1000]));
    expect(parsed.loopDelay?.bounds).toEqual([0.005, 0.01, 0.02, 0.025, Number.POSITIVE_INFINITY]);
    expect(parsed.loopDelay?.counts).toEqual([10, 20, 30, 40, 50]);
    expect(parsed.eventsApplied).toBe(1003);
    expect(parseRemoraScrape("# nothing\n").loopDelay).toBeNull();
  });

  it("takes the p99 of what happened between two scrapes, its bucket bound and an interpolation", () => {
    const before = parseRemoraScrape(scrape([900, 1000, 1000, 1000, 1000], [0, 0])).loopDelay!;
    // 1,000 more samples: 980 within 5 ms, 10 in (10, 20] ms, 10 in (20, 25] ms.
    const after = parseRemoraScrape(scrape([1880, 1980, 1990, 2000, 2000], [0, 0])).loopDelay!;
    const delta = histogramDelta(before, after);
    expect(delta.counts).toEqual([980, 980, 990, 1000, 1000]);
    const p99 = histogramQuantile(delta, 0.99)!;
    expect(p99.boundMs).toBe(20);
    expect(p99.estimateMs).toBeCloseTo(20, 6);
    const p995 = histogramQuantile(delta, 0.995)!;
    expect(p995.boundMs).toBe(25);
    expect(p995.estimateMs).toBeCloseTo(22.5, 6);
    expect(histogramQuantile(histogramDelta(before, before), 0.99)).toBeNull();
  });

  it("keeps both phases of a run side by side, failures and peak memory over both", () => {
    const base = {
      bytesPerSec: 0,
      latency: { p50: 1, p90: 2, p99: 3, p999: 4, max: 5, mean: 1 },
      latencySource: "wrk",
      completed: 1000,
      totalBytes: 0,
      durationSec: 10,
      cpuMs: 9000,
      otherLoad: null,
    } as const;
    const quiet: RunSample = {
      ...base,
      requestsPerSec: 20_000,
      non2xx: 1,
      errors: 0,
      peakRssBytes: 100,
    };
    const churned: RunSample = {
      ...base,
      requestsPerSec: 19_000,
      non2xx: 0,
      errors: 2,
      peakRssBytes: 150,
    };
    const loop = (counts: number[], applied: number) =>
      parseRemoraScrape(scrape(counts, [0, applied]));
    const sample = churnRunSample(
      quiet,
      churned,
      {
        start: loop([0, 0, 0, 0, 0], 0),
        between: loop([100, 100, 100, 100, 100], 0),
        end: loop([150, 190, 200, 200, 200], 5000),
      },
      { updates: 5000, seconds: 10 },
      { services: 1000, endpointsPerService: 10, updatesPerSec: 500 },
      42,
    );
    expect(sample.requestsPerSec).toBe(19_000);
    expect([sample.errors, sample.non2xx, sample.peakRssBytes]).toEqual([2, 1, 150]);
    expect(sample.churn?.quiet.requestsPerSec).toBe(20_000);
    expect(sample.churn?.quiet.loopP99BoundMs).toBe(5);
    expect(sample.churn?.churn.loopP99BoundMs).toBe(20);
    expect(sample.churn?.churn.eventsAppliedPerSec).toBe(500);
    expect(sample.churn?.quiet.eventsAppliedPerSec).toBe(0);
    expect(sample.churn?.updatesPerSec).toBe(500);
    expect(sample.churn?.endpoints).toBe(10_000);
    expect(sample.churn?.rssAfterSyncBytes).toBe(42);
  });
});

describe("the churn scenario", () => {
  const churn = SCENARIOS.find((s) => s.id === "churn")!;

  it("is issue 12's shape, and measures only targets with Kubernetes discovery", () => {
    expect(churn.churn).toEqual({ services: 1000, endpointsPerService: 10, updatesPerSec: 500 });
    const skips = Object.fromEntries(TARGETS.map((t) => [t.id, scenarioSkipReason(churn, t)]));
    expect(skips.remora).toBeNull();
    expect(skips.direct).toBe("no proxy to discover endpoints");
    expect(skips.haproxy).toBe("no Kubernetes discovery to churn");
  });

  it("runs for real: remora syncs every Service from the fake API, routes the loaded one, and applies the churn", async () => {
    const backend = await namedBackend("churned");
    const shape: ChurnShape = { services: 50, endpointsPerService: 1, updatesPerSec: 200 };
    const cluster = await ChurnCluster.start(shape, SERVICE_NAME, backend.port);
    const dir = await mkdtemp(join(tmpdir(), "remora-bench-churn-"));
    const kubeconfig = join(dir, "kubeconfig.json");
    cluster.writeKubeconfig(kubeconfig);
    const remora = TARGETS.find((t) => t.id === "remora")!;
    const running = await remora.start({ backends: [], core: null, dir, kubeconfig });
    try {
      const port = Number(new URL(running.url).port);
      const get = async () =>
        (await RawClient.exchange(port, `GET / HTTP/1.1\r\nHost: ${SERVICE_NAME}\r\n\r\n`)).body;
      expect((await get()).toString()).toBe("churned");
      const scrape = async () =>
        parseRemoraScrape(await (await fetch(`${running.admin}/stats/prometheus`)).text());
      const before = await scrape();
      expect(before.loopDelay?.bounds).toContain(0.02);
      cluster.startChurn();
      // 1 endpoint per Service: every other update of `bench` leaves it none ready, then one.
      for (let i = 0; i < 40 && (await scrape()).eventsApplied - before.eventsApplied < 100; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      const tally = cluster.stopChurn();
      expect(tally.updates).toBeGreaterThanOrEqual(100);
      const after = await scrape();
      expect(after.eventsApplied - before.eventsApplied).toBeGreaterThanOrEqual(100);
      // The history stays within its cap however long the churn.
      expect(cluster.api.historyLength).toBeLessThanOrEqual(cluster.api.maxHistory);
    } finally {
      await running.stop();
      await cluster.stop();
      await backend.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
