import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
// The built modules, as `npm run bench` runs them (targets.js finds dist/proxy/cli.js from there).
import {
  ChurnCluster,
  type ChurnShape,
  churnHosts,
  churnRunSample,
  churnSchedule,
  churnServiceName,
  churnSlice,
  churnUpdate,
  churnWindowRatios,
  histogramDelta,
  histogramQuantile,
  type MeasuredWindow,
  parseRemoraScrape,
  remoraKubernetesConfig,
  sumHistograms,
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

  it("restarts the writer where it stopped, at its rate from the restart, not catching up the pause", async () => {
    let nowMs = 500;
    const cluster = await ChurnCluster.start(SHAPE, "bench", 8080, () => nowMs);
    try {
      const put = vi.spyOn(cluster.api, "put");
      cluster.startChurn();
      nowMs = 510;
      // 500/s for 10 ms; stopping writes what is due, so no timer need fire.
      expect(cluster.stopChurn()).toEqual({ updates: 5, seconds: 0.01 });
      nowMs = 1500;
      cluster.startChurn();
      nowMs = 1506;
      expect(cluster.stopChurn()).toEqual({ updates: 3, seconds: 0.006 });
      expect(cluster.stopChurn()).toEqual({ updates: 0, seconds: 0 });
      const written = put.mock.calls.map(([resource, slice]) => {
        expect(resource).toBe("endpointslices");
        const s = slice as {
          metadata: { labels: Record<string, string> };
          endpoints: { conditions: { ready?: boolean } }[];
        };
        return [
          s.metadata.labels["kubernetes.io/service-name"],
          s.endpoints.findIndex((e) => e.conditions.ready === false),
        ];
      });
      // Updates 0-4, then 5-7: the sequence goes on, so each Service's rewrite moves its
      // not-ready endpoint (a real change), the loaded Service's second one included.
      expect(written).toEqual([
        ["bench", 0],
        ["svc-0001", 0],
        ["svc-0002", 0],
        ["svc-0003", 0],
        ["bench", 1],
        ["svc-0001", 1],
        ["svc-0002", 1],
        ["svc-0003", 1],
      ]);
    } finally {
      await cluster.stop();
    }
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

/** remora's /stats/prometheus text with these loop-delay bucket counts and events applied. */
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

describe("remora's figures per window", () => {
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

  it("adds histograms of the same buckets, and refuses different ones", () => {
    const h = (counts: number[]) => ({ bounds: [0.005, 0.01, Number.POSITIVE_INFINITY], counts });
    expect(sumHistograms([h([1, 2, 3]), h([10, 20, 30]), h([0, 0, 5])])?.counts).toEqual([
      11, 22, 38,
    ]);
    expect(sumHistograms([])).toBeNull();
    expect(() => sumHistograms([h([1, 2, 3]), { bounds: [1, 2, 3], counts: [1, 2, 3] }])).toThrow(
      /buckets changed/,
    );
  });
});

describe("a run's windows", () => {
  it("alternates quiet and churn windows, quiet first and last", () => {
    expect(churnSchedule(2)).toEqual(["quiet", "churn", "quiet", "churn", "quiet"]);
    expect(churnSchedule(1)).toEqual(["quiet", "churn", "quiet"]);
    expect(churnSchedule(10)).toHaveLength(21);
    for (const bad of [0, 11, 1.5]) expect(() => churnSchedule(bad)).toThrow(/1\.\.10/);
  });

  it("compares each churn window with the mean of the quiet windows directly beside it", () => {
    const w = (kind: "quiet" | "churn", requestsPerSec: number) => ({ kind, requestsPerSec });
    // 9 / mean(10, 8) = 1; 8 / mean(8, 12) = 0.8; 6 / mean(12, 10) = 6/11.
    const ratios = churnWindowRatios([
      w("quiet", 10),
      w("churn", 9),
      w("quiet", 8),
      w("churn", 8),
      w("quiet", 12),
      w("churn", 6),
      w("quiet", 10),
    ]);
    expect(ratios[0]).toBeNull();
    expect(ratios[1]).toBeCloseTo(1, 12);
    expect(ratios[3]).toBeCloseTo(0.8, 12);
    expect(ratios[5]).toBeCloseTo(6 / 11, 12);
    expect(ratios[6]).toBeNull();
    // At an edge, the one neighbour there is; with none, or a quiet rate of 0, no ratio.
    expect(churnWindowRatios([w("churn", 9), w("quiet", 10)])[0]).toBeCloseTo(0.9, 12);
    expect(churnWindowRatios([w("churn", 9), w("churn", 9)])).toEqual([null, null]);
    expect(churnWindowRatios([w("quiet", 0), w("churn", 9), w("quiet", 0)])[1]).toBeNull();
  });

  /*
   * Hand-checked: three churn windows, Q C Q C Q C Q, req/s
   *   20,000  19,000  18,000  12,000  22,000  16,500  13,000
   * ratios: 19,000 / 19,000 = 1; 12,000 / 20,000 = 0.6; 16,500 / 17,500 = 0.942857...; the
   * run's ratio is their median, 0.942857 (their mean would be 0.848, and the means of the
   * kinds 15,833.3 / 18,250 = 0.868). Loop-delay deltas: each quiet window 100 samples within
   * 5 ms; the churn windows [90, 99, 100, 100, 100], [80, 90, 96, 100, 100] and all within 5 ms.
   * Summed, the churn windows are [270, 289, 296, 300, 300]: the p99 (rank 297) is in (20, 25]
   * ms, a quarter into it: 21.25 ms (the second window alone would give 23.75). The quiet ones
   * summed: 400 within 5 ms, p99 rank 396 of 400: 4.95 ms.
   */
  const base = {
    bytesPerSec: 1000,
    latencySource: "wrk",
    totalBytes: 5000,
    durationSec: 5,
    completed: 100_000,
    non2xx: 0,
    errors: 0,
    cpuMs: 4000,
    peakRssBytes: 100,
    otherLoad: null,
  } as const;
  const latency = (p99: number) => ({ p50: 1, p90: 2, p99, p999: p99 + 1, max: p99 * 2, mean: 1 });
  const quiet = (rps: number, p99: number, more: Partial<RunSample> = {}): MeasuredWindow => ({
    kind: "quiet",
    sample: { ...base, requestsPerSec: rps, latency: latency(p99), ...more },
    tally: null,
  });
  const churned = (
    rps: number,
    p99: number,
    tally: { updates: number; seconds: number },
    more: Partial<RunSample> = {},
  ): MeasuredWindow => ({
    kind: "churn",
    sample: { ...base, requestsPerSec: rps, latency: latency(p99), ...more },
    tally,
  });
  const windows: MeasuredWindow[] = [
    quiet(20_000, 2, { non2xx: 1 }),
    churned(19_000, 10, { updates: 2550, seconds: 5.1 }, { cpuMs: 4500 }),
    quiet(18_000, 3, { peakRssBytes: 300, otherLoad: { proxyCore: 0.3, loadCore: null } }),
    churned(12_000, 30, { updates: 1800, seconds: 4 }, { errors: 2, cpuMs: 5000 }),
    quiet(22_000, 4),
    churned(
      16_500,
      20,
      { updates: 2600, seconds: 5.2 },
      { otherLoad: { proxyCore: 0.1, loadCore: 0.2 } },
    ),
    quiet(13_000, 5),
  ];
  const scrapeAt = (counts: number[], applied: number) =>
    parseRemoraScrape(scrape(counts, [0, applied]));
  const scrapes = [
    scrapeAt([0, 0, 0, 0, 0], 0),
    scrapeAt([100, 100, 100, 100, 100], 0),
    scrapeAt([190, 199, 200, 200, 200], 2500),
    scrapeAt([290, 299, 300, 300, 300], 2510),
    scrapeAt([370, 389, 396, 400, 400], 4910),
    scrapeAt([470, 489, 496, 500, 500], 4910),
    scrapeAt([570, 589, 596, 600, 600], 7510),
    scrapeAt([670, 689, 696, 700, 700], 7510),
  ];
  const shape: ChurnShape = { services: 1000, endpointsPerService: 10, updatesPerSec: 500 };

  it("takes the run's ratio as the median of its churn windows' ratios", () => {
    const c = churnRunSample(windows, scrapes, shape, 42).churn!;
    expect(c.ratio).toBeCloseTo(16_500 / 17_500, 12);
    expect(c.windows?.map((w) => w.kind)).toEqual(churnSchedule(3));
    expect(c.windows?.map((w) => w.ratio)).toEqual([
      null,
      1,
      null,
      0.6,
      null,
      16_500 / 17_500,
      null,
    ]);
    expect(c.quiet.requestsPerSec).toBe(18_250);
    expect(c.churn.requestsPerSec).toBeCloseTo(47_500 / 3, 9);
    // Latency p99 of a kind: the median of its windows' (2, 3, 4, 5; 10, 30, 20).
    expect(c.quiet.p99Ms).toBe(3.5);
    expect(c.churn.p99Ms).toBe(20);
    expect([c.quiet.failed, c.churn.failed]).toEqual([1, 2]);
  });

  it("takes each kind's loop p99 from its windows' histogram deltas summed, and events over their time", () => {
    const c = churnRunSample(windows, scrapes, shape, 42).churn!;
    expect(c.churn.loopP99BoundMs).toBe(25);
    expect(c.churn.loopP99Ms).toBeCloseTo(21.25, 9);
    expect(c.quiet.loopP99BoundMs).toBe(5);
    expect(c.quiet.loopP99Ms).toBeCloseTo(4.95, 9);
    // Per window too: the second churn window alone.
    expect(c.windows?.[3]?.loopP99Ms).toBeCloseTo(23.75, 9);
    expect(c.windows?.[1]?.loopP99BoundMs).toBe(10);
    // Events over the writer's time in churn windows (5.1 + 4 + 5.2 s, not the load's 15 s):
    // 7,500 / 14.3; quiet ones over the load's, 10 (a tail after the first churn) over 20 s.
    expect(c.churn.eventsAppliedPerSec).toBeCloseTo(7500 / 14.3, 9);
    expect(c.quiet.eventsAppliedPerSec).toBe(0.5);
    expect(c.windows?.[3]?.eventsAppliedPerSec).toBe(600);
    // Written: 6,950 updates over 14.3 s (not the mean of the windows' rates, 483.3).
    expect(c.updatesPerSec).toBeCloseTo(6950 / 14.3, 9);
    expect(c.windows?.map((w) => Math.round(w.updatesPerSec))).toEqual([0, 500, 0, 450, 0, 500, 0]);
    expect([c.endpoints, c.rssAfterSyncBytes]).toEqual([10_000, 42]);
  });

  it("leaves out the windows a missing scrape does not bound", () => {
    const c = churnRunSample(windows, [...scrapes.slice(0, 6), null, scrapes[7]!], shape, null)
      .churn!;
    // Churn: the first two windows, [170, 189, 196, 200, 200]: rank 198, half into (20, 25].
    expect(c.churn.loopP99Ms).toBeCloseTo(22.5, 9);
    // 4,900 events over 9.1 s of writing.
    expect(c.churn.eventsAppliedPerSec).toBeCloseTo(4900 / 9.1, 9);
    expect(c.windows?.[5]?.loopP99Ms).toBeNull();
    expect(c.windows?.[6]?.eventsAppliedPerSec).toBeNull();
    expect(() => churnRunSample(windows, scrapes.slice(1), shape, null)).toThrow(/8 scrapes/);
  });

  it("gives the sample the churn windows' load figures, and failures, memory and other load over all", () => {
    const sample = churnRunSample(windows, scrapes, shape, 42);
    expect(sample.requestsPerSec).toBeCloseTo(47_500 / 3, 9);
    expect(sample.latency.p99).toBe(20);
    expect(sample.latency.max).toBe(60);
    expect(sample.durationSec).toBe(15);
    expect(sample.completed).toBe(300_000);
    // CPU of the churn windows only: 4,500 + 5,000 + 4,000.
    expect(sample.cpuMs).toBe(13_500);
    expect([sample.errors, sample.non2xx, sample.peakRssBytes]).toEqual([2, 1, 300]);
    expect(sample.otherLoad).toEqual({ proxyCore: 0.3, loadCore: 0.2 });
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
