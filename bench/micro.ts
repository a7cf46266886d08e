/**
 * `npm run bench:micro`: micro-benchmarks of the hot paths, with tinybench.
 *   - request-head parsing (proxy/http/request-parser.js `parseRequestHead`)
 *   - balancer picks at 10 and 10,000 endpoints for every built-in policy (lb/*.js): round-robin
 *     (equal weights, a retry, weights 1..128), weighted, random (equal and weighted),
 *     least-request (pick + onStart + onEnd), ring-hash and maglev (a header key, hashing
 *     included), first-come (acquire + onEnd, once lb/first-come.js exists)
 *   - rebuilding a 10,000-endpoint maglev table and ring-hash ring (`update`)
 *   - metrics (proxy/metrics/): the exchange reporter's cost per request next to prom-client's
 *     own `labels().inc()`/`observe()`, and a scrape of 1,000 services × 10 endpoints
 * The modules are imported at run time from dist/, so a path that is not built yet is
 * skipped with a message instead of failing the whole run.
 *
 * Each task runs a batch of operations per call, because one parse or pick takes well under
 * a microsecond, less than the timer's own resolution and overhead.
 */
import { parseArgs } from "node:util";
import { Bench } from "tinybench";

interface MicroCase {
  readonly group: string;
  readonly name: string;
  /** Operations per task call; per-op figures divide by this. */
  readonly batch: number;
  readonly fn: () => void | Promise<void>;
  /** Printed under the table (e.g. the size of what was measured). */
  readonly note?: () => string;
}

/** Keeps results observable so the JIT cannot drop the work being measured. */
let sink = 0;

/** Parts of a group that could not run (a module not built yet), reported with the skipped groups. */
const partlySkipped: string[] = [];

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

async function importFromDist(relative: string): Promise<Record<string, unknown>> {
  return (await import(new URL(relative, import.meta.url).href)) as Record<string, unknown>;
}

type ParseRequestHead = (
  buf: Buffer,
  start: number,
  end: number,
  limits: { maxHeadBytes: number; maxTargetBytes: number },
) => { headLength: number } | null;

const CURL_HEAD = Buffer.from(
  "GET /api/v1/orders?limit=20 HTTP/1.1\r\nHost: orders.shop.svc.cluster.local\r\n" +
    "User-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
);

const BROWSER_HEAD = Buffer.from(
  [
    "GET /static/app/main.3f9a2c.js?v=20250101 HTTP/1.1",
    "Host: frontend.shop.svc.cluster.local",
    "Connection: keep-alive",
    'sec-ch-ua: "Chromium";v="124", "Google Chrome";v="124", "Not-A.Brand";v="99"',
    "sec-ch-ua-mobile: ?0",
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    'sec-ch-ua-platform: "Linux"',
    "Accept: */*",
    "Sec-Fetch-Site: same-origin",
    "Sec-Fetch-Mode: no-cors",
    "Sec-Fetch-Dest: script",
    "Referer: https://shop.example.com/checkout",
    "Accept-Encoding: gzip, deflate, br, zstd",
    "Accept-Language: en-GB,en;q=0.9,de;q=0.8",
    "Cookie: session=9f2c1e4b7a6d; cart=3; theme=dark; consent=analytics%3Dfalse",
    "x-request-id: 6b1f3c2e-8d4a-4f0e-9b7c-1a2d3e4f5a6b",
    "traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "",
    "",
  ].join("\r\n"),
);

async function parserCases(): Promise<MicroCase[] | string> {
  let parse: ParseRequestHead;
  let limits: { maxHeadBytes: number; maxTargetBytes: number };
  try {
    const mod = await importFromDist("../proxy/http/request-parser.js");
    const head = await importFromDist("../proxy/http/head.js");
    if (typeof mod.parseRequestHead !== "function")
      return "request-parser.js exports no parseRequestHead";
    parse = mod.parseRequestHead as ParseRequestHead;
    limits = (head.DEFAULT_HEAD_LIMITS as typeof limits | undefined) ?? {
      maxHeadBytes: 64 * 1024,
      maxTargetBytes: 8 * 1024,
    };
  } catch (err) {
    return `proxy/http/request-parser.js not available (${errorText(err)}); run npm run build`;
  }
  const batch = 1000;
  const parseCase = (name: string, buf: Buffer): MicroCase => {
    // Fail now, not mid-benchmark, if the parser rejects the sample head.
    if (parse(buf, 0, buf.length, limits)?.headLength !== buf.length) {
      throw new Error(`parseRequestHead did not parse the ${name} sample completely`);
    }
    return {
      group: "request-head parsing",
      name: `${name} (${buf.length} B)`,
      batch,
      fn: () => {
        for (let i = 0; i < batch; i++) sink += parse(buf, 0, buf.length, limits)?.headLength ?? 0;
      },
    };
  };
  return [
    parseCase("curl-like GET, 3 fields", CURL_HEAD),
    parseCase("browser GET, 16 fields", BROWSER_HEAD),
  ];
}

interface BenchEndpoint {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  readonly weight: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly ready: boolean;
}

/** What the balancer cases use of lb/balancer.ts's Balancer (typed loosely: dist may predate it). */
interface BalancerLike {
  update(endpoints: readonly BenchEndpoint[]): void;
  pick(ctx: object): BenchEndpoint | undefined;
  onStart?(endpoint: BenchEndpoint): void;
  onEnd?(endpoint: BenchEndpoint, ok: boolean): void;
  acquire?(ctx: object, waiter: object): unknown;
}

type BalancerCtor = new (options: {
  random: () => number;
  clock: () => number;
  settings: object;
}) => BalancerLike;

/** `count` endpoints; `weighted` gives them weights 1..128 spread over the set, else all 1. */
function endpoints(count: number, weighted = false): BenchEndpoint[] {
  return Array.from({ length: count }, (_, i) => {
    const host = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    return Object.freeze({
      id: `${host}:8080`,
      host,
      port: 8080,
      weight: weighted ? 1 + ((i * 37) % 128) : 1,
      labels: Object.freeze({}),
      ready: true,
    });
  });
}

/** Request contexts with distinct hash keys, cycled through so keyed picks are not one key. */
function keyedContexts(count: number): object[] {
  return Array.from({ length: count }, (_, i) =>
    Object.freeze({
      headers: Object.freeze([
        "Host",
        "orders.shop.svc.cluster.local",
        "User-Agent",
        "curl/8.5.0",
        "Accept",
        "*/*",
        "X-User",
        // Flat like the codec's strings (cut from one latin1 copy of the head); a template
        // literal's result is a cons string, and picks would measure V8 flattening it.
        Buffer.from(`user-${(i * 2654435761) >>> 0}`, "latin1").toString("latin1"),
      ]),
    }),
  );
}

/** A waiter for first-come's acquire; the benchmark never queues (maxConcurrent is huge). */
const NEVER_WAITS = Object.freeze({ onSlot: () => {}, onQueueTimeout: () => {} });

const LB_MODULES = [
  ["round-robin", "../lb/round-robin.js", "RoundRobinBalancer"],
  ["weighted", "../lb/weighted.js", "WeightedBalancer"],
  ["random", "../lb/random.js", "RandomBalancer"],
  ["least-request", "../lb/least-request.js", "LeastRequestBalancer"],
  ["ring-hash", "../lb/ring-hash.js", "RingHashBalancer"],
  ["maglev", "../lb/maglev.js", "MaglevBalancer"],
  ["first-come", "../lb/first-come.js", undefined],
] as const;

/**
 * The balancer class a dist module exports: the named one, or (first-come, whose class name is
 * not fixed here) the first exported class with an `acquire` method.
 */
function balancerClass(mod: Record<string, unknown>, name: string | undefined): BalancerCtor {
  if (name !== undefined) {
    if (typeof mod[name] !== "function") throw new Error(`exports no ${name}`);
    return mod[name] as BalancerCtor;
  }
  for (const value of Object.values(mod)) {
    if (typeof value === "function" && typeof value.prototype?.acquire === "function")
      return value as BalancerCtor;
  }
  throw new Error("exports no balancer class with acquire()");
}

async function balancerCases(): Promise<MicroCase[] | string> {
  let settings: Record<string, unknown>;
  let empty: object;
  try {
    const contract = await importFromDist("../lb/balancer.js");
    settings = contract.DEFAULT_LB_SETTINGS as Record<string, unknown>;
    empty = contract.EMPTY_PICK_CONTEXT as object;
    if (settings === undefined || empty === undefined)
      return "lb/balancer.js exports no DEFAULT_LB_SETTINGS / EMPTY_PICK_CONTEXT";
  } catch (err) {
    return `lb/balancer.js not available (${errorText(err)}); run npm run build`;
  }
  const classes = new Map<string, BalancerCtor>();
  const missing: string[] = [];
  for (const [policy, path, name] of LB_MODULES) {
    try {
      classes.set(policy, balancerClass(await importFromDist(path), name));
    } catch (err) {
      missing.push(`${policy} (${path.slice(3)}: ${errorText(err).split("\n")[0]})`);
    }
  }
  const consistentHash = { httpHeaderName: "x-user", minimumRingSize: 1024, tableSize: 65537 };
  const make = (policy: string, list: readonly BenchEndpoint[], extra: object = {}) => {
    const Ctor = classes.get(policy)!;
    const balancer = new Ctor({
      random: Math.random,
      clock: () => performance.now(),
      settings: { ...settings, policy, ...extra },
    });
    balancer.update(list);
    return balancer;
  };
  const batch = 10_000;
  const keyed = keyedContexts(1024);
  const cases: MicroCase[] = [];
  const pickCase = (name: string, balancer: BalancerLike, ctx: object = empty): MicroCase => {
    if (balancer.pick(ctx) === undefined) throw new Error(`${name}: picked nothing`);
    return {
      group: "balancer pick",
      name,
      batch,
      fn: () => {
        for (let i = 0; i < batch; i++) sink += balancer.pick(ctx)?.port ?? 0;
      },
    };
  };
  for (const count of [10, 10_000]) {
    const n = `${count.toLocaleString("en-US")} endpoints`;
    const equal = endpoints(count);
    const weighted = endpoints(count, true);
    if (classes.has("round-robin")) {
      const balancer = make("round-robin", equal);
      cases.push(pickCase(`round-robin, ${n}`, balancer));
      cases.push(
        pickCase(`round-robin, ${n}, 1 excluded (retry)`, balancer, {
          exclude: new Set([equal[0]!.id]),
        }),
      );
      cases.push(pickCase(`round-robin, ${n}, weights 1..128`, make("round-robin", weighted)));
    }
    if (classes.has("weighted")) {
      cases.push(pickCase(`weighted, ${n}, weights 1..128`, make("weighted", weighted)));
    }
    if (classes.has("random")) {
      cases.push(pickCase(`random, ${n}`, make("random", equal)));
      cases.push(pickCase(`random, ${n}, weights 1..128`, make("random", weighted)));
    }
    if (classes.has("least-request")) {
      for (const [label, list] of [
        ["", equal],
        [", weights 1..128", weighted],
      ] as const) {
        const balancer = make("least-request", list);
        cases.push({
          group: "balancer pick",
          name: `least-request, ${n}${label}, pick + onStart + onEnd`,
          batch,
          fn: () => {
            for (let i = 0; i < batch; i++) {
              const endpoint = balancer.pick(empty)!;
              balancer.onStart!(endpoint);
              sink += endpoint.port;
              balancer.onEnd!(endpoint, true);
            }
          },
        });
      }
    }
    for (const policy of ["ring-hash", "maglev"]) {
      if (!classes.has(policy)) continue;
      const balancer = make(policy, equal, { consistentHash });
      cases.push({
        group: "balancer pick",
        name: `${policy}, ${n}, header key (hash included)`,
        batch,
        fn: () => {
          for (let i = 0; i < batch; i++) sink += balancer.pick(keyed[i & 1023]!)?.port ?? 0;
        },
      });
    }
    if (classes.has("first-come")) {
      const balancer = make("first-come", equal, { maxConcurrent: 1_000_000_000 });
      cases.push({
        group: "balancer pick",
        name: `first-come, ${n}, acquire + onEnd (never full)`,
        batch,
        fn: () => {
          for (let i = 0; i < batch; i++) {
            const endpoint = balancer.acquire!(empty, NEVER_WAITS) as BenchEndpoint;
            sink += endpoint.port;
            balancer.onEnd!(endpoint, true);
          }
        },
      });
    }
  }
  const big = endpoints(10_000);
  for (const policy of ["maglev", "ring-hash"]) {
    if (!classes.has(policy)) continue;
    const balancer = make(policy, big, { consistentHash });
    cases.push({
      group: "balancer rebuild",
      name:
        policy === "maglev"
          ? "maglev update(), 10,000 endpoints, table 65,537"
          : "ring-hash update(), 10,000 endpoints, minimumRingSize 1,024",
      batch: 1,
      fn: () => balancer.update(big),
    });
  }
  for (const policy of missing) partlySkipped.push(`balancer pick: ${policy}`);
  return cases;
}

/** What the metrics cases use from dist/ (typed loosely: dist may predate the source). */
interface MetricsModule {
  RuntimeMetrics: new (
    subject: object,
    options: object,
  ) => {
    exchanges: { report(record: object): void };
    addListener(name: string, kind: string, counts: object): void;
    expositionChunks(): Promise<Buffer[]>;
    close(): Promise<void>;
  };
}

/** A stand-in Runtime with `services` clusters of `perService` endpoints, pools included. */
function meshSubject(services: number, perService: number) {
  const clusters = new Map<string, object>();
  for (let s = 0; s < services; s++) {
    const name = `svc-${s}`;
    const endpoints = Array.from({ length: perService }, (_, e) => ({
      id: `10.${(s >> 8) & 255}.${s & 255}.${e + 1}:8080`,
      labels: { app: name, version: "v1" },
    }));
    const pools = { open: 4, idle: 3, connecting: 0 };
    clusters.set(`${name}.default`, {
      key: `${name}.default`,
      name,
      namespace: "default",
      stats: { active: 1 },
      endpoints,
      poolStats: () => pools,
    });
  }
  return {
    reloads: { ok: 0, failed: 0, hash: "0123456789abcdef", appliedAtMs: Date.now() },
    clusters: { all: () => clusters.values(), get: (key: string) => clusters.get(key) },
    appClusters: [],
    registry: { sourceStates: () => [{ id: "static", synced: true, lastSyncMs: Date.now() }] },
    accessLog: { stats: () => ({ lines: 0, dropped: 0, errors: 0 }) },
    clusterList: [...clusters.values()] as { key: string; endpoints: { id: string }[] }[],
  };
}

function exchangeRecord(listener: string) {
  return {
    listener,
    cluster: "",
    endpoint: "",
    method: "GET",
    authority: "svc",
    path: "/",
    status: 200,
    flags: "-",
    requestBytes: 78,
    responseBytes: 180,
    startMs: 0,
    durationMs: 0.8,
    requestId: "",
  };
}

async function metricsCases(): Promise<MicroCase[] | string> {
  let mod: MetricsModule;
  let prom: typeof import("prom-client");
  try {
    mod = (await importFromDist("../proxy/metrics/runtime-metrics.js")) as unknown as MetricsModule;
    prom = await import("prom-client");
  } catch (err) {
    return `proxy/metrics/ not available (${errorText(err)}); run npm run build`;
  }
  const options = { workload: { name: "bench", namespace: "default" }, env: {} };
  const cases: MicroCase[] = [];

  // The hot path: one small GET's report, round-robin over a service's 10 endpoints.
  const small = meshSubject(1, 10);
  const metrics = new mod.RuntimeMetrics(small, options);
  metrics.addListener("outbound", "outbound", { connections: 0, accepted: 0 });
  const record = exchangeRecord("outbound");
  const endpointIds = small.clusterList[0]!.endpoints.map((e) => e.id);
  record.cluster = small.clusterList[0]!.key;
  const batch = 10_000;
  let turn = 0;
  cases.push({
    group: "metrics",
    name: "ExchangeMetrics.report, 10 endpoints round-robin",
    batch,
    fn: () => {
      for (let i = 0; i < batch; i++) {
        record.endpoint = endpointIds[turn++ % 10]!;
        record.durationMs = (turn % 50) / 10;
        metrics.exchanges.report(record);
      }
    },
  });

  // What the hot path would cost through prom-client: a resolved child per label set still
  // hashes its 25 labels on every inc()/observe().
  const registry = new prom.Registry();
  const istio = await importFromDist("../proxy/metrics/istio.js");
  const labelNames = [...(istio.ISTIO_HTTP_LABELS as readonly string[])];
  const counter = new prom.Counter({ name: "c", help: "c", labelNames, registers: [registry] });
  const histograms = ["d", "q", "r"].map(
    (name) =>
      new prom.Histogram({
        name,
        help: name,
        labelNames,
        buckets: [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000],
        registers: [registry],
      }),
  );
  const values = Object.fromEntries(labelNames.map((name) => [name, `value-of-${name}`]));
  const child = counter.labels(values);
  const children = histograms.map((h) => h.labels(values));
  const promBatch = 100;
  cases.push({
    group: "metrics",
    name: "prom-client child inc() + 3 observe(), Istio's 25 labels",
    batch: promBatch,
    fn: () => {
      for (let i = 0; i < promBatch; i++) {
        child.inc();
        for (const h of children) h.observe(i % 7);
      }
    },
  });

  // A scrape of a big mesh: every endpoint has carried traffic, so each service has its Istio
  // series and each endpoint its remora_upstream_rq_total series.
  const mesh = meshSubject(1000, 10);
  const big = new mod.RuntimeMetrics(mesh, options);
  big.addListener("outbound", "outbound", { connections: 12, accepted: 3000 });
  const meshRecord = exchangeRecord("outbound");
  for (const cluster of mesh.clusterList) {
    meshRecord.cluster = cluster.key;
    for (const endpoint of cluster.endpoints) {
      meshRecord.endpoint = endpoint.id;
      big.exchanges.report(meshRecord);
    }
  }
  let bytes = 0;
  cases.push({
    group: "metrics",
    name: "scrape (exposition text), 1,000 services × 10 endpoints",
    batch: 1,
    fn: async () => {
      // What the scrape endpoints send: the chunks as written, no string made.
      bytes = 0;
      for (const chunk of await big.expositionChunks()) bytes += chunk.length;
    },
    note: () =>
      `The 1,000 × 10 scrape is ${(bytes / 1e6).toFixed(1)} MB of text (Istio's 25 labels on 67 lines per service).`,
  });
  return cases;
}

function fmt(n: number, digits: number): string {
  return n.toLocaleString("en-US", {
    maximumFractionDigits: digits,
    minimumFractionDigits: digits,
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      time: { type: "string", default: "1000" },
      only: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    process.stdout.write(
      "Usage: npm run bench:micro -- [--time MS] [--only GROUP]\n\nMicro-benchmarks of request-head parsing, balancers and metrics.\n" +
        "  --time MS     measuring time per task (default 1000)\n" +
        "  --only GROUP  run one group: parser, balancer or metrics\n",
    );
    return;
  }
  const time = Number(values.time);
  const cases: MicroCase[] = [];
  const skipped: string[] = [];
  for (const [what, key, load] of [
    ["request-head parsing", "parser", parserCases],
    ["balancer pick", "balancer", balancerCases],
    ["metrics", "metrics", metricsCases],
  ] as const) {
    if (values.only !== undefined && values.only !== key) continue;
    const result = await load();
    if (typeof result === "string") skipped.push(`${what}: ${result}`);
    else cases.push(...result);
  }
  skipped.push(...partlySkipped);
  for (const s of skipped) process.stderr.write(`bench:micro: skipping ${s}\n`);

  const bench = new Bench({ time, warmupTime: Math.min(500, time / 2) });
  for (const c of cases) bench.add(c.name, c.fn);
  process.stderr.write(
    `bench:micro: ${cases.length} tasks, ~${((cases.length * time) / 1000).toFixed(0)} s\n`,
  );
  await bench.run();

  const lines = [
    `## remora micro-benchmarks — Node ${process.versions.node}`,
    "",
    "| group | task | ns / op | median ns / op | ops/s | ± | samples |",
    "|---|---|---:|---:|---:|---:|---:|",
  ];
  for (const c of cases) {
    const task = bench.getTask(c.name);
    const r = task?.result;
    if (r === undefined || !("latency" in r)) {
      lines.push(`| ${c.group} | ${c.name} | — | — | — | — | ${r?.state ?? "not run"} |`);
      continue;
    }
    // latency is ms per task call of `batch` operations.
    const nsPerOp = (r.latency.mean * 1e6) / c.batch;
    const medianNsPerOp = (r.latency.p50 * 1e6) / c.batch;
    const opsPerSec = (c.batch * 1000) / r.latency.mean;
    lines.push(
      `| ${c.group} | ${c.name} | ${fmt(nsPerOp, 1)} | ${fmt(medianNsPerOp, 1)} | ${fmt(opsPerSec, 0)} | ${fmt(r.latency.rme, 2)}% | ${r.latency.samplesCount} |`,
    );
  }
  for (const c of cases) if (c.note !== undefined) lines.push("", c.note());
  for (const s of skipped) lines.push("", `Skipped ${s}.`);
  process.stdout.write(`${lines.join("\n")}\n`);
  if (sink === Number.MIN_SAFE_INTEGER) process.stdout.write("\n");
}

main().catch((err: unknown) => {
  process.stderr.write(
    `bench:micro: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exitCode = 1;
});
