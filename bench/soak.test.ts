import { once } from "node:events";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
// The built modules, as `npm run bench` runs them (targets.js finds dist/proxy/cli.js from there).
import { markdownScenario, svgChart } from "../dist/bench/report.js";
import { SCENARIO_ALIASES, SCENARIOS, scenarioSkipReason } from "../dist/bench/scenarios.js";
import {
  parseSoakScrape,
  remoraSoakConfig,
  SoakEndpoints,
  type SoakPoint,
  SoakSampler,
  type SoakShape,
  soakEndpoints,
  soakReferenceSec,
  soakSample,
  soakSampleEverySec,
  soakServicesFile,
} from "../dist/bench/soak.js";
import { SERVICE_NAME, TARGETS } from "../dist/bench/targets.js";
import { parseConfig, parseServicesFile } from "../proxy/config/load.js";
import { RawClient } from "../test/harness.js";
import type { BenchReport, RunSample, ScenarioOutcome } from "./report.js";

const SHAPE: SoakShape = { hosts: 5, live: 3, rotateEverySec: 5 };
const MiB = 2 ** 20;

describe("the soak's endpoints", () => {
  it("slide by one per rewrite: one removed, one never listed before, wrapping at the last host", () => {
    expect(soakEndpoints(0, SHAPE, 80)).toEqual(["127.0.0.1:80", "127.0.0.2:80", "127.0.0.3:80"]);
    expect(soakEndpoints(1, SHAPE, 80)).toEqual(["127.0.0.2:80", "127.0.0.3:80", "127.0.0.4:80"]);
    expect(soakEndpoints(3, SHAPE, 80)).toEqual(["127.0.0.4:80", "127.0.0.5:80", "127.0.0.1:80"]);
  });

  it("writes a services file and a remora config that validate", () => {
    const services = parseServicesFile(
      soakServicesFile(SERVICE_NAME, soakEndpoints(2, SHAPE, 8080)),
      "s.yaml",
    );
    expect(services.map((s) => s.name)).toEqual([SERVICE_NAME]);
    expect(services[0]!.endpoints.map((e) => e.address)).toEqual([
      "127.0.0.3:8080",
      "127.0.0.4:8080",
      "127.0.0.5:8080",
    ]);
    const config = parseConfig(remoraSoakConfig(15001, 15000, "/tmp/s.yaml"), "r.yaml");
    expect(config.discovery?.file).toBe("/tmp/s.yaml");
    expect(config.listeners.map((l) => l.port)).toEqual([15001]);
  });

  it("samples every 10 s, more often in a short run; the drift is read from minute 1, or a quarter of a short run", () => {
    expect(soakSampleEverySec(600)).toBe(10);
    expect(soakSampleEverySec(40)).toBe(5);
    expect(soakSampleEverySec(4)).toBe(1);
    expect(soakReferenceSec(600)).toBe(60);
    expect(soakReferenceSec(40)).toBe(10);
  });
});

describe("the soak's samples", () => {
  const point = (
    atSec: number,
    phase: SoakPoint["phase"],
    rssMiB: number,
    fds: number,
    loop: number | null = 1,
  ): SoakPoint => ({
    atSec,
    phase,
    rssBytes: rssMiB * MiB,
    heapUsedBytes: (rssMiB / 4) * MiB,
    openFds: fds,
    series: 500 + Math.round(atSec / 100),
    loopP99Ms: loop,
  });
  const points = [
    point(0, "before", 50, 30, null),
    point(30, "load", 90, 90),
    // The window from minute 1 (60 s wide): median 100 MiB, though its first sample says 96.
    point(60, "load", 96, 95, 4),
    point(70, "load", 130, 95),
    point(80, "load", 100, 95),
    point(300, "load", 104, 99),
    // The last window: median 108 MiB, though the last sample says 90.
    point(580, "load", 108, 92),
    point(590, "load", 120, 92),
    point(600, "load", 90, 92),
    point(620, "after", 101, 30),
  ];

  it("drift between the medians of the minute from minute 1 and of the last minute; descriptors before, at most and after", () => {
    const s = soakSample(points, 600, 10, 120);
    expect(s.referenceSec).toBe(60);
    expect(s.endSec).toBe(600);
    expect(s.rss).toEqual({ reference: 100 * MiB, end: 108 * MiB });
    expect(s.rssDrift).toBeCloseTo(0.08);
    expect(s.series).toEqual({ reference: 501, end: 506 });
    expect(s.heapDrift).toBeCloseTo(0.08);
    expect(s).toMatchObject({ fdsBefore: 30, fdsPeak: 99, fdsAfter: 30, loopP99MaxMs: 4 });
    expect(s.rewrites).toBe(120);
  });

  it("reads the heap in use and the loop-delay histogram from a scrape", () => {
    const scrape = parseSoakScrape(
      [
        "# TYPE nodejs_heap_size_used_bytes gauge",
        "nodejs_heap_size_used_bytes 12345678",
        'remora_event_loop_delay_seconds_bucket{le="0.01"} 5',
        'remora_event_loop_delay_seconds_bucket{le="+Inf"} 6',
      ].join("\n"),
    );
    expect(scrape.heapUsedBytes).toBe(12345678);
    expect(scrape.loopDelay).toEqual({ bounds: [0.01, Number.POSITIVE_INFINITY], counts: [5, 6] });
    expect(parseSoakScrape("").heapUsedBytes).toBeNull();
  });

  it("reports the verdicts and the samples under the table, and a panel in the chart", () => {
    const sample = { requestsPerSec: 5000, soak: soakSample(points, 600, 10, 120) } as RunSample;
    const scenario: ScenarioOutcome = {
      id: "soak",
      title: "Soak",
      focus: "soak",
      params: {},
      targets: [{ targetId: "remora", label: "remora", samples: [fill(sample)] }],
    };
    const md = markdownScenario(scenario);
    expect(md).toContain("drift +8.0%, goal < 10% ✓");
    expect(md).toContain(
      "descriptors 30 before the load, 99 at most under it, 30 after it, goal back to baseline ✓",
    );
    expect(md).toContain("  | 620 | after | 101 | 25.3 | 30 | 506 | 1.00 |");
    expect(md).toContain("metric series 501 → 506");
    const worse = soakSample(
      points
        .map((p) => (p.phase === "after" ? { ...p, openFds: 31 } : p))
        .map((p) => (p.atSec === 600 ? { ...p, rssBytes: 111 * MiB } : p)),
      600,
      10,
      120,
    );
    const failing = markdownScenario({
      ...scenario,
      targets: [
        { targetId: "remora", label: "remora", samples: [fill({ ...sample, soak: worse })] },
      ],
    });
    expect(failing).toContain("drift +11.0%, goal < 10% ✗");
    expect(failing).toContain("goal back to baseline ✗");
    const report = {
      startedAt: "2026-12-02T00:00:00.000Z",
      finishedAt: "2026-12-02T00:11:00.000Z",
      command: "npm run bench -- --scenario soak",
      machine: {
        cpuModel: "x",
        cores: 2,
        memoryBytes: 1,
        os: "linux",
        node: "24",
        pinning: "none",
      },
      versions: {},
      backend: "nginx",
      scenarios: [scenario],
      skipped: [],
    } as BenchReport;
    const svg = svgChart(report);
    expect(svg).toContain('height="930"');
    expect(svg).toContain("Soak: remora over the run");
    // One RSS line and one heap line through the load and after points.
    expect(svg.match(/<path d="M[^"]*" fill="none" stroke="#d9480f"/g)).toHaveLength(1);
    expect(svgChart({ ...report, scenarios: [] })).toContain('height="700"');
  });
});

describe("the soak scenario", () => {
  it("measures only targets that read a discovery file, and is not part of `all`", () => {
    const soak = SCENARIOS.find((s) => s.id === "soak")!;
    expect(soak.soak).toEqual({ hosts: 200, live: 4, rotateEverySec: 5 });
    expect(soak.defaults.durationSec).toBe(600);
    const skips = Object.fromEntries(TARGETS.map((t) => [t.id, scenarioSkipReason(soak, t)]));
    expect(skips.remora).toBeNull();
    expect(skips.direct).toBe("no proxy to soak");
    expect(skips.haproxy).toBe("no discovery file to rotate endpoints in");
    expect(SCENARIO_ALIASES.all).not.toContain("soak");
  });

  it("runs for real: remora follows the rewritten file to an endpoint it had never seen, and is sampled", async () => {
    // Two backends on one port, on 127.0.0.1 and 127.0.0.2, as the soak's one backend on many addresses.
    const one = createServer((_req, res) => res.end("one")).listen(0, "127.0.0.1");
    await once(one, "listening");
    const port = (one.address() as AddressInfo).port;
    const two = createServer((_req, res) => res.end("two")).listen(port, "127.0.0.2");
    await once(two, "listening");
    const dir = await mkdtemp(join(tmpdir(), "remora-bench-soak-"));
    const file = join(dir, "services.yaml");
    const endpoints = new SoakEndpoints(
      file,
      SERVICE_NAME,
      { hosts: 2, live: 1, rotateEverySec: 0.2 },
      port,
    );
    endpoints.reset();
    expect(await readFile(file, "utf8")).toContain(`127.0.0.1:${port}`);
    const remora = TARGETS.find((t) => t.id === "remora")!;
    const running = await remora.start({ backends: [], core: null, dir, discoveryFile: file });
    try {
      const listen = Number(new URL(running.url).port);
      const get = async () =>
        (
          await RawClient.exchange(listen, `GET / HTTP/1.1\r\nHost: ${SERVICE_NAME}\r\n\r\n`)
        ).body.toString();
      expect(await get()).toBe("one");
      const sampler = new SoakSampler(running.pid!, running.admin);
      await sampler.take("before");
      endpoints.start();
      let answer = "one";
      for (let i = 0; i < 100 && answer === "one"; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        answer = await get();
      }
      expect(answer).toBe("two");
      expect(endpoints.stop()).toBeGreaterThanOrEqual(1);
      await sampler.take("load");
      const [before, load] = sampler.points;
      expect(before!.rssBytes).toBeGreaterThan(10 * MiB);
      expect(before!.heapUsedBytes).toBeGreaterThan(MiB);
      expect(before!.openFds).toBeGreaterThan(3);
      expect(before!.series).toBeGreaterThan(20);
      // The loop delay between the two samples, from remora's histogram.
      expect(load!.loopP99Ms).not.toBeNull();
    } finally {
      endpoints.stop();
      await running.stop();
      one.close();
      two.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

/** A RunSample with the fields the report reads filled in (the soak's figures given). */
function fill(sample: RunSample): RunSample {
  return {
    bytesPerSec: 0,
    latency: { p50: 1, p90: 1, p99: 2, p999: 3, max: 4, mean: 1 },
    latencySource: "exact",
    completed: 3_000_000,
    non2xx: 0,
    errors: 0,
    totalBytes: 0,
    durationSec: 600,
    cpuMs: 60_000,
    peakRssBytes: 120 * MiB,
    otherLoad: null,
    ...sample,
  };
}
