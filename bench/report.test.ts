import type { Result as AutocannonResult } from "autocannon";
import { describe, expect, it } from "vitest";
import {
  type BenchReport,
  fromAutocannon,
  latencyFromSamples,
  markdownReport,
  markdownScenario,
  niceScale,
  type RunSample,
  type ScenarioOutcome,
  spread,
  summarizeScenario,
  svgChart,
  worstOtherLoad,
} from "./report.js";

/** What autocannon 9 hands its callback after a 10 s run at ~30k req/s (trimmed to the used fields). */
function cannedResult(overrides: Partial<AutocannonResult> = {}): AutocannonResult {
  const histogram = {
    average: 30_000,
    mean: 30_000,
    stddev: 500,
    min: 29_000,
    max: 31_000,
    total: 300_000,
    p0_001: 29_000,
    p0_01: 29_000,
    p0_1: 29_000,
    p1: 29_000,
    p2_5: 29_000,
    p10: 29_500,
    p25: 29_800,
    p50: 30_000,
    p75: 30_200,
    p90: 30_500,
    p97_5: 30_900,
    p99: 31_000,
    p99_9: 31_000,
    p99_99: 31_000,
    p99_999: 31_000,
    sent: 300_032,
  };
  return {
    title: undefined,
    url: "http://127.0.0.1:8080/",
    socketPath: undefined,
    requests: histogram,
    latency: {
      ...histogram,
      average: 0.6,
      mean: 0.6,
      min: 0,
      max: 14,
      p50: 0,
      p90: 1,
      p99: 2,
      p99_9: 5,
      total: 300_000,
    },
    throughput: { ...histogram, average: 4_500_000, total: 45_000_000 },
    duration: 10.01,
    errors: 3,
    timeouts: 1,
    start: new Date("2025-01-01T00:00:00Z"),
    finish: new Date("2025-01-01T00:00:10Z"),
    connections: 32,
    pipelining: 1,
    non2xx: 7,
    "1xx": 0,
    "2xx": 299_993,
    "3xx": 0,
    "4xx": 0,
    "5xx": 7,
    mismatches: 0,
    resets: 0,
    statusCodeStats: { "200": { count: 299_993 }, "502": { count: 7 } },
    ...overrides,
  } as AutocannonResult;
}

function sample(requestsPerSec: number, p99: number, extra: Partial<RunSample> = {}): RunSample {
  return {
    requestsPerSec,
    bytesPerSec: requestsPerSec * 150,
    latency: { p50: p99 / 4, p90: p99 / 2, p99, p999: p99 * 2, max: p99 * 3, mean: p99 / 4 },
    latencySource: "exact",
    completed: requestsPerSec * 10,
    non2xx: 0,
    errors: 0,
    totalBytes: requestsPerSec * 1500,
    durationSec: 10,
    cpuMs: null,
    peakRssBytes: null,
    otherLoad: { proxyCore: 0.01, loadCore: 0.02 },
    ...extra,
  };
}

const MiB = 1024 * 1024;

function throughputScenario(): ScenarioOutcome {
  return {
    id: "small-get",
    title: "Small GET",
    focus: "throughput",
    params: { connections: 32 },
    loadGenerator: "wrk 4.1.0 (1 thread)",
    targets: [
      {
        targetId: "direct",
        label: "direct (no proxy)",
        samples: [sample(50_000, 1), sample(48_000, 1.2), sample(52_000, 0.8)],
      },
      {
        targetId: "remora",
        label: "remora",
        samples: [
          sample(24_000, 3, { cpuMs: 9_600, completed: 240_000, peakRssBytes: 60 * MiB }),
          sample(26_000, 3, { cpuMs: 9_750, completed: 260_000, peakRssBytes: 64 * MiB }),
        ],
      },
      {
        targetId: "remora-mtls",
        label: "remora, 2 hops mTLS",
        samples: [],
        skipped: "mTLS not built yet",
      },
      {
        targetId: "haproxy",
        label: "HAProxy",
        samples: [sample(40_000, 2, { cpuMs: 10_000, completed: 400_000, peakRssBytes: 16 * MiB })],
      },
    ],
  };
}

function latencyScenario(): ScenarioOutcome {
  return {
    id: "latency",
    title: "Fixed 1,000 req/s",
    focus: "latency",
    params: { rate: 1000 },
    targets: [
      {
        targetId: "direct",
        label: "direct (no proxy)",
        samples: [sample(1000, 0.3), sample(1000, 0.5), sample(1000, 0.4)],
      },
      {
        targetId: "remora",
        label: "remora",
        samples: [sample(1000, 1.2), sample(1000, 1.0), sample(1000, 1.4)],
      },
      { targetId: "haproxy", label: "HAProxy", samples: [sample(1000, 0.9)] },
    ],
  };
}

function report(scenarios: ScenarioOutcome[]): BenchReport {
  return {
    startedAt: "2025-01-01T12:34:56.000Z",
    finishedAt: "2025-01-01T12:40:00.000Z",
    command: "npm run bench -- --quick",
    machine: {
      cpuModel: "AMD EPYC & friends",
      cores: 2,
      memoryBytes: 8 * 1024 * MiB,
      os: "Linux 6.1",
      node: "20.18.0",
      pinning: "proxy on core 0; backend and load on core 1",
    },
    versions: { haproxy: "2.6.12", nginx: "1.22.1" },
    backend: "nginx 1.22.1",
    scenarios,
    skipped: [{ targetId: "remora-mtls", reason: "mTLS not built yet" }],
  };
}

describe("fromAutocannon", () => {
  it("derives rates from totals and duration, and counts timeouts once", () => {
    const s = fromAutocannon(cannedResult());
    expect(s.requestsPerSec).toBeCloseTo(300_000 / 10.01, 6);
    expect(s.bytesPerSec).toBeCloseTo(45_000_000 / 10.01, 6);
    expect(s.completed).toBe(300_000);
    expect(s.non2xx).toBe(7);
    // autocannon's `errors` already includes its 1 timeout.
    expect(s.errors).toBe(3);
    expect(s.latencySource).toBe("autocannon");
    expect(s.latency).toEqual({ p50: 0, p90: 1, p99: 2, p999: 5, max: 14, mean: 0.6 });
  });

  it("prefers exact latency and counts uploaded body bytes of 2xx responses", () => {
    const exact = { p50: 0.21, p90: 0.3, p99: 0.72, p999: 1.5, max: 9.9, mean: 0.25 };
    const s = fromAutocannon(
      cannedResult({
        "2xx": 10,
        duration: 2,
        throughput: { ...cannedResult().throughput, total: 500 },
      }),
      {
        exactLatency: exact,
        requestBodyBytes: 1024,
      },
    );
    expect(s.latency).toBe(exact);
    expect(s.latencySource).toBe("exact");
    expect(s.totalBytes).toBe(500 + 10 * 1024);
    expect(s.bytesPerSec).toBe((500 + 10 * 1024) / 2);
  });
});

describe("latencyFromSamples", () => {
  it("takes nearest-rank percentiles of a partly filled buffer", () => {
    const buffer = new Float64Array(200);
    for (let i = 0; i < 100; i++) buffer[i] = 100 - i; // 100..1, unsorted
    const l = latencyFromSamples(buffer, 100);
    expect(l).toEqual({ p50: 50, p90: 90, p99: 99, p999: 100, max: 100, mean: 50.5 });
  });

  it("is all zeros without samples", () => {
    expect(latencyFromSamples(new Float64Array(0)).p99).toBe(0);
  });
});

describe("spread", () => {
  it("gives median, min and max for odd and even counts", () => {
    expect(spread([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3 });
    expect(spread([4, 1, 2, 3])).toEqual({ median: 2.5, min: 1, max: 4 });
    expect(spread([])).toBeNull();
  });
});

describe("summarizeScenario", () => {
  it("computes medians and ratios to direct and HAProxy from the same run", () => {
    const rows = summarizeScenario(throughputScenario());
    const remora = rows.find((r) => r.targetId === "remora");
    expect(remora?.rps).toEqual({ median: 25_000, min: 24_000, max: 26_000 });
    expect(remora?.vsDirect).toBeCloseTo(0.5, 9);
    expect(remora?.vsHaproxy).toBeCloseTo(0.625, 9);
    // 9,600 ms / 240k req = 40 ms per 1k; 9,750 / 260k = 37.5; HAProxy 25.
    expect(remora?.cpuMsPer1k?.median).toBeCloseTo(38.75, 9);
    expect(remora?.cpuVsHaproxy).toBeCloseTo(38.75 / 25, 9);
    expect(remora?.peakRssMiB).toEqual({ median: 62, min: 60, max: 64 });
    expect(rows.find((r) => r.targetId === "direct")?.cpuMsPer1k).toBeNull();
    expect(rows.find((r) => r.targetId === "remora-mtls")?.skipped).toBe("mTLS not built yet");
  });

  it("subtracts direct's median p99 to get the latency a proxy adds", () => {
    const rows = summarizeScenario(latencyScenario());
    const remora = rows.find((r) => r.targetId === "remora");
    expect(remora?.addedP99?.median).toBeCloseTo(0.8, 9);
    expect(remora?.addedP99?.min).toBeCloseTo(0.6, 9);
    expect(remora?.addedP99?.max).toBeCloseTo(1.0, 9);
    expect(remora?.addedP99VsHaproxy).toBeCloseTo(0.8 / 0.5, 9);
    expect(rows.find((r) => r.targetId === "direct")?.addedP99).toBeNull();
  });

  it("gives no added-latency ratio when HAProxy is within noise of direct", () => {
    const sc = latencyScenario();
    const quiet: ScenarioOutcome = {
      ...sc,
      targets: sc.targets.map((t) =>
        t.targetId === "haproxy" ? { ...t, samples: [sample(1000, 0.35)] } : t,
      ),
    };
    expect(
      summarizeScenario(quiet).find((r) => r.targetId === "remora")?.addedP99VsHaproxy,
    ).toBeNull();
  });
});

describe("Markdown", () => {
  it("renders one row per target with medians, ranges and ratios", () => {
    const md = markdownScenario(throughputScenario());
    expect(md).toContain("### Small GET");
    expect(md).toContain("connections 32. Load: wrk 4.1.0 (1 thread).");
    expect(markdownScenario(latencyScenario())).not.toContain("Load:");
    expect(md).toContain("| target | runs | req/s | × direct | × HAProxy |");
    expect(md).toContain("| remora | 2 | 25,000 (24,000–26,000) | 0.50× | 0.63× |");
    expect(md).toContain("| remora, 2 hops mTLS | 0 | skipped: mTLS not built yet |");
    // Every row has as many cells as the header.
    const cells = md
      .split("\n")
      .filter((l) => l.startsWith("|"))
      .map((l) => l.split("|").length);
    expect(new Set(cells).size).toBe(1);
  });

  it("names the machine, the skipped targets and the versions", () => {
    const md = markdownReport(report([throughputScenario(), latencyScenario()]));
    expect(md).toContain("AMD EPYC & friends, 2 cores");
    expect(md).toContain("- remora-mtls: mTLS not built yet");
    expect(md).toContain("haproxy 2.6.12");
    expect(md).toContain("| remora | 3 |");
  });
});

describe("failover tables", () => {
  function failoverScenario(faulty: boolean): ScenarioOutcome {
    const bad = (requests: number, checks: number) =>
      faulty ? { faultyBackend: { requests, checks } } : {};
    return {
      id: faulty ? "failover-503" : "failover",
      title: "Failover",
      focus: "failover",
      params: { backends: 3 },
      targets: [
        { targetId: "direct", label: "direct (no proxy)", samples: [], skipped: "no proxy" },
        {
          targetId: "remora",
          label: "remora",
          samples: [
            sample(9_000, 4, { non2xx: 24, ...bad(30, 5) }),
            sample(10_000, 5, { non2xx: 20, ...bad(26, 4) }),
            sample(11_000, 6, { non2xx: 30, errors: 1, ...bad(34, 5) }),
          ],
        },
        {
          targetId: "haproxy",
          label: "HAProxy",
          samples: [sample(12_000, 3, bad(8_644, 5)), sample(12_500, 3, bad(4_000, 5))],
        },
      ],
    };
  }

  it("shows what the backend that turned bad received, health checks apart", () => {
    const md = markdownScenario(failoverScenario(true));
    expect(md).toContain(
      "| target | runs | req/s | errors seen by client | non-2xx | p99 ms | max ms | requests to bad backend | health checks to it | peak RSS MiB |",
    );
    expect(md).toContain(
      "| remora | 3 | 10,000 (9,000–11,000) | 0 (0–1) | 24 (20–30) | 5.00 (4.00–6.00) | 15.0 | 30 (26–34) | 5 (4–5) | — |",
    );
    // A median of two runs may fall between counts.
    expect(md).toContain("| 6,322 (4,000–8,644) | 5 |");
    expect(md).toContain("| direct (no proxy) | 0 | skipped: no proxy |");
    const cells = md
      .split("\n")
      .filter((l) => l.startsWith("|"))
      .map((l) => l.split("|").length);
    expect(new Set(cells).size).toBe(1);
  });

  it("leaves those columns out where nothing was counted (a killed backend)", () => {
    const md = markdownScenario(failoverScenario(false));
    expect(md).toContain(
      "| target | runs | req/s | errors seen by client | non-2xx | p99 ms | max ms | peak RSS MiB |",
    );
    expect(md).not.toContain("bad backend");
  });
});

describe("disturbed runs", () => {
  it("flags targets whose runs shared a pinned core with other processes", () => {
    const sc = throughputScenario();
    const noisy: ScenarioOutcome = {
      ...sc,
      targets: sc.targets.map((t) =>
        t.targetId === "haproxy"
          ? {
              ...t,
              samples: [sample(20_000, 9, { otherLoad: { proxyCore: 0.42, loadCore: 0.05 } })],
            }
          : t,
      ),
    };
    expect(worstOtherLoad(noisy.targets.find((t) => t.targetId === "haproxy")?.samples ?? [])).toBe(
      0.42,
    );
    expect(markdownScenario(noisy)).toContain("worst share of a core: HAProxy 42%");
    expect(markdownScenario(sc)).not.toContain("⚠");
  });
});

describe("svgChart", () => {
  it("draws a bar per target and scenario, and an added-p99 bar per proxy", () => {
    const svg = svgChart(report([throughputScenario(), latencyScenario()]));
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg.trimEnd().endsWith("</svg>")).toBe(true);
    // 3 throughput bars (direct, remora, HAProxy) + 2 added-p99 bars (remora, HAProxy).
    expect(svg.match(/<rect [^>]*><title>/g)).toHaveLength(5);
    expect(svg).toContain("remora: 25,000 req/s");
    expect(svg).toContain("remora: +0.800 ms p99");
    expect(svg).toContain("AMD EPYC &amp; friends");
    expect(svg).toContain("load: wrk 4.1.0 (1 thread)");
    expect(svg).not.toContain("remora, 2 hops mTLS");
  });

  it("says so when a panel has nothing to show", () => {
    const svg = svgChart(report([]));
    expect(svg).toContain("no throughput scenario in this run");
    expect(svg).toContain("no fixed-rate latency scenario in this run");
  });

  it("picks round axis steps that cover the data and zero", () => {
    expect(niceScale(0, 37_412)).toMatchObject({ min: 0, max: 40_000, step: 10_000 });
    expect(niceScale(0, 37_412).ticks).toEqual([0, 10_000, 20_000, 30_000, 40_000]);
    const withNegative = niceScale(-0.37, 55.2);
    expect(withNegative).toMatchObject({ max: 60, step: 20, ticks: [0, 20, 40, 60] });
    expect(withNegative.min).toBeCloseTo(-0.3885, 9);
    expect(niceScale(0, 0.83).ticks.at(-1)).toBeCloseTo(1, 9);
  });
});

describe("TLS rows", () => {
  const autocannon = "autocannon 9.0.0";

  /** small-get under wrk, with the mTLS targets under autocannon, as run.ts records it. */
  function tlsThroughput(): ScenarioOutcome {
    const base = throughputScenario();
    return {
      ...base,
      targets: [
        ...base.targets,
        {
          targetId: "remora-tls",
          label: "remora, mTLS termination",
          compare: { haproxy: "haproxy-tls", plaintext: "remora" },
          loadGenerator: autocannon,
          samples: [sample(18_000, 4, { cpuMs: 9_000, completed: 180_000 })],
        },
        {
          targetId: "haproxy-tls",
          label: "HAProxy, mTLS termination",
          compare: { haproxy: "haproxy-tls", plaintext: "haproxy" },
          loadGenerator: autocannon,
          samples: [sample(24_000, 3, { cpuMs: 6_000, completed: 240_000 })],
        },
      ],
    };
  }

  it("compare with HAProxy terminating TLS, under the same load generator only", () => {
    const rows = summarizeScenario(tlsThroughput());
    const tls = rows.find((r) => r.targetId === "remora-tls")!;
    expect(tls.vsHaproxy).toBeCloseTo(18_000 / 24_000, 9);
    // 50 ms per 1k requests against HAProxy's 25.
    expect(tls.cpuVsHaproxy).toBeCloseTo(2, 9);
    // direct and plain remora ran under wrk: no throughput ratio across load generators.
    expect(tls.vsDirect).toBeNull();
    expect(tls.vsPlaintext).toBeNull();
    expect(rows.find((r) => r.targetId === "haproxy-tls")?.vsHaproxy).toBe(1);
    // Plaintext rows keep theirs.
    expect(rows.find((r) => r.targetId === "remora")?.vsHaproxy).toBeCloseTo(0.625, 9);
    expect(rows.find((r) => r.targetId === "remora")?.vsPlaintext).toBeNull();
  });

  it("show the cost of TLS (× plaintext) when one load generator drove every row", () => {
    const sc = tlsThroughput();
    const same: ScenarioOutcome = {
      ...sc,
      loadGenerator: autocannon,
      targets: sc.targets.map(({ loadGenerator: _, ...t }) => t),
    };
    const rows = summarizeScenario(same);
    expect(rows.find((r) => r.targetId === "remora-tls")?.vsPlaintext).toBeCloseTo(0.72, 9);
    expect(rows.find((r) => r.targetId === "haproxy-tls")?.vsPlaintext).toBeCloseTo(0.6, 9);
    const md = markdownScenario(same);
    expect(md).toContain("| × HAProxy | × plaintext |");
    expect(md).toContain("| remora, mTLS termination | 1 | 18,000 | 0.36× | 0.75× | 0.72× |");
    // Rows without a plaintext counterpart leave the cell empty.
    expect(md).toContain("| remora | 2 | 25,000 (24,000–26,000) | 0.50× | 0.63× | — |");
  });

  it("name their own load generator in the table's heading", () => {
    const md = markdownScenario(tlsThroughput());
    expect(md).toContain(
      "Load: wrk 4.1.0 (1 thread); autocannon 9.0.0 for remora, mTLS termination, HAProxy, mTLS termination (wrk cannot present a client certificate;",
    );
    expect(md).not.toContain("× plaintext");
    expect(md).toContain("| remora, mTLS termination | 1 | 18,000 | — | 0.75× |");
    // 9 s of CPU in a 10 s run: how busy the proxy's core was, to tell who limited req/s.
    expect(md).toContain(" | 50.0 | 90% | 2.00× | ");
  });

  it("render the handshake scenario: handshakes/s, CPU per handshake, what was negotiated", () => {
    const negotiated = "TLSv1.3 TLS_AES_256_GCM_SHA384, X25519, ALPN http/1.1, server key rsa 2048";
    const handshakes = (n: number, cpuMs: number): RunSample =>
      sample(n, 20, { handshakes: n * 10, completed: n * 10, cpuMs, negotiated });
    const sc: ScenarioOutcome = {
      id: "tls-handshake",
      title: "New mTLS connection per request: TLS handshakes",
      focus: "handshake",
      params: { connections: 16 },
      loadGenerator: "bench/handshake-client.ts",
      targets: [
        {
          targetId: "remora",
          label: "remora",
          samples: [],
          skipped: "plaintext to the client: no TLS handshake to measure",
        },
        {
          targetId: "remora-tls",
          label: "remora, mTLS termination",
          compare: { haproxy: "haproxy-tls", plaintext: "remora" },
          // 600 and 700 handshakes/s; 1.5 ms of CPU per handshake.
          samples: [handshakes(600, 9_000), handshakes(700, 10_500)],
        },
        {
          targetId: "haproxy-tls",
          label: "HAProxy, mTLS termination",
          compare: { haproxy: "haproxy-tls", plaintext: "haproxy" },
          samples: [handshakes(1_000, 10_000)],
        },
      ],
    };
    const rows = summarizeScenario(sc);
    const tls = rows.find((r) => r.targetId === "remora-tls")!;
    expect(tls.handshakesPerSec).toEqual({ median: 650, min: 600, max: 700 });
    expect(tls.vsHaproxy).toBeCloseTo(0.65, 9);
    expect(tls.cpuMsPer1kHandshakes?.median).toBeCloseTo(1_500, 9);
    expect(tls.cpuVsHaproxy).toBeCloseTo(1.5, 9);
    expect(tls.coreBusy?.median).toBeCloseTo(0.975, 9);
    const md = markdownScenario(sc);
    expect(md).toContain(
      "| target | runs | handshakes/s | × HAProxy | req/s | connection p50 ms | connection p99 ms | CPU ms / 1k handshakes | proxy core busy | CPU × HAProxy |",
    );
    expect(md).toContain(
      "| remora, mTLS termination | 2 | 650 (600–700) | 0.65× | 650 | 5.00 | 20.0 | 1,500 | 98% | 1.50× |",
    );
    expect(md).toContain("| HAProxy, mTLS termination | 1 | 1,000 | 1.00× |");
    expect(md).toContain(
      `Negotiated: remora, mTLS termination: ${negotiated}; HAProxy, mTLS termination: ${negotiated}.`,
    );
    const cells = md
      .split("\n")
      .filter((l) => l.startsWith("|"))
      .map((l) => l.split("|").length);
    expect(new Set(cells).size).toBe(1);
  });
});

describe("the churn table", () => {
  const phase = (rps: number, loop: number, bound: number) => ({
    requestsPerSec: rps,
    p99Ms: 2,
    failed: 0,
    loopP99Ms: loop,
    loopP99BoundMs: bound,
    eventsAppliedPerSec: 500,
  });
  const churnRun = (quiet: number, churned: number, loop: number, bound: number): RunSample =>
    sample(churned, 3, {
      peakRssBytes: 150 * MiB,
      churn: {
        quiet: phase(quiet, 3, 5),
        churn: phase(churned, loop, bound),
        updatesPerSec: 499.8,
        services: 1000,
        endpoints: 10_000,
        rssAfterSyncBytes: 120 * MiB,
      },
    });
  const scenario = (runs: RunSample[]): ScenarioOutcome => ({
    id: "churn",
    title: "Churn",
    focus: "churn",
    params: { services: 1000 },
    targets: [
      { targetId: "direct", label: "direct (no proxy)", samples: [], skipped: "no proxy" },
      { targetId: "remora", label: "remora", samples: runs },
    ],
  });

  it("reads results from before the windows (one phase of each kind): the ratio of the phases", () => {
    const md = markdownScenario(
      scenario([churnRun(20_000, 19_000, 8, 10), churnRun(30_000, 29_700, 9, 10)]),
    );
    const head = md.split("\n").find((l) => l.startsWith("| target"))!;
    expect(head).toContain("| quiet req/s | churn req/s | churn ÷ quiet | loop p99 ms, quiet |");
    const row = md.split("\n").find((l) => l.startsWith("| remora"))!;
    // Ratios per run (0.95 and 0.99), not of the medians.
    expect(row).toContain("0.97× (0.95×–0.99×)");
    expect(row).toContain("| 120 |");
    expect(md).toContain(
      "- remora: event-loop delay p99 under churn 8.50 ms (bucket ≤ 10.0 ms), goal < 20 ms ✓; throughput under churn 0.97× the quiet windows' beside it, goal ≥ 0.90× ✓; RSS with 10,000 endpoints synced 120 MiB (peak under load 150 MiB).",
    );
  });

  it("marks a missed goal", () => {
    const md = markdownScenario(scenario([churnRun(20_000, 16_000, 21, 25)]));
    expect(md).toContain("goal < 20 ms ✗");
    expect(md).toContain("0.80× the quiet windows' beside it, goal ≥ 0.90× ✗");
  });

  it("takes each run's own ratio (its churn windows' median) over the ratio of its phase means", () => {
    // Phase means 20,000 and 19,000 (0.95×), but the runs' windows gave 0.91× and 0.85×.
    const windowed = (runRatio: number | null): RunSample => {
      const s = churnRun(20_000, 19_000, 8, 10);
      return { ...s, churn: { ...s.churn!, ratio: runRatio, windows: [] } };
    };
    const summary = summarizeScenario(scenario([windowed(0.91), windowed(0.85), windowed(null)]));
    const ratio = summary.find((t) => t.targetId === "remora")?.churn?.ratio;
    expect(ratio?.median).toBeCloseTo(0.88, 12);
    expect([ratio?.min, ratio?.max]).toEqual([0.85, 0.91]);
    expect(markdownScenario(scenario([windowed(0.85)]))).toContain(
      "throughput under churn 0.85× the quiet windows' beside it, goal ≥ 0.90× ✗",
    );
  });
});
