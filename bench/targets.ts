/**
 * What the benchmark measures: one entry per target in TARGETS, each saying whether it can
 * run here (and its version), how to start it in front of the backend on the proxy core, and
 * whether it balances several endpoints. Adding a target (say, remora with mTLS) is adding an
 * entry; nothing else in the harness names targets.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { ALLOW_UNSUPPORTED_ENV } from "../proxy/node-version.js";
import { nginxConfig } from "./backend.js";
import { remoraKubernetesConfig } from "./churn.js";
import { commandText, freePort, type Launched, launch, waitForHttp } from "./launch.js";
import type { Comparison } from "./report.js";
import type { Resilience } from "./scenarios.js";
import { remoraSoakConfig } from "./soak.js";
import { type ClientTls, clientTlsOf, type TlsMaterial } from "./tls-material.js";

/** The Host every request carries; remora routes it to the backend service. */
export const SERVICE_NAME = "bench";

// From dist/bench when built, from bench/ when a test imports the source.
const REPO_ROOT = fileURLToPath(
  new URL(import.meta.url.includes("/dist/bench/") ? "../../" : "../", import.meta.url),
);
const DIST_BENCH = fileURLToPath(new URL("./", import.meta.url));
const REMORA_CLI = join(REPO_ROOT, "dist", "proxy", "cli.js");

export interface TargetContext {
  /** Backend addresses, `127.0.0.1:PORT`; more than one in the failover scenario. */
  readonly backends: readonly string[];
  /** Core to pin the target to, or null. */
  readonly core: number | null;
  /** A private temp dir for generated configs. */
  readonly dir: string;
  /**
   * Set by the failover-503 and failover-hang scenarios: configure retries, per-try timeouts
   * and health checks with these figures (each target in its own terms). Absent: as shipped.
   */
  readonly resilience?: Resilience;
  /** The run's certificates; present when a selected target needs them (TargetSpec.needsTls). */
  readonly tls?: TlsMaterial;
  /**
   * The churn scenario: a kubeconfig for its fake API server. The target takes its services from
   * the Kubernetes API (the load's Host, SERVICE_NAME, is one of them) instead of `backends`.
   */
  readonly kubeconfig?: string;
  /**
   * The soak scenario: a discovery file (bench/soak.ts writes and rewrites it). The target takes
   * its endpoints from it instead of `backends`.
   */
  readonly discoveryFile?: string;
}

export interface RunningTarget {
  /** Base URL the load generator sends to. */
  readonly url: string;
  /** Set when the target terminates mTLS: the client certificate to present (url is https). */
  readonly tls?: ClientTls;
  /** Root of the process tree to charge CPU and memory to; null for direct. */
  readonly pid: number | null;
  /** remora's admin API (`http://127.0.0.1:PORT`), where the churn scenario reads its metrics. */
  readonly admin?: string;
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
  /** Needs the run's certificates (TargetContext.tls). */
  readonly needsTls?: boolean;
  /**
   * Terminates the client's mTLS: the load generator connects over https presenting a client
   * certificate (so autocannon stands in for wrk), and the handshake scenario measures it.
   */
  readonly clientMtls?: boolean;
  /** The rows its ratios compare with, where not direct and haproxy (see report.ts). */
  readonly compare?: Comparison;
  /** Can take its services from the Kubernetes API (TargetContext.kubeconfig; the churn scenario). */
  readonly kubernetes?: boolean;
  /** Can take its endpoints from a discovery file (TargetContext.discoveryFile; the soak scenario). */
  readonly discoveryFile?: boolean;
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

/**
 * Waits until GET / through the target returns 200 (over mTLS with `tls`); stops the process
 * if it never does.
 */
async function readyThrough(
  proc: Launched,
  url: string,
  tls?: ClientTls,
  timeoutMs = 10_000,
): Promise<RunningTarget> {
  try {
    await waitForHttp(proc, `${url}/`, {
      timeoutMs,
      headers: PROBE_HEADERS,
      ...(tls === undefined ? {} : { tls }),
    });
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return { url, pid: proc.pid, stop: () => proc.stop(), ...(tls === undefined ? {} : { tls }) };
}

/** The run's certificates, or an error naming the target that needed them. */
function tlsOf(ctx: TargetContext, id: string): TlsMaterial {
  if (ctx.tls === undefined) throw new Error(`${id} needs the run's certificates (ctx.tls)`);
  return ctx.tls;
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

/**
 * Starts `remora run ARGS` (ARGS from the chosen ports) with `node` and waits until it proxies;
 * with `tls`, over mTLS presenting that client certificate.
 */
async function startRemoraWith(
  ctx: TargetContext,
  node: NodeRuntime,
  args: (port: number, admin: number) => string[],
  tls?: ClientTls,
): Promise<RunningTarget> {
  const port = await freePort();
  const admin = await freePort();
  const how = remoraLaunch();
  // An older Node than remora supports runs only to be measured against the supported one.
  const env = node === OWN_NODE ? how.env : { ...how.env, [ALLOW_UNSUPPORTED_ENV]: "1" };
  const proc = launch(
    "remora",
    node.path,
    [...how.flags, ...extraNodeFlags(), REMORA_CLI, "run", ...args(port, admin)],
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
  const running = await readyThrough(
    proc,
    `${tls === undefined ? "http" : "https"}://127.0.0.1:${port}`,
    tls,
  );
  return { ...running, admin: `http://127.0.0.1:${admin}` };
}

/** How a remora target differs from plain quick mode. */
interface RemoraVariant {
  readonly id: string;
  readonly label: string;
  /** The Node.js that runs it (default: the harness's own). */
  readonly node?: NodeRuntime;
  /** Log every exchange to this file (quick mode's --access-log). */
  readonly accessLog?: (ctx: TargetContext) => string;
  /** Runs only when named with --target. */
  readonly optIn?: boolean;
}

/**
 * remora as users start it locally: quick mode (metrics on, served by the admin API). Asked for
 * resilience, the same config as a file (quick mode has no flags for retries or health), with
 * the service's retries and traffic policy set (remoraVariantConfig).
 */
function remoraTarget(variant: RemoraVariant): TargetSpec {
  const node = variant.node ?? OWN_NODE;
  return {
    id: variant.id,
    label: variant.label,
    multiEndpoint: true,
    kubernetes: true,
    discoveryFile: true,
    ...(variant.optIn === true ? { optIn: true } : {}),
    available: remoraAvailable,
    start: (ctx) => {
      const accessLog = variant.accessLog?.(ctx);
      const kubeconfig = ctx.kubeconfig;
      if (kubeconfig !== undefined) {
        return startRemoraWith(ctx, node, (port, admin) => {
          const file = join(ctx.dir, `${variant.id}-${port}.yaml`);
          writeFileSync(file, remoraKubernetesConfig(port, admin, kubeconfig, accessLog));
          return ["-c", file];
        });
      }
      const discoveryFile = ctx.discoveryFile;
      if (discoveryFile !== undefined) {
        return startRemoraWith(ctx, node, (port, admin) => {
          const file = join(ctx.dir, `${variant.id}-${port}.yaml`);
          writeFileSync(file, remoraSoakConfig(port, admin, discoveryFile));
          return ["-c", file];
        });
      }
      const resilience = ctx.resilience;
      if (resilience !== undefined) {
        return startRemoraWith(ctx, node, (port, admin) =>
          remoraConfigFile(ctx, variant.id, port, admin, {
            resilience,
            ...(accessLog === undefined ? {} : { accessLog }),
          }),
        );
      }
      return startRemoraWith(ctx, node, (port, admin) => [
        "--listen",
        String(port),
        "--admin-port",
        String(admin),
        "--service",
        `${SERVICE_NAME}=${ctx.backends.join(",")}`,
        ...(accessLog === undefined ? [] : ["--access-log", accessLog]),
      ]);
    },
  };
}

/** Writes the variant's config for this run into the temp dir; the `remora run` arguments. */
function remoraConfigFile(
  ctx: TargetContext,
  id: string,
  port: number,
  admin: number,
  variant: ConfigVariant,
): string[] {
  const file = join(ctx.dir, `${id}-${port}.yaml`);
  writeFileSync(file, remoraVariantConfig(port, admin, ctx.backends, variant));
  return ["-c", file];
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
  accessLog: (ctx) => join(ctx.dir, `access-${Date.now()}.log`),
  optIn: true,
});
const remoraAccessLogNull = remoraTarget({
  id: "remora-access-log-null",
  label: "remora, access log to /dev/null",
  accessLog: () => "/dev/null",
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
      startRemoraWith(ctx, OWN_NODE, (port, admin) =>
        remoraConfigFile(
          ctx,
          id,
          port,
          admin,
          ctx.resilience === undefined ? variant : { ...variant, resilience: ctx.resilience },
        ),
      ),
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
  /** The service's retries and health, as remoraResilience writes them. */
  readonly resilience?: Resilience;
  /** accessLog.path, enabled (quick mode's --access-log). */
  readonly accessLog?: string;
}

/**
 * A duration as the configs below write it: "30s" when whole seconds, else "250ms" (which
 * remora, HAProxy and nginx's timeouts all read; nginx's fail_timeout takes whole seconds only,
 * so it is rounded up there).
 */
export function configDuration(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** Quick mode's config (proxy/config/quick.ts) as a file, with `variant` applied. */
export function remoraVariantConfig(
  port: number,
  admin: number,
  backends: readonly string[],
  variant: ConfigVariant,
): string {
  const metrics = variant.metrics === false ? "enabled: false, port: null" : "port: null";
  const { resilience, ...rest } = variant;
  const lb = variant.policy === undefined ? [] : [`loadBalancer: { policy: ${variant.policy} }`];
  const health = resilience === undefined ? null : remoraResilience(resilience);
  const policy = [...lb, ...(health?.trafficPolicy ?? [])];
  const accessLog =
    variant.accessLog === undefined
      ? ""
      : `accessLog: { enabled: true, path: ${JSON.stringify(variant.accessLog)} }\n`;
  const changes = [
    ...(Object.keys(rest).length > 0 ? [JSON.stringify(rest)] : []),
    ...(resilience === undefined ? [] : [`resilience ${JSON.stringify(resilience)}`]),
  ].join(" and ");
  return `# Generated by remora's bench/targets.ts: quick mode's config with ${changes || "{}"}.
admin: { port: ${admin} }
probes: { port: null }
metrics: { ${metrics} }
${accessLog}listeners: [{ name: outbound, kind: outbound, port: ${port} }]
services:
  - name: ${SERVICE_NAME}
${health === null ? "" : health.retries}${
  policy.length === 0
    ? ""
    : `    trafficPolicy:\n${policy.map((line) => `      ${line}\n`).join("")}`
}    endpoints:
${backends.map((b) => `      - { address: "${b}" }`).join("\n")}
`;
}

/**
 * `resilience` in remora's (Istio's) terms, as YAML lines for one service: VirtualService
 * retries and DestinationRule outlier detection, plus an active health check (Envoy's; Istio
 * leaves those to Kubernetes probes).
 * - retries: `attempts` retries, each try cut at `perTryTimeout`; retryOn
 *   "connect-failure,reset,5xx" retries connect failures, resets, per-try timeouts (Envoy counts
 *   them as resets) and any 5xx. Istio's default retryOn would retry the 503s, but not a try cut
 *   by perTryTimeout, so it would leave the hung backend's requests to fail.
 * - outlierDetection: ejected after `consecutiveErrors` failures in a row (5xx, connect
 *   failures, resets and timeouts alike) for `ejectionMs`; maxEjectionPercent stays Istio's 10,
 *   which still lets one endpoint of three go (at least one may always be ejected).
 * - healthCheck: GET the health path every interval; out after `fall` failures, back after
 *   `rise` passes, as HAProxy's `check inter fall rise`.
 * remora's retry budget (retries in flight ≤ max(3, 20% of active requests), backoff waits
 * included) applies on top and has no setting; `connectionPool.http.maxRetries` is left
 * unlimited, Istio's default. HAProxy and nginx have no such budget.
 */
export function remoraResilience(r: Resilience): {
  readonly retries: string;
  readonly trafficPolicy: readonly string[];
} {
  const hc = r.healthCheck;
  return {
    retries:
      `    retries: { attempts: ${r.retries}, perTryTimeout: ${configDuration(r.perTryTimeoutMs)}, ` +
      `retryOn: "connect-failure,reset,5xx" }\n`,
    trafficPolicy: [
      `connectionPool: { tcp: { connectTimeout: ${configDuration(r.connectTimeoutMs)} } }`,
      `outlierDetection: { consecutive5xxErrors: ${r.consecutiveErrors}, baseEjectionTime: ${configDuration(r.ejectionMs)} }`,
      `healthCheck: { path: ${hc.path}, interval: ${configDuration(hc.intervalMs)}, timeout: ${configDuration(hc.timeoutMs)}, ` +
        `unhealthyThreshold: ${hc.fall}, healthyThreshold: ${hc.rise} }`,
    ],
  };
}

/**
 * Extra Node.js flags for every remora the harness starts, from `REMORA_BENCH_NODE_FLAGS`
 * (space-separated), e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to profile a scenario.
 */
function extraNodeFlags(): string[] {
  return (process.env.REMORA_BENCH_NODE_FLAGS ?? "").split(/\s+/).filter((flag) => flag !== "");
}

/**
 * How the `remora` command starts Node.js: the environment assignments and flags on cli.js's
 * shebang line (`#!/usr/bin/env -S [NAME=VALUE ...] node [FLAGS ...]`), so the benchmark
 * measures remora as users run it.
 */
export function remoraLaunch(): { env: Record<string, string>; flags: string[] } {
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

/* ------------------------------------------------------------------ remora with mTLS */

/** The top-level `tls:` of a remora config: this workload's identity. */
function identityYaml(identity: { certFile: string; keyFile: string }, caFile: string): string {
  return `tls: { certFile: ${JSON.stringify(identity.certFile)}, keyFile: ${JSON.stringify(identity.keyFile)}, caFile: ${JSON.stringify(caFile)} }`;
}

/**
 * remora terminating mTLS in front of one app, as a sidecar's inbound listener does: listener
 * tls.mode STRICT (the client must present a certificate from the trust bundle), the workload
 * identity `tls.server`, forwarding plaintext to `app`. Metrics on, as in quick mode.
 */
export function remoraInboundTlsConfig(
  port: number,
  admin: number,
  app: string,
  tls: TlsMaterial,
): string {
  return `# Generated by remora's bench/targets.ts: an inbound listener terminating mTLS (STRICT) in front of the backend.
admin: { port: ${admin} }
probes: { port: null }
metrics: { port: null }
${identityYaml(tls.server, tls.caFile)}
listeners:
  - { name: inbound, kind: inbound, address: 127.0.0.1, port: ${port}, app: "${app}", tls: { mode: STRICT } }
services: []
`;
}

/**
 * The client side of the two-hop path: an outbound listener routing Host `bench` to the other
 * remora's inbound listener, originating mTLS as Istio's DestinationRule says (ISTIO_MUTUAL:
 * present the workload identity `tls.outbound`, accept only a server certificate from the trust
 * bundle naming the server's SPIFFE ID).
 */
export function remoraOutboundMtlsConfig(
  port: number,
  admin: number,
  inbound: string,
  tls: TlsMaterial,
): string {
  return `# Generated by remora's bench/targets.ts: an outbound listener originating mTLS (ISTIO_MUTUAL) to a remora inbound listener.
admin: { port: ${admin} }
probes: { port: null }
metrics: { port: null }
${identityYaml(tls.outbound, tls.caFile)}
listeners: [{ name: outbound, kind: outbound, port: ${port} }]
services:
  - name: ${SERVICE_NAME}
    trafficPolicy:
      tls: { mode: ISTIO_MUTUAL, subjectAltNames: [${JSON.stringify(tls.server.spiffeId)}] }
    endpoints:
      - { address: "${inbound}" }
`;
}

/** One hop, TLS terminated: the figure to hold against HAProxy terminating TLS (haproxy-tls). */
const remoraTls: TargetSpec = {
  id: "remora-tls",
  label: "remora, mTLS termination",
  // One inbound listener forwards to one app; there is nothing to balance.
  multiEndpoint: false,
  needsTls: true,
  clientMtls: true,
  compare: { haproxy: "haproxy-tls", plaintext: "remora" },
  available() {
    const base = remoraAvailable();
    // The TLS library differs from HAProxy's: the report names both.
    return base.ok
      ? { ok: true, versions: { ...base.versions, "node OpenSSL": process.versions.openssl } }
      : base;
  },
  start(ctx) {
    const tls = tlsOf(ctx, "remora-tls");
    return startRemoraWith(
      ctx,
      OWN_NODE,
      (port, admin) => {
        const file = join(ctx.dir, `remora-tls-${port}.yaml`);
        writeFileSync(file, remoraInboundTlsConfig(port, admin, ctx.backends[0]!, tls));
        return ["-c", file];
      },
      clientTlsOf(tls),
    );
  },
};

/**
 * Whether the built remora accepts a config: null when `remora validate` does, else its error
 * (the first lines). Lets a target that needs a feature still being built skip with the reason
 * until the feature lands, and run from then on without a change here.
 */
export function remoraRejects(configText: string): string | null {
  const dir = mkdtempSync(join(tmpdir(), "remora-bench-validate-"));
  try {
    const file = join(dir, "remora.yaml");
    writeFileSync(file, configText);
    const how = remoraLaunch();
    const out = spawnSyncText(
      process.execPath,
      [...how.flags, REMORA_CLI, "validate", "-c", file],
      {
        ...process.env,
        ...how.env,
      },
    );
    if (out.status === 0) return null;
    const text = out.text
      .replaceAll(file, "<config>")
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line !== "")
      .slice(0, 4)
      .join(" ");
    return text || `remora validate exited with ${out.status}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs a command to its end; its exit status and stdout+stderr together. */
function spawnSyncText(
  cmd: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
): { status: number | null; text: string } {
  const out = spawnSync(cmd, args, { encoding: "utf8", env, timeout: 30_000 });
  return { status: out.status, text: `${out.stdout ?? ""}${out.stderr ?? ""}` };
}

/** The two-hop config remora must accept for remora-mtls to run (paths need not exist). */
const MTLS_PROBE_CONFIG = remoraOutboundMtlsConfig(15001, 15000, "127.0.0.1:15006", {
  keyType: "rsa",
  caFile: "ca.crt",
  server: {
    certFile: "server.crt",
    keyFile: "server.key",
    pemFile: "server.pem",
    spiffeId: "spiffe://cluster.local/ns/bench/sa/server",
  },
  outbound: {
    certFile: "outbound.crt",
    keyFile: "outbound.key",
    pemFile: "outbound.pem",
    spiffeId: "spiffe://cluster.local/ns/bench/sa/outbound",
  },
  client: {
    certFile: "client.crt",
    keyFile: "client.key",
    pemFile: "client.pem",
    spiffeId: "spiffe://cluster.local/ns/bench/sa/load-generator",
  },
});

/** A shell word: single-quoted, with any single quote closed, escaped and reopened. */
function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}

/**
 * The real mesh path, two hops: client → remora A (outbound listener, plaintext from the app)
 * → mTLS (ISTIO_MUTUAL) → remora B (inbound listener, STRICT) → app. Both remoras run on the
 * proxy core under one shell, so the CPU and memory figures are the pair's: what a request costs
 * the mesh on one core, to hold against one plaintext hop (× plaintext against `remora`).
 */
const remoraMtls: TargetSpec = {
  id: "remora-mtls",
  label: "remora, 2 hops mTLS",
  multiEndpoint: false,
  needsTls: true,
  compare: { plaintext: "remora" },
  available() {
    const base = remoraAvailable();
    if (!base.ok) return base;
    const refused = remoraRejects(MTLS_PROBE_CONFIG);
    if (refused !== null) {
      return {
        ok: false,
        reason: `this remora does not accept the two-hop config (outbound mTLS origination, services[].trafficPolicy.tls): ${refused}`,
      };
    }
    return base;
  },
  async start(ctx) {
    const tls = tlsOf(ctx, "remora-mtls");
    const [port, admin, inboundPort, inboundAdmin] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    const outboundFile = join(ctx.dir, `remora-mtls-outbound-${port}.yaml`);
    const inboundFile = join(ctx.dir, `remora-mtls-inbound-${inboundPort}.yaml`);
    writeFileSync(
      outboundFile,
      remoraOutboundMtlsConfig(port, admin, `127.0.0.1:${inboundPort}`, tls),
    );
    writeFileSync(
      inboundFile,
      remoraInboundTlsConfig(inboundPort, inboundAdmin, ctx.backends[0]!, tls),
    );
    const how = remoraLaunch();
    const remora = (file: string): string =>
      [process.execPath, ...how.flags, REMORA_CLI, "run", "-c", file].map(shellQuote).join(" ");
    // One process tree (sh, then both remoras) so CPU and peak RSS are measured for the pair.
    const proc = launch(
      "remora pair",
      "sh",
      ["-c", `${remora(inboundFile)} & ${remora(outboundFile)} & wait`],
      { core: ctx.core, env: { ...process.env, ...how.env } },
    );
    try {
      for (const adminPort of [inboundAdmin, admin]) {
        await waitForHttp(proc, `http://127.0.0.1:${adminPort}/ready`, { timeoutMs: 15_000 });
      }
    } catch (err) {
      await proc.stop();
      throw err;
    }
    return readyThrough(proc, `http://127.0.0.1:${port}`);
  },
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

/**
 * HAProxy as a sidecar would run it: one thread, keep-alive both sides, retries on connect
 * failure. With `resilience` (failover-503, failover-hang), hardened as its documentation
 * suggests for servers that may fail while up:
 * - `retry-on all-retryable-errors`: retry connect failures, empty and junk responses, a
 *   `timeout server` expiry (response-timeout) and 500/502/503/504, up to `retries` times,
 *   each on another server (`option redispatch 1`; plain `option redispatch` would send the
 *   first retry to the same server, after a turn-around of up to a second);
 * - `timeout server`: the per-try timeout (inactivity while waiting for the response), and
 *   `timeout connect` per connect;
 * - passive health: `observe layer7` counts 5xx (but 501/505), timeouts and broken responses
 *   as errors; `error-limit` of them in a row and `on-error mark-down` takes the server down
 *   at once;
 * - active health: `option httpchk GET <path>` every `inter`, down after `fall` failures, up
 *   after `rise` passes (`timeout check` per check).
 * With `tls`, the frontend terminates mTLS as remora's STRICT inbound listener does (see
 * haproxyTlsBind).
 */
export function haproxyConfig(
  port: number,
  backends: readonly string[],
  resilience?: Resilience,
  tls?: TlsMaterial,
): string {
  const r = resilience;
  const check =
    r !== undefined
      ? ` check inter ${configDuration(r.healthCheck.intervalMs)} fall ${r.healthCheck.fall} rise ${r.healthCheck.rise}` +
        ` observe layer7 error-limit ${r.consecutiveErrors} on-error mark-down`
      : backends.length > 1
        ? " check inter 1s fall 2 rise 2"
        : "";
  const servers = backends.map((b, i) => `  server s${i} ${b}${check}`).join("\n");
  const retries =
    r === undefined
      ? "  retries 2\n  retry-on conn-failure empty-response\n"
      : `  retries ${r.retries}\n  retry-on all-retryable-errors\n`;
  const timeouts =
    r === undefined
      ? "  timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n"
      : `  timeout connect ${configDuration(r.connectTimeoutMs)}\n  timeout client 60s\n` +
        `  timeout server ${configDuration(r.perTryTimeoutMs)}\n` +
        `  timeout check ${configDuration(r.healthCheck.timeoutMs)}\n`;
  // Plain: redispatch on the last retry only (HAProxy's default), the first waits a turn-around
  // of min(timeout connect, 1s) and goes to the same server. Hardened: every retry to another.
  const redispatch = r === undefined ? "  option redispatch\n" : "  option redispatch 1\n";
  const httpchk =
    r === undefined
      ? ""
      : `  option httpchk GET ${r.healthCheck.path}\n  http-check expect status 200\n`;
  const bind = tls === undefined ? `  bind 127.0.0.1:${port}\n` : haproxyTlsBind(port, tls);
  return `# Generated by remora's bench/targets.ts${r === undefined ? "" : ", hardened for a failing backend"}${tls === undefined ? "" : ", terminating mTLS"}.
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  option http-keep-alive
${redispatch}${retries}${timeouts}  timeout http-keep-alive 60s
frontend fe
${bind}  default_backend be
backend be
  balance roundrobin
${httpchk}${servers}
`;
}

/**
 * HAProxy's frontend terminating mTLS under the same conditions as remora's STRICT inbound
 * listener: the workload certificate `tls.server`, client certificates required and checked
 * against the trust bundle (`verify required`), ALPN http/1.1 (the one protocol both offer that
 * the load generator asks for), OpenSSL's default protocol versions and ciphers (TLS 1.3 and
 * X25519, as node's). Like remora it tells the app who called in x-forwarded-client-cert
 * (Envoy's format, the hash of the peer's certificate; HAProxy 2.6 has no fetch for a URI SAN),
 * which HAProxy computes per request where remora does it once per connection.
 */
function haproxyTlsBind(port: number, tls: TlsMaterial): string {
  return (
    `  bind 127.0.0.1:${port} ssl crt ${tls.server.pemFile} ca-file ${tls.caFile} verify required alpn http/1.1\n` +
    `  http-request set-header x-forwarded-client-cert "By=${tls.server.spiffeId};Hash=%[ssl_c_der,sha2(256),hex,lower]"\n`
  );
}

function haproxyAvailable(): Availability {
  const out = commandText("haproxy", ["-v"]);
  if (out === null) return { ok: false, reason: "haproxy not on PATH (apt-get install haproxy)" };
  return {
    ok: true,
    versions: { haproxy: /version (\S+)/.exec(out)?.[1] ?? out.split("\n")[0] ?? "?" },
  };
}

/** Starts HAProxy with `config` (from its port) and waits until it proxies (over mTLS with `tls`). */
async function startHaproxy(
  ctx: TargetContext,
  name: string,
  config: (port: number) => string,
  tls?: ClientTls,
): Promise<RunningTarget> {
  const port = await freePort();
  const conf = join(ctx.dir, `${name}-${port}.cfg`);
  writeFileSync(conf, config(port));
  // -db: stay in the foreground, one process (no master-worker).
  const proc = launch(name, "haproxy", ["-db", "-f", conf], { core: ctx.core });
  return readyThrough(proc, `${tls === undefined ? "http" : "https"}://127.0.0.1:${port}`, tls);
}

const haproxy: TargetSpec = {
  id: "haproxy",
  label: "HAProxy",
  multiEndpoint: true,
  available: haproxyAvailable,
  start: (ctx) =>
    startHaproxy(ctx, "haproxy", (port) => haproxyConfig(port, ctx.backends, ctx.resilience)),
};

/** HAProxy terminating mTLS: the reference remora-tls is measured against. */
const haproxyTls: TargetSpec = {
  id: "haproxy-tls",
  label: "HAProxy, mTLS termination",
  multiEndpoint: false,
  needsTls: true,
  clientMtls: true,
  compare: { haproxy: "haproxy-tls", plaintext: "haproxy" },
  available() {
    const base = haproxyAvailable();
    if (!base.ok) return base;
    const openssl = /Built with OpenSSL version : OpenSSL (\S+)/.exec(
      commandText("haproxy", ["-vv"]) ?? "",
    )?.[1];
    return { ok: true, versions: { ...base.versions, "haproxy OpenSSL": openssl ?? "?" } };
  },
  start(ctx) {
    const tls = tlsOf(ctx, "haproxy-tls");
    return startHaproxy(
      ctx,
      "haproxy-tls",
      (port) => haproxyConfig(port, ctx.backends.slice(0, 1), undefined, tls),
      clientTlsOf(tls),
    );
  },
};

/* ------------------------------------------------------------------ nginx */

/**
 * nginx as a reverse proxy with pooled keep-alive upstream connections. Request and response
 * streaming through memory only (no temp files), as one would configure it for a sidecar.
 * With `resilience` (failover-503, failover-hang), hardened with what open-source nginx has
 * (active health checks are nginx Plus only):
 * - `proxy_next_upstream error timeout http_500 http_502 http_503 http_504`: pass a request
 *   that failed that way to the next server, at most `proxy_next_upstream_tries` tries in all;
 * - `proxy_read_timeout` (between two reads of the response, so for a response head: the
 *   per-try timeout) and `proxy_connect_timeout`;
 * - passive health: every failure named above counts toward the server's `max_fails`; that
 *   many within `fail_timeout` take it out for `fail_timeout`. nginx's default max_fails=1 is
 *   kept (as in the plain config), stricter than the others' `consecutiveErrors`.
 */
export function nginxProxyConfig(
  dir: string,
  port: number,
  backends: readonly string[],
  resilience?: Resilience,
): string {
  const r = resilience;
  const failTimeout = r === undefined ? "10s" : `${Math.ceil(r.ejectionMs / 1000)}s`;
  const servers = backends
    .map((b) => `    server ${b} max_fails=1 fail_timeout=${failTimeout};`)
    .join("\n");
  const next =
    r === undefined
      ? "      proxy_next_upstream error timeout;\n"
      : "      proxy_next_upstream error timeout http_500 http_502 http_503 http_504;\n" +
        `      proxy_next_upstream_tries ${r.retries + 1};\n` +
        `      proxy_connect_timeout ${configDuration(r.connectTimeoutMs)};\n` +
        `      proxy_read_timeout ${configDuration(r.perTryTimeoutMs)};\n`;
  return nginxConfig(
    dir,
    `bench/targets.ts${r === undefined ? "" : ", hardened for a failing backend"}`,
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
${next}      client_max_body_size 0;
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
    writeFileSync(conf, nginxProxyConfig(own, port, ctx.backends, ctx.resilience));
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
  remoraTls,
  remoraMtls,
  nodeHttpProxy,
  fastifyHttpProxy,
  haproxy,
  haproxyTls,
  nginx,
];
