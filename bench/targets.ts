/**
 * What the benchmark measures: one entry per target in TARGETS, each saying whether it can
 * run here (and its version), how to start it in front of the backend on the proxy core, and
 * whether it balances several endpoints. Adding a target (say, remora with mTLS) is adding an
 * entry; nothing else in the harness names targets.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ALLOW_UNSUPPORTED_ENV } from "../proxy/node-version.js";
import { nginxConfig } from "./backend.js";
import { commandText, freePort, type Launched, launch, waitForHttp } from "./launch.js";

/** The Host every request carries; remora routes it to the backend service. */
export const SERVICE_NAME = "bench";

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DIST_BENCH = fileURLToPath(new URL("./", import.meta.url));
const REMORA_CLI = join(REPO_ROOT, "dist", "proxy", "cli.js");

export interface TargetContext {
  /** Backend addresses, `127.0.0.1:PORT`; more than one in the failover scenario. */
  readonly backends: readonly string[];
  /** Core to pin the target to, or null. */
  readonly core: number | null;
  /** A private temp dir for generated configs. */
  readonly dir: string;
}

export interface RunningTarget {
  /** Base URL the load generator sends to. */
  readonly url: string;
  /** Root of the process tree to charge CPU and memory to; null for direct. */
  readonly pid: number | null;
  stop(): Promise<void>;
}

/** Whether a target can run here: with the versions of what it runs, or why not. */
export type Availability =
  | { readonly ok: true; readonly versions: Readonly<Record<string, string>> }
  | { readonly ok: false; readonly reason: string };

export interface TargetSpec {
  readonly id: string;
  readonly label: string;
  /** Balances across several endpoints and survives one dying (the failover scenario). */
  readonly multiEndpoint: boolean;
  /** Run only when named with --target (variants such as remora with its access log on). */
  readonly optIn?: boolean;
  available(): Availability;
  /** Starts the target and resolves once a request through it succeeds; throws with a reason. */
  start(ctx: TargetContext): Promise<RunningTarget>;
  /** For Node.js programs: the same target run by another Node.js binary (`--compare-node`). */
  forNode?(node: NodeRuntime): TargetSpec;
}

/** A Node.js binary to run the Node.js targets with, besides the one running the harness. */
export interface NodeRuntime {
  readonly path: string;
  /** As `node --version` prints it, without the "v": "20.20.2". */
  readonly version: string;
}

/** The harness's own Node.js: what `npm run bench` runs (package.json's pinned Node). */
const OWN_NODE: NodeRuntime = { path: process.execPath, version: process.versions.node };

/** Asks a Node.js binary its version; throws when it is not one. */
export function nodeRuntime(path: string): NodeRuntime {
  const out = commandText(path, ["--version"])?.trim();
  const version = out === undefined ? undefined : /^v(\d+\.\d+\.\d+)$/.exec(out)?.[1];
  if (version === undefined) throw new Error(`--compare-node ${path}: not a Node.js binary`);
  return { path, version };
}

/** "remora@node20": a variant's id, from its base id and Node.js major version. */
function variantId(id: string, node: NodeRuntime): string {
  return `${id}@node${node.version.split(".")[0]}`;
}

/**
 * The targets to run: TARGETS, and after each Node.js program one variant per extra runtime,
 * so "remora on Node 20" sits next to "remora" in every table.
 */
export function targetsWith(runtimes: readonly NodeRuntime[]): TargetSpec[] {
  const out: TargetSpec[] = [];
  for (const t of TARGETS) {
    out.push(t);
    if (t.forNode === undefined) continue;
    for (const node of runtimes) out.push(t.forNode(node));
  }
  return out;
}

/** The installed version of an npm package, or null when it is not installed. */
export function packageVersion(name: string): string | null {
  try {
    const text = readFileSync(join(REPO_ROOT, "node_modules", name, "package.json"), "utf8");
    return (JSON.parse(text) as { version?: string }).version ?? null;
  } catch {
    return null;
  }
}

const PROBE_HEADERS = { host: SERVICE_NAME };

/** Waits until GET / through the target returns 200; stops the process if it never does. */
async function readyThrough(
  proc: Launched,
  url: string,
  timeoutMs = 10_000,
): Promise<RunningTarget> {
  try {
    await waitForHttp(proc, `${url}/`, { timeoutMs, headers: PROBE_HEADERS });
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return { url, pid: proc.pid, stop: () => proc.stop() };
}

/* ------------------------------------------------------------------ direct */

const direct: TargetSpec = {
  id: "direct",
  label: "direct (no proxy)",
  multiEndpoint: false,
  available: () => ({ ok: true, versions: {} }),
  async start(ctx) {
    return { url: `http://${ctx.backends[0]}`, pid: null, stop: async () => {} };
  },
};

/* ------------------------------------------------------------------ remora */

function remoraVersion(): string {
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
    version?: string;
  };
  const rev = commandText("git", ["-C", REPO_ROOT, "rev-parse", "--short", "HEAD"])?.trim();
  const dirty = commandText("git", [
    "-C",
    REPO_ROOT,
    "status",
    "--porcelain",
    "--untracked-files=no",
  ])?.trim();
  return `${pkg.version ?? "?"}${rev ? ` (${rev}${dirty ? "+dirty" : ""})` : ""}`;
}

function remoraAvailable(): Availability {
  if (!existsSync(REMORA_CLI)) {
    return {
      ok: false,
      reason: "dist/proxy/cli.js is missing (run `npm run build` once the proxy exists)",
    };
  }
  return { ok: true, versions: { remora: remoraVersion() } };
}

/** Starts `remora run ARGS` (ARGS from the chosen ports) with `node` and waits until it proxies. */
async function startRemoraWith(
  ctx: TargetContext,
  node: NodeRuntime,
  args: (port: number, admin: number) => string[],
): Promise<RunningTarget> {
  const port = await freePort();
  const admin = await freePort();
  const how = remoraLaunch();
  // An older Node than remora supports runs only to be measured against the supported one.
  const env = node === OWN_NODE ? how.env : { ...how.env, [ALLOW_UNSUPPORTED_ENV]: "1" };
  const proc = launch(
    "remora",
    node.path,
    [...how.flags, REMORA_CLI, "run", ...args(port, admin)],
    {
      core: ctx.core,
      env: { ...process.env, ...env },
    },
  );
  try {
    await waitForHttp(proc, `http://127.0.0.1:${admin}/ready`, { timeoutMs: 15_000 });
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return readyThrough(proc, `http://127.0.0.1:${port}`);
}

/** How a remora target differs from plain quick mode. */
interface RemoraVariant {
  readonly id: string;
  readonly label: string;
  /** The Node.js that runs it (default: the harness's own). */
  readonly node?: NodeRuntime;
  /** Extra quick-mode flags. */
  readonly extraArgs?: (ctx: TargetContext) => string[];
  /** Runs only when named with --target. */
  readonly optIn?: boolean;
}

/** remora as users start it locally: quick mode (metrics on, served by the admin API). */
function remoraTarget(variant: RemoraVariant): TargetSpec {
  const node = variant.node ?? OWN_NODE;
  return {
    id: variant.id,
    label: variant.label,
    multiEndpoint: true,
    ...(variant.optIn === true ? { optIn: true } : {}),
    available: remoraAvailable,
    start: (ctx) =>
      startRemoraWith(ctx, node, (port, admin) => [
        "--listen",
        String(port),
        "--admin-port",
        String(admin),
        "--service",
        `${SERVICE_NAME}=${ctx.backends.join(",")}`,
        ...(variant.extraArgs?.(ctx) ?? []),
      ]),
  };
}

const remora: TargetSpec = {
  ...remoraTarget({ id: "remora", label: "remora" }),
  forNode: (node) =>
    remoraTarget({ id: variantId("remora", node), label: `remora, Node ${node.version}`, node }),
};

/** The access log's cost (docs/access-log.md): every exchange logged to a file, or to /dev/null. */
const remoraAccessLog = remoraTarget({
  id: "remora-access-log",
  label: "remora, access log to a file",
  extraArgs: (ctx) => ["--access-log", join(ctx.dir, `access-${Date.now()}.log`)],
  optIn: true,
});
const remoraAccessLogNull = remoraTarget({
  id: "remora-access-log-null",
  label: "remora, access log to /dev/null",
  extraArgs: () => ["--access-log", "/dev/null"],
  optIn: true,
});

/** A remora target that runs quick mode's config as a file, with one thing changed. */
function remoraVariant(id: string, label: string, variant: ConfigVariant): TargetSpec {
  return {
    id,
    label,
    multiEndpoint: true,
    optIn: true,
    available: remoraAvailable,
    start: (ctx) =>
      startRemoraWith(ctx, OWN_NODE, (port, admin) => {
        const file = join(ctx.dir, `${id}-${port}.yaml`);
        writeFileSync(file, remoraVariantConfig(port, admin, ctx.backends, variant));
        return ["-c", file];
      }),
  };
}

/**
 * `remora` with metrics disabled (no RuntimeMetrics, no reporter in the chain), to compare with
 * `remora` in the same run, the cost of metrics on the hot path.
 */
const remoraMetricsOff = remoraVariant("remora-metrics-off", "remora, metrics off", {
  metrics: false,
});

/** `remora` balancing with least-request (power of two choices) instead of round-robin. */
const remoraLeastRequest = remoraVariant("remora-least-request", "remora, least-request", {
  policy: "least-request",
});

/** What a variant changes in quick mode's config. */
export interface ConfigVariant {
  /** false: metrics.enabled false. */
  readonly metrics?: false;
  /** trafficPolicy.loadBalancer.policy of the service. */
  readonly policy?: string;
}

/** Quick mode's config (proxy/config/quick.ts) as a file, with `variant` applied. */
export function remoraVariantConfig(
  port: number,
  admin: number,
  backends: readonly string[],
  variant: ConfigVariant,
): string {
  const metrics = variant.metrics === false ? "enabled: false, port: null" : "port: null";
  const policy =
    variant.policy === undefined
      ? ""
      : `    trafficPolicy: { loadBalancer: { policy: ${variant.policy} } }\n`;
  return `# Generated by remora's bench/targets.ts: quick mode's config with ${JSON.stringify(variant)}.
admin: { port: ${admin} }
probes: { port: null }
metrics: { ${metrics} }
listeners: [{ name: outbound, kind: outbound, port: ${port} }]
services:
  - name: ${SERVICE_NAME}
${policy}    endpoints:
${backends.map((b) => `      - { address: "${b}" }`).join("\n")}
`;
}

/**
 * How the `remora` command starts Node.js: the environment assignments and flags on cli.js's
 * shebang line (`#!/usr/bin/env -S [NAME=VALUE ...] node [FLAGS ...]`), so the benchmark
 * measures remora as users run it.
 */
function remoraLaunch(): { env: Record<string, string>; flags: string[] } {
  const first = readFileSync(REMORA_CLI, "latin1").split("\n", 1)[0] ?? "";
  const words = /^#!\/usr\/bin\/env -S (.*)$/.exec(first)?.[1]?.trim().split(/\s+/) ?? [];
  const env: Record<string, string> = {};
  let at = 0;
  for (; at < words.length && words[at]!.includes("="); at++) {
    const [name, ...value] = words[at]!.split("=");
    env[name!] = value.join("=");
  }
  return { env, flags: words.slice(at + 1) };
}

/** The real mesh path (client → remora outbound → mTLS → remora inbound → app); not built yet. */
const remoraMtls: TargetSpec = {
  id: "remora-mtls",
  label: "remora, 2 hops mTLS",
  multiEndpoint: true,
  available: () => ({ ok: false, reason: "mTLS not built yet" }),
  start: () => Promise.reject(new Error("mTLS not built yet")),
};

/* ------------------------------------------------------------------ Node.js peers */

function nodePeer(
  id: string,
  label: string,
  script: string,
  packages: readonly string[],
  node: NodeRuntime = OWN_NODE,
): TargetSpec {
  const file = join(DIST_BENCH, script);
  const own = node === OWN_NODE;
  return {
    id: own ? id : variantId(id, node),
    label: own ? label : `${label}, Node ${node.version}`,
    // Both take a single upstream URL; balancing is left to the user's own code.
    multiEndpoint: false,
    available() {
      const versions = packages.map((p) => [p, packageVersion(p)] as const);
      const missing = versions.filter(([, v]) => v === null).map(([p]) => p);
      if (missing.length > 0)
        return { ok: false, reason: `${missing.join(", ")} not installed (npm install)` };
      if (!existsSync(file)) return { ok: false, reason: `${script} not built (npm run build)` };
      return { ok: true, versions: Object.fromEntries(versions) as Record<string, string> };
    },
    async start(ctx) {
      const port = await freePort();
      const proc = launch(
        label,
        node.path,
        [file, "--port", String(port), "--upstream", `http://${ctx.backends[0]}`],
        { core: ctx.core },
      );
      return readyThrough(proc, `http://127.0.0.1:${port}`);
    },
    ...(own
      ? { forNode: (other: NodeRuntime) => nodePeer(id, label, script, packages, other) }
      : {}),
  };
}

const nodeHttpProxy = nodePeer("node-http-proxy", "node-http-proxy", "peer-http-proxy.js", [
  "http-proxy",
]);
const fastifyHttpProxy = nodePeer("fastify-http-proxy", "@fastify/http-proxy", "peer-fastify.js", [
  "@fastify/http-proxy",
  "fastify",
]);

/* ------------------------------------------------------------------ HAProxy */

/** HAProxy as a sidecar would run it: one thread, keep-alive both sides, retries on connect failure. */
export function haproxyConfig(port: number, backends: readonly string[]): string {
  const servers = backends
    .map(
      (b, i) => `  server s${i} ${b}${backends.length > 1 ? " check inter 1s fall 2 rise 2" : ""}`,
    )
    .join("\n");
  return `# Generated by remora's bench/targets.ts.
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  option http-keep-alive
  option redispatch
  retries 2
  retry-on conn-failure empty-response
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  balance roundrobin
${servers}
`;
}

const haproxy: TargetSpec = {
  id: "haproxy",
  label: "HAProxy",
  multiEndpoint: true,
  available() {
    const out = commandText("haproxy", ["-v"]);
    if (out === null) return { ok: false, reason: "haproxy not on PATH (apt-get install haproxy)" };
    return {
      ok: true,
      versions: { haproxy: /version (\S+)/.exec(out)?.[1] ?? out.split("\n")[0] ?? "?" },
    };
  },
  async start(ctx) {
    const port = await freePort();
    const conf = join(ctx.dir, `haproxy-${port}.cfg`);
    writeFileSync(conf, haproxyConfig(port, ctx.backends));
    // -db: stay in the foreground, one process (no master-worker).
    const proc = launch("haproxy", "haproxy", ["-db", "-f", conf], { core: ctx.core });
    return readyThrough(proc, `http://127.0.0.1:${port}`);
  },
};

/* ------------------------------------------------------------------ nginx */

/**
 * nginx as a reverse proxy with pooled keep-alive upstream connections. Request and response
 * streaming through memory only (no temp files), as one would configure it for a sidecar.
 */
export function nginxProxyConfig(dir: string, port: number, backends: readonly string[]): string {
  const servers = backends.map((b) => `    server ${b} max_fails=1 fail_timeout=10s;`).join("\n");
  return nginxConfig(
    dir,
    "bench/targets.ts",
    `  upstream be {
${servers}
    keepalive 64;
    keepalive_requests 10000000;
  }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      proxy_pass http://be;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout;
      client_max_body_size 0;
      proxy_request_buffering off;
      proxy_max_temp_file_size 0;
    }
  }
`,
  );
}

const nginx: TargetSpec = {
  id: "nginx",
  label: "nginx",
  multiEndpoint: true,
  available() {
    const out = commandText("nginx", ["-v"]);
    if (out === null)
      return { ok: false, reason: "nginx not on PATH (apt-get install nginx-light)" };
    return { ok: true, versions: { nginx: /nginx\/(\S+)/.exec(out)?.[1] ?? out.trim() } };
  },
  async start(ctx) {
    const port = await freePort();
    const own = join(ctx.dir, `nginx-proxy-${port}`);
    mkdirSync(own, { recursive: true });
    const conf = join(own, "nginx.conf");
    writeFileSync(conf, nginxProxyConfig(own, port, ctx.backends));
    const proc = launch("nginx", "nginx", ["-p", own, "-c", conf, "-e", join(own, "error.log")], {
      core: ctx.core,
    });
    return readyThrough(proc, `http://127.0.0.1:${port}`);
  },
};

/** Every target, in the order tables list them. */
export const TARGETS: readonly TargetSpec[] = [
  direct,
  remora,
  remoraMetricsOff,
  remoraLeastRequest,
  remoraAccessLog,
  remoraAccessLogNull,
  remoraMtls,
  nodeHttpProxy,
  fastifyHttpProxy,
  haproxy,
  nginx,
];
