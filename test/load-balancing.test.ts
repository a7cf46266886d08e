/**
 * Load balancing through a real remora process and real (slow) backends: first-come's caps,
 * FIFO order, queue timeout, full queue and a client leaving the queue; a user's balancer module
 * loaded from config (and reloaded); a 90/10 canary split and header routing; consistent hashing.
 */
import { once } from "node:events";
import { mkdtemp, writeFile } from "node:fs/promises";
import {
  Agent,
  request as httpRequest,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  type HttpBackend,
  httpBackend,
  namedBackend,
  type SpawnedRemora,
  spawnRemora,
} from "./harness.js";

const running: SpawnedRemora[] = [];
const backends: HttpBackend[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) await r.stop("SIGKILL");
  for (const b of backends.splice(0)) await b.close();
});

/** A backend answering with its name, closed after the test. */
async function named(name: string): Promise<HttpBackend> {
  const backend = await namedBackend(name);
  backends.push(backend);
  return backend;
}

/**
 * A backend that holds every request until the test releases it, and records the order in
 * which requests arrived (by their x-seq header) and its peak concurrency.
 */
interface HeldBackend {
  readonly backend: HttpBackend;
  readonly arrivals: string[];
  readonly held: ServerResponse[];
  peak: number;
  /** Answer the oldest held request. */
  releaseOne(): void;
}

async function held(name: string): Promise<HeldBackend> {
  const state: HeldBackend = {
    backend: undefined as unknown as HttpBackend,
    arrivals: [],
    held: [],
    peak: 0,
    releaseOne() {
      state.held.shift()?.end(name);
    },
  };
  const backend = await httpBackend((req: IncomingMessage, res) => {
    state.arrivals.push(String(req.headers["x-seq"]));
    state.held.push(res);
    state.peak = Math.max(state.peak, state.held.length);
  });
  (state as { backend: HttpBackend }).backend = backend;
  backends.push(backend);
  return state;
}

async function configFile(text: string, name = "remora.yaml"): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "remora-lb-"));
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

function config(services: string): string {
  return `admin: { port: 0 }
probes: { port: null }
metrics: { port: null }
accessLog: { enabled: true }
listeners:
  - { name: outbound, kind: outbound, port: 0 }
services:
${services}`;
}

async function start(text: string): Promise<SpawnedRemora> {
  const remora = await spawnRemora(["run", "-c", await configFile(text)]);
  running.push(remora);
  return remora;
}

interface Answer {
  status: number;
  body: string;
}

/** One request on its own connection; resolves with the answer, or rejects on a reset. */
function get(
  port: number,
  headers: Record<string, string> = {},
  path = "/",
  agent?: Agent,
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: "127.0.0.1", port, path, headers: { host: "hello", ...headers }, agent },
      (res) => {
        let body = "";
        res.setEncoding("latin1");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

async function clusters(remora: SpawnedRemora): Promise<ClusterInfo[]> {
  const res = await fetch(`http://127.0.0.1:${remora.adminPort}/clusters`);
  return (await res.json()) as ClusterInfo[];
}

interface ClusterInfo {
  name: string;
  queued: number;
  activeRequests: number;
  endpoints: { address: string; activeRequests?: number }[];
}

async function until(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Access-log lines remora wrote to stdout so far. */
function accessLog(remora: SpawnedRemora): Record<string, unknown>[] {
  return remora
    .stdout()
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

describe("first-come", () => {
  const firstCome = (endpoints: string[], options: string) =>
    config(`  - name: hello
    endpoints:
${endpoints.map((e) => `      - { address: "${e}" }`).join("\n")}
    trafficPolicy:
      loadBalancer: { policy: first-come, ${options} }`);

  it("caps each endpoint and dispatches queued requests in arrival order", async () => {
    const a = await held("a");
    const b = await held("b");
    const remora = await start(
      firstCome([a.backend.address, b.backend.address], "maxConcurrent: 2"),
    );
    const port = remora.ports.get("outbound")!;
    const answers: Promise<Answer>[] = [];
    // Four requests fill the four slots.
    for (let i = 0; i < 4; i++) answers.push(get(port, { "x-seq": String(i) }));
    await until(() => a.held.length + b.held.length === 4, "four requests upstream");
    expect([a.held.length, b.held.length]).toEqual([2, 2]);
    // Eight more queue, one at a time so their arrival order is known.
    for (let i = 4; i < 12; i++) {
      answers.push(get(port, { "x-seq": String(i) }));
      await until(async () => (await clusters(remora))[0]!.queued === i - 3, `request ${i} queued`);
    }
    expect(a.arrivals.length + b.arrivals.length).toBe(4);
    // Free one slot at a time, alternating endpoints: each goes to the oldest waiter.
    const seen = new Set([...a.arrivals, ...b.arrivals]);
    const order: string[] = [];
    for (let i = 0; i < 8; i++) {
      const [first, other] = i % 2 === 0 ? [a, b] : [b, a];
      (first.held.length > 0 ? first : other).releaseOne();
      await until(() => a.arrivals.length + b.arrivals.length === 5 + i, "a dispatch");
      const fresh = [...a.arrivals, ...b.arrivals].find((seq) => !seen.has(seq))!;
      seen.add(fresh);
      order.push(fresh);
    }
    while (a.held.length + b.held.length > 0) {
      a.releaseOne();
      b.releaseOne();
    }
    for (const answer of await Promise.all(answers)) expect(answer.status).toBe(200);
    // Arrival order at the backends (after the first four) is the order requests came in.
    expect(order.map(Number)).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
    expect(a.peak).toBeLessThanOrEqual(2);
    expect(b.peak).toBeLessThanOrEqual(2);
    // Queued time is in the access log: the queued requests waited, the first four did not.
    await until(() => accessLog(remora).length === 12, "12 access-log lines");
    const lines = accessLog(remora);
    expect(lines).toHaveLength(12);
    expect(lines.filter((l) => l.queue_time === null)).toHaveLength(4);
    expect(lines.filter((l) => typeof l.queue_time === "number")).toHaveLength(8);
  });
});

describe("first-come under concurrent load", () => {
  it("never exceeds the cap, and a connect failure's retry counts against it", async () => {
    // A port nothing listens on: connects to it fail at once and are retried elsewhere.
    const closed = await httpBackend();
    const dead = closed.address;
    await closed.close();
    const live: { backend: HttpBackend; active: number; peak: number }[] = [];
    for (let i = 0; i < 2; i++) {
      const entry = { backend: undefined as unknown as HttpBackend, active: 0, peak: 0 };
      entry.backend = await httpBackend((_req, res) => {
        entry.active++;
        entry.peak = Math.max(entry.peak, entry.active);
        setTimeout(() => {
          entry.active--;
          res.end("ok");
        }, 5);
      });
      backends.push(entry.backend);
      live.push(entry);
    }
    const remora = await start(
      config(`  - name: hello
    endpoints:
      - { address: "${dead}" }
      - { address: "${live[0]!.backend.address}" }
      - { address: "${live[1]!.backend.address}" }
    trafficPolicy:
      loadBalancer: { policy: first-come, maxConcurrent: 2, queueTimeout: 30s }
      # The dead endpoint fails at once, so first-come (fewest active first) would keep choosing
      # it; outlier detection takes it out after its first failure, as in production.
      outlierDetection: { mode: fail-fast, baseEjectionTime: 1h }`),
    );
    const port = remora.ports.get("outbound")!;
    const agent = new Agent({ keepAlive: true, maxSockets: 12 });
    const statuses: number[] = [];
    for (let batch = 0; batch < 20; batch++) {
      const answers = await Promise.all(
        Array.from({ length: 12 }, () => get(port, {}, "/", agent)),
      );
      for (const answer of answers) statuses.push(answer.status);
    }
    agent.destroy();
    expect(statuses.filter((status) => status !== 200)).toEqual([]);
    for (const entry of live) expect(entry.peak).toBeLessThanOrEqual(2);
    expect(live[0]!.peak + live[1]!.peak).toBe(4);
    // Every slot was given back: nothing active, nothing queued.
    const [hello] = await clusters(remora);
    expect(hello!.queued).toBe(0);
    expect(hello!.endpoints.map((e) => e.activeRequests)).toEqual([0, 0, 0]);
  });
});

describe("first-come refusals", () => {
  const one = (address: string, options: string) =>
    config(`  - name: hello
    endpoints: [{ address: "${address}" }]
    trafficPolicy:
      loadBalancer: { policy: first-come, maxConcurrent: 1, ${options} }`);

  it("answers 503 UO when a request waited queueTimeout", async () => {
    const a = await held("a");
    const remora = await start(one(a.backend.address, "queueTimeout: 300ms"));
    const port = remora.ports.get("outbound")!;
    const first = get(port, { "x-seq": "0" });
    await until(() => a.held.length === 1, "the slot taken");
    const started = Date.now();
    const second = await get(port, { "x-seq": "1" });
    expect(second).toEqual({ status: 503, body: "request queue timeout\n" });
    // It waited for the timeout (a lower bound only: never an upper bound in a test).
    expect(Date.now() - started).toBeGreaterThanOrEqual(290);
    expect(a.arrivals).toEqual(["0"]);
    a.releaseOne();
    expect((await first).status).toBe(200);
    await until(() => accessLog(remora).length === 2, "2 access-log lines");
    const refused = accessLog(remora).find((l) => l.response_code === 503)!;
    expect(refused.response_flags).toBe("UO");
    expect(refused.queue_time).toBeGreaterThanOrEqual(290);
    expect(refused.upstream_host).toBeNull();
    const metrics = await (
      await fetch(`http://127.0.0.1:${remora.adminPort}/stats/prometheus`)
    ).text();
    expect(metrics).toContain(
      'remora_lb_queue_total{cluster="hello.default",subset="",result="timeout"} 1',
    );
    expect(metrics).toContain(
      'remora_lb_queue_total{cluster="hello.default",subset="",result="dispatched"} 0',
    );
    expect(metrics).toContain(
      'remora_lb_queue_wait_milliseconds_bucket{cluster="hello.default",subset="",le="250"} 0',
    );
    expect(metrics).toContain(
      'remora_lb_queue_wait_milliseconds_bucket{cluster="hello.default",subset="",le="500"} 1',
    );
    expect(metrics).toContain('remora_lb_queued_requests{cluster="hello.default",subset=""} 0');
  });

  it("answers 503 UO at once when the queue is full, and a client that leaves frees its place", async () => {
    const a = await held("a");
    const remora = await start(one(a.backend.address, "maxQueue: 1, queueTimeout: 30s"));
    const port = remora.ports.get("outbound")!;
    const first = get(port, { "x-seq": "0" });
    await until(() => a.held.length === 1, "the slot taken");
    // The queue's one place, taken by a client that will leave.
    const leaving: Socket = connect(port, "127.0.0.1");
    await once(leaving, "connect");
    leaving.write("GET / HTTP/1.1\r\nHost: hello\r\nx-seq: leaving\r\n\r\n");
    await until(async () => (await clusters(remora))[0]!.queued === 1, "one queued");
    expect(await get(port, { "x-seq": "full" })).toEqual({
      status: 503,
      body: "request queue full\n",
    });
    leaving.destroy();
    await until(async () => (await clusters(remora))[0]!.queued === 0, "the queue emptied");
    // Its place is free again, and the slot goes to the next request, not to the one that left.
    const next = get(port, { "x-seq": "next" });
    await until(async () => (await clusters(remora))[0]!.queued === 1, "next queued");
    a.releaseOne();
    await until(() => a.held.length === 1, "next upstream");
    a.releaseOne();
    expect((await first).status).toBe(200);
    expect((await next).status).toBe(200);
    expect(a.arrivals).toEqual(["0", "next"]);
    await until(() => accessLog(remora).length === 4, "4 access-log lines");
    const flags = accessLog(remora).map((l) => `${l.response_code} ${l.response_flags}`);
    expect(flags).toEqual(expect.arrayContaining(["503 UO", "0 DC", "200 -", "200 -"]));
  });
});

describe("a user's balancer module", () => {
  /** A module that sends everything to the endpoint labelled with options.label. */
  const moduleText = (marker: string) => `
export default function create({ settings }) {
  const label = settings.module.options.label;
  let chosen;
  return {
    policy: "labelled-${marker}",
    update(endpoints) { chosen = endpoints.find((e) => e.labels.pick === label); },
    pick() { return chosen; },
  };
}
`;

  it("is loaded from config relative to the file, gets its options, and is reloaded", async () => {
    const a = await named("a");
    const b = await named("b");
    const dir = await mkdtemp(join(tmpdir(), "remora-lb-module-"));
    await writeFile(join(dir, "pick.mjs"), moduleText("one"));
    const text = (label: string) =>
      config(`  - name: hello
    endpoints:
      - { address: "${a.address}", labels: { pick: a } }
      - { address: "${b.address}", labels: { pick: b } }
    trafficPolicy:
      loadBalancer: { module: ./pick.mjs, options: { label: ${label} } }`);
    const path = join(dir, "remora.yaml");
    await writeFile(path, text("b"));
    const remora = await spawnRemora(["run", "-c", path]);
    running.push(remora);
    const port = remora.ports.get("outbound")!;
    for (let i = 0; i < 5; i++) expect((await get(port)).body).toBe("b");
    expect((await clusters(remora))[0]).toMatchObject({ policy: "module" });
    // A changed option applies on reload.
    await writeFile(path, text("a"));
    const reload = await fetch(`http://127.0.0.1:${remora.adminPort}/reload`, { method: "POST" });
    expect(reload.status).toBe(200);
    for (let i = 0; i < 5; i++) expect((await get(port)).body).toBe("a");
    // An edited module is imported again on reload, even when the config is the same.
    await writeFile(
      join(dir, "pick.mjs"),
      moduleText("two").replace("e.labels.pick === label", "e.labels.pick !== label"),
    );
    const again = await fetch(`http://127.0.0.1:${remora.adminPort}/reload`, { method: "POST" });
    expect(again.status).toBe(200);
    for (let i = 0; i < 5; i++) expect((await get(port)).body).toBe("b");
    // A broken module is refused on reload with the key path; the running one stays.
    await writeFile(join(dir, "pick.mjs"), "export default 42;\n");
    await writeFile(path, text("b"));
    const refused = await fetch(`http://127.0.0.1:${remora.adminPort}/reload`, {
      method: "POST",
    });
    expect(refused.status).toBe(400);
    expect(await refused.text()).toContain("services[0].trafficPolicy.loadBalancer.module");
    expect((await get(port)).body).toBe("b");
  });
});

describe("subsets and routes", () => {
  const canary = (v1: string, v2: string) =>
    config(`  - name: hello
    endpoints:
      - { address: "${v1}", labels: { version: v1 } }
      - { address: "${v2}", labels: { version: v2 } }
    subsets:
      - { name: v1, labels: { version: v1 } }
      - { name: v2, labels: { version: v2 } }
    routes:
      - name: testers
        match: [{ headers: { x-canary: { exact: always } } }]
        route: [{ subset: v2 }]
      - name: api-v1-only
        match: [{ uri: { prefix: /v1-only/ } }]
        route: [{ subset: v1 }]
      - name: split
        route: [{ subset: v1, weight: 90 }, { subset: v2, weight: 10 }]`);

  it("splits 90/10 over 2,000 requests", async () => {
    const v1 = await named("v1");
    const v2 = await named("v2");
    const remora = await start(canary(v1.address, v2.address));
    const port = remora.ports.get("outbound")!;
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    const counts: Record<string, number> = { v1: 0, v2: 0 };
    for (let batch = 0; batch < 250; batch++) {
      const answers = await Promise.all(Array.from({ length: 8 }, () => get(port, {}, "/", agent)));
      for (const answer of answers) counts[answer.body]!++;
    }
    agent.destroy();
    expect(counts.v1! + counts.v2!).toBe(2000);
    // Binomial(2000, 0.1): mean 200, sd 13.4; 5 sd either way.
    expect(counts.v2).toBeGreaterThan(133);
    expect(counts.v2).toBeLessThan(267);
  });

  it("routes by header and by path prefix, first match wins", async () => {
    const v1 = await named("v1");
    const v2 = await named("v2");
    const remora = await start(canary(v1.address, v2.address));
    const port = remora.ports.get("outbound")!;
    for (let i = 0; i < 20; i++) {
      expect((await get(port, { "X-Canary": "always" })).body).toBe("v2");
      expect((await get(port, {}, "/v1-only/x?y=1")).body).toBe("v1");
      // The header route comes first.
      expect((await get(port, { "x-canary": "always" }, "/v1-only/x")).body).toBe("v2");
    }
    // A near miss falls through to the split, which sends most to v1.
    const near = await Promise.all(
      Array.from({ length: 40 }, () => get(port, { "x-canary": "Always" })),
    );
    expect(near.filter((a) => a.body === "v1").length).toBeGreaterThan(20);
  });

  it("answers 404 NR when a service has routes and none matches", async () => {
    const v1 = await named("v1");
    const remora = await start(
      config(`  - name: hello
    endpoints: [{ address: "${v1.address}", labels: { version: v1 } }]
    subsets: [{ name: v1, labels: { version: v1 } }]
    routes:
      - match: [{ method: { exact: GET } }]
        route: [{ subset: v1 }]`),
    );
    const port = remora.ports.get("outbound")!;
    expect((await get(port)).body).toBe("v1");
    const res = await new Promise<Answer>((resolve, reject) => {
      const req = httpRequest(
        { host: "127.0.0.1", port, path: "/", method: "DELETE", headers: { host: "hello" } },
        (r) => {
          let body = "";
          r.on("data", (c: Buffer) => (body += c.toString()));
          r.on("end", () => resolve({ status: r.statusCode ?? 0, body }));
        },
      );
      req.on("error", reject);
      req.end();
    });
    expect(res).toEqual({ status: 404, body: "no route matched the request\n" });
  });
});

describe("consistent hashing", () => {
  it.each(["ring-hash", "maglev"])("%s keeps a key on one endpoint", async (policy) => {
    const names = ["a", "b", "c", "d"];
    const all = await Promise.all(names.map(named));
    const remora = await start(
      config(`  - name: hello
    endpoints:
${all.map((b) => `      - { address: "${b.address}" }`).join("\n")}
    trafficPolicy:
      loadBalancer: { policy: ${policy}, consistentHash: { httpHeaderName: x-user } }`),
    );
    const port = remora.ports.get("outbound")!;
    const owners = new Map<string, Set<string>>();
    for (let round = 0; round < 3; round++) {
      for (let user = 0; user < 40; user++) {
        const body = (await get(port, { "x-user": `user-${user}` })).body;
        const seen = owners.get(`user-${user}`) ?? new Set();
        seen.add(body);
        owners.set(`user-${user}`, seen);
      }
    }
    for (const seen of owners.values()) expect(seen.size).toBe(1);
    // And the keys spread over the endpoints.
    const used = new Set([...owners.values()].map((seen) => [...seen][0]));
    expect(used.size).toBeGreaterThanOrEqual(3);
  });
});

describe("a generated sticky cookie (httpCookie with a ttl)", () => {
  it("sets the cookie on a first request and keeps the client on that endpoint", async () => {
    const all = await Promise.all(["a", "b", "c", "d"].map(named));
    const remora = await start(
      config(`  - name: hello
    endpoints:
${all.map((b) => `      - { address: "${b.address}" }`).join("\n")}
    trafficPolicy:
      loadBalancer:
        policy: maglev
        consistentHash: { httpCookie: { name: sticky, ttl: 1h, path: / } }`),
    );
    const port = remora.ports.get("outbound")!;
    const firstOwners = new Set<string>();
    for (let client = 0; client < 12; client++) {
      const first = await getWithHeaders(port, {});
      const setCookie = first.headers["set-cookie"] as string[] | undefined;
      expect(setCookie).toHaveLength(1);
      const match = /^sticky=([0-9a-f]{16}); Max-Age=3600; Path=\/; HttpOnly$/.exec(setCookie![0]!);
      expect(match).not.toBeNull();
      firstOwners.add(first.body);
      // Every later request with the cookie goes where the first one went, and sets nothing.
      for (let i = 0; i < 5; i++) {
        const next = await getWithHeaders(port, { cookie: `theme=dark; sticky=${match![1]}` });
        expect(next.body).toBe(first.body);
        expect(next.headers["set-cookie"]).toBeUndefined();
      }
    }
    // Fresh clients are spread over the endpoints, not all sent to one.
    expect(firstOwners.size).toBeGreaterThanOrEqual(2);
  });
});

/** get() that also returns the response's header fields. */
function getWithHeaders(
  port: number,
  headers: Record<string, string>,
): Promise<Answer & { headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: "127.0.0.1", port, path: "/", headers: { host: "hello", ...headers } },
      (res) => {
        let body = "";
        res.setEncoding("latin1");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

describe("the example balancer (examples/balancers/lowest-latency.mjs)", () => {
  it("sends most requests to the faster of two endpoints", async () => {
    const fast = await named("fast");
    const slow = await httpBackend((_req, res) => {
      setTimeout(() => res.end("slow"), 40);
    });
    backends.push(slow);
    const module = join(process.cwd(), "examples/balancers/lowest-latency.mjs");
    const remora = await start(
      config(`  - name: hello
    endpoints:
      - { address: "${fast.address}" }
      - { address: "${slow.address}" }
    trafficPolicy:
      loadBalancer: { module: "${module}", options: { explore: 0.05 } }`),
    );
    const port = remora.ports.get("outbound")!;
    const counts: Record<string, number> = { fast: 0, slow: 0 };
    for (let i = 0; i < 60; i++) counts[(await get(port)).body]!++;
    // Both were measured (each goes first once), then the fast one takes nearly everything.
    expect(counts.slow).toBeGreaterThanOrEqual(1);
    expect(counts.fast).toBeGreaterThan(50);
  });
});
