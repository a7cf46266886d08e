/**
 * The dashboard: GET /dashboard.json with traffic (exact counts, in process), and the page at
 * GET / rendered by headless Chromium against a real remora process with traffic.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { DashboardSnapshot } from "../proxy/dashboard.js";
import { cells, findChromium, IN_CI, renderedDom, rowOf, textOf } from "./browser.js";
import {
  httpBackend,
  type InProcessRemora,
  outboundConfig,
  RawClient,
  type SpawnedRemora,
  spawnRemora,
  startRemora,
} from "./harness.js";

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close();
});

async function get(port: number, host: string, path = "/"): Promise<number> {
  const res = await RawClient.exchange(port, `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  return res.status;
}

async function snapshot(adminPort: number): Promise<DashboardSnapshot> {
  const res = await fetch(`http://127.0.0.1:${adminPort}/dashboard.json`);
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toBe("application/json");
  return (await res.json()) as DashboardSnapshot;
}

/** Two backends for `hello`: one answers 200, the other 500 (not retried by default). */
async function backends() {
  const ok = await httpBackend((_req, res) => res.end("ok"));
  const failing = await httpBackend((_req, res) => {
    res.statusCode = 500;
    res.end("down");
  });
  cleanup.push(
    () => ok.close(),
    () => failing.close(),
  );
  return { ok, failing };
}

describe("GET /dashboard.json", () => {
  it("reports listeners, services, endpoints and the last minute's traffic", async () => {
    const { ok, failing } = await backends();
    const remora: InProcessRemora = await startRemora(
      outboundConfig([ok.address, failing.address], "  - { name: idle, endpoints: [] }\n"),
    );
    cleanup.push(() => remora.stop());
    const port = remora.port();
    for (let i = 0; i < 10; i++) await get(port, "hello");
    expect(await get(port, "nowhere")).toBe(404);

    const s = await snapshot(remora.runtime.adminPort);
    expect(s.server).toMatchObject({ state: "LIVE", node: process.version, pid: process.pid });
    expect(s.config.hash).toBe(remora.runtime.reloads.hash);
    expect(s.config.hash).toMatch(/^[0-9a-f]{16}$/);
    expect(s.config.reloads).toEqual({ ok: 0, failed: 0, lastAttemptAt: null, lastError: "" });
    expect(s.listeners).toEqual([
      { name: "outbound", kind: "outbound", address: "127.0.0.1", port },
    ]);
    expect(s.downstream.connections).toBe(0);
    expect(s.window.seconds).toBe(60);

    expect(s.services.map((svc) => svc.name)).toEqual(["hello.default", "idle.default"]);
    const hello = s.services[0]!;
    expect(hello.lastMinute).toMatchObject({ requests: 10, errors: 5, errorRate: 0.5 });
    expect(hello.lastMinute.requestsPerSecond).toBeGreaterThan(0);
    expect(hello.lastMinute.p50Ms).toBeGreaterThan(0);
    expect(hello.lastMinute.p99Ms).toBeGreaterThanOrEqual(hello.lastMinute.p50Ms!);
    expect(hello.lastMinute.perSecond).toHaveLength(60);
    expect(hello.lastMinute.perSecond!.reduce((a, b) => a + b)).toBe(10);
    expect(hello.endpoints.map((e) => [e.address, e.health.status, e.lastMinute.requests])).toEqual(
      [
        [ok.address, "HEALTHY", 5],
        [failing.address, "HEALTHY", 5],
      ],
    );
    expect(hello.endpoints[0]!.lastMinute).toMatchObject({ errors: 0, responseFlags: {} });
    expect(hello.endpoints[1]!.lastMinute).toMatchObject({ errors: 5, errorRate: 1 });
    expect(hello.endpoints[0]!.lastMinute.perSecond).toBeUndefined();
    expect(hello.endpoints[0]!.connections).toMatchObject({ open: 1, idle: 1 });

    const idle = s.services[1]!;
    expect(idle.endpoints).toEqual([]);
    expect(idle.lastMinute).toMatchObject({ requests: 0, p50Ms: null, p99Ms: null });

    // The unrouted request counts in the total only, with its flag.
    expect(s.total).toMatchObject({ requests: 11, errors: 6, responseFlags: { NR: 1 } });
  });

  it("serves the page with a policy that allows only its own script, style and the admin API", async () => {
    const remora = await startRemora(outboundConfig(["127.0.0.1:1"]));
    cleanup.push(() => remora.stop());
    const res = await fetch(`http://127.0.0.1:${remora.runtime.adminPort}/`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const csp = res.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/);
    expect(csp).toContain("connect-src 'self'");
    const html = await res.text();
    // Self-contained: nothing loaded from elsewhere.
    expect(html).not.toMatch(/(src|href)="(https?:)?\/\//);
    const post = await fetch(`http://127.0.0.1:${remora.runtime.adminPort}/`, { method: "POST" });
    expect(post.status).toBe(405);
  });
});

const chromium = findChromium();
const MISSING =
  "chromium is not installed (apt-get install chromium, or set CHROMIUM=path); skipped outside CI";

if (chromium === undefined && !IN_CI) console.warn(`dashboard browser tests: ${MISSING}`);

describe.skipIf(chromium === undefined && !IN_CI)(
  `the dashboard page in headless Chromium${chromium === undefined ? ` (${MISSING})` : ""}`,
  () => {
    function browser(): string {
      if (chromium === undefined)
        throw new Error("CI is set and chromium is missing: .ci/run must apt-get install chromium");
      return chromium;
    }

    it("renders services, endpoints, rates and the config hash from a live remora", async () => {
      const chromiumPath = browser();
      const { ok, failing } = await backends();
      const remora: SpawnedRemora = await spawnRemora([
        "run",
        "--listen",
        "0",
        "--admin-port",
        "0",
        "--service",
        `hello=${ok.address},${failing.address}`,
        "--service",
        "idle=127.0.0.1:1",
      ]);
      cleanup.push(() => remora.stop("SIGKILL"));
      const port = remora.ports.get("outbound")!;
      for (let i = 0; i < 20; i++) await get(port, "hello");
      const expected = await snapshot(remora.adminPort);
      const admin = `http://127.0.0.1:${remora.adminPort}/`;

      // The page as served carries no data: everything below was rendered by its script.
      const served = await (await fetch(admin)).text();
      expect(served).not.toContain("hello.default");
      expect(served).not.toContain(expected.config.hash);

      const dom = await renderedDom(chromiumPath, admin, 2500);
      // It fetched and rendered more than once: it updates itself every second.
      const renders = Number(/data-renders="(\d+)"/.exec(dom)?.[1] ?? 0);
      expect(renders, dom).toBeGreaterThanOrEqual(2);
      expect(textOf(dom, 'id="state"')).toBe("LIVE");
      expect(textOf(dom, 'id="config-hash"')).toBe(expected.config.hash);
      expect(textOf(dom, 'id="node"')).toBe(expected.server.node);
      expect(textOf(dom, 'id="alert"')).toBe("");

      const service = cells(rowOf(dom, 'data-service="hello.default"') ?? "");
      // Service / endpoint, health, requests, errors, p50, p99, flags, load.
      expect(service[0]).toBe("hello.default");
      expect(service[1]).toBe("2/2 healthy");
      const rate = Number(/^([\d.,]+)\/s$/.exec(service[2] ?? "")?.[1]);
      expect(rate, service[2]).toBeGreaterThan(0);
      expect(service[3]).toBe("50%");
      expect(service[5]).toMatch(/^[\d.]+ (ms|s)$/);
      expect(rowOf(dom, 'data-service="hello.default"')).toContain("<polyline");

      const good = cells(rowOf(dom, `data-endpoint="${ok.address}"`) ?? "");
      const bad = cells(rowOf(dom, `data-endpoint="${failing.address}"`) ?? "");
      expect([good[0], good[1], good[3]]).toEqual([ok.address, "HEALTHY", "0%"]);
      expect([bad[0], bad[1], bad[3]]).toEqual([failing.address, "HEALTHY", "100%"]);
      expect(Number.parseFloat(good[2]!)).toBeGreaterThan(0);

      const idle = cells(rowOf(dom, 'data-service="idle.default"') ?? "");
      expect([idle[0], idle[2], idle[3], idle[4]]).toEqual(["idle.default", "0/s", "0%", "–"]);

      const listener = cells(rowOf(dom, `127.0.0.1:${port}<`) ?? "");
      expect(listener).toEqual(["outbound", "outbound", `127.0.0.1:${port}`]);
    });

    it("shows data as text: markup in a value is never parsed", async () => {
      const chromiumPath = browser();
      const remora = await startRemora(outboundConfig(["127.0.0.1:1"]));
      cleanup.push(() => remora.stop());
      const hostile = `<img src=x onerror="document.body.setAttribute('data-pwned','1')"><b>bold</b>`;
      remora.runtime.reloads.lastError = hostile;
      remora.runtime.reloads.failed = 1;
      const dom = await renderedDom(
        chromiumPath,
        `http://127.0.0.1:${remora.runtime.adminPort}/`,
        1500,
      );
      expect(textOf(dom, 'id="config-error"')).toBe(`last reload failed: ${hostile}`);
      expect(dom).not.toContain("<img");
      expect(dom).not.toContain("<b>bold");
      // The handler would have set this attribute had the markup been parsed.
      expect(dom).not.toContain('data-pwned="1"');
    });
  },
);
