/**
 * `npm run bench`: every scenario against every target, on the same machine in the same run.
 *
 * For each scenario: start its backend(s) on the load core, start every target on the proxy
 * core, warm each up, then measure them interleaved (run 1 of every target, run 2 of every
 * target, ...) so drift on a shared machine lands on all targets alike. Progress goes to
 * stderr, the Markdown table to stdout, and the figures to bench/results/.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { cpus, release as osRelease, type as osType, tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import type { KeyType } from "../tls/ca.js";
import {
  type Backend,
  type BackendKind,
  type BackendOptions,
  nginxVersion,
  startBackend,
} from "./backend.js";
import {
  ChurnCluster,
  type ChurnShape,
  type ChurnTally,
  churnHosts,
  churnRunSample,
  churnSchedule,
  DEFAULT_CHURN_WINDOWS,
  MAX_CHURN_WINDOWS,
  type MeasuredWindow,
  parseRemoraScrape,
  type RemoraScrape,
} from "./churn.js";
import { churnCostMain, wantsChurnCost } from "./churn-cost.js";
import { garbageMain, wantsGarbage } from "./garbage.js";
import { commandText, detectPinning, killAllLaunched, type Pinning, pinProcess } from "./launch.js";
import { LoadGenerator, type LoadRequest } from "./load.js";
import {
  CoreContention,
  PeakRssProbe,
  procAvailable,
  processCpuMs,
  treeCpuMs,
  treeRssBytes,
} from "./proc.js";
import { Progress } from "./progress.js";
import {
  type BenchReport,
  type MachineInfo,
  markdownReport,
  type RunSample,
  type ScenarioOutcome,
  svgChart,
  type TargetOutcome,
} from "./report.js";
import {
  type LoadChoice,
  loadClientFor,
  mtlsClientFor,
  SCENARIO_ALIASES,
  SCENARIOS,
  type ScenarioShape,
  type ScenarioSpec,
  scenarioSkipReason,
  selectScenarios,
  wrkCanDrive,
} from "./scenarios.js";
import {
  SoakEndpoints,
  SoakSampler,
  type SoakShape,
  soakHostsOf,
  soakRunSample,
  soakSample,
  soakSampleEverySec,
} from "./soak.js";
import {
  type NodeRuntime,
  nodeRuntime,
  packageVersion,
  type RunningTarget,
  SERVICE_NAME,
  TARGETS,
  type TargetContext,
  type TargetSpec,
  targetsWith,
} from "./targets.js";
import { mintTlsMaterial, type TlsMaterial } from "./tls-material.js";
import { wrkVersion } from "./wrk.js";

const HELP = `Usage: npm run bench -- [options]

Measures remora against the backend directly, node-http-proxy, @fastify/http-proxy, HAProxy
and nginx (and, terminating mTLS, remora against HAProxy), each proxy pinned to the same
single core. Progress on stderr, a Markdown table on
stdout, figures in bench/results/latest.json and a chart in bench/results/latest.svg.

Options:
  --quick               short versions of the quick scenarios (${SCENARIO_ALIASES.quick?.join(", ")}),
                        3 runs each; under 3 minutes
  --scenario NAME       run only these scenarios (repeatable or comma-separated):
                        ${SCENARIOS.map((s) => s.id).join(", ")},
                        garbage (memory under malformed input; --help there),
                        churn-cost (remora's CPU per 1,000 slice updates, no traffic; --help there),
                        or: ${Object.keys(SCENARIO_ALIASES)
                          .filter((a) => a !== "quick")
                          .join(", ")}
  --target ID           run only these targets (repeatable or comma-separated):
                        ${TARGETS.map((t) => t.id).join(", ")}
  --duration SECONDS    seconds per measured run (default: per scenario, 10; 3 with --quick);
                        in churn, seconds per window (default 5)
  --connections N       connections for every selected scenario (default: per scenario)
  --runs N              measured runs per target and scenario; medians are reported (default 3)
  --warmup SECONDS      unmeasured load before the runs (default 3; 1 with --quick)
  --churn-windows N     churn: churn windows per run, between quiet ones (quiet, churn, quiet,
                        ..., quiet: 2N+1 windows of --duration each); each churn window is
                        compared with the quiet windows beside it (default ${DEFAULT_CHURN_WINDOWS}, at most ${MAX_CHURN_WINDOWS})
  --load auto|autocannon|wrk
                        client for the saturation scenarios (${SCENARIOS.filter(wrkCanDrive)
                          .map((s) => s.id)
                          .join(", ")}):
                        auto (default): wrk when it is on PATH, else autocannon (which
                        saturates below the fastest proxies); wrk: always wrk, an error if it
                        is missing. Other scenarios keep their own clients
  --tls-key rsa|ecdsa   key type of the CA and the proxies' certificates for the TLS targets
                        (remora-tls, haproxy-tls, remora-mtls): rsa (default: RSA 2048, Istio's)
                        or ecdsa (P-256); the load generator's own key is always ECDSA P-256
  --compare-node PATH   also run the Node.js targets (remora, node-http-proxy,
                        @fastify/http-proxy) with this Node.js binary, as extra rows
                        ("remora@node20"), to measure a runtime change in one run; repeatable
  --no-save             print the table but do not write bench/results/
  -h, --help            this text
`;

interface Options {
  readonly scenarios: ScenarioSpec[];
  readonly targetIds: ReadonlySet<string> | null;
  readonly quick: boolean;
  readonly durationSec: number | null;
  readonly connections: number | null;
  readonly runs: number;
  readonly warmupSec: number;
  /** The churn scenario's churn windows per run (churnSchedule). */
  readonly churnWindows: number;
  readonly load: LoadChoice;
  readonly save: boolean;
  /** Every target this run may measure: TARGETS plus the --compare-node variants. */
  readonly targets: readonly TargetSpec[];
  readonly compareNodes: readonly NodeRuntime[];
  readonly tlsKey: KeyType;
}

function positive(name: string, raw: string | undefined): number | null {
  if (raw === undefined) return null;
  const n = Number(raw);
  if (!Number.isFinite(n) || n <= 0)
    throw new Error(`--${name} must be a positive number, got "${raw}"`);
  return n;
}

function parseOptions(argv: string[]): Options | null {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: "boolean", default: false },
      scenario: { type: "string", multiple: true },
      target: { type: "string", multiple: true },
      duration: { type: "string" },
      connections: { type: "string" },
      runs: { type: "string" },
      warmup: { type: "string" },
      "churn-windows": { type: "string" },
      load: { type: "string", default: "auto" },
      "no-save": { type: "boolean", default: false },
      "compare-node": { type: "string", multiple: true },
      "tls-key": { type: "string", default: "rsa" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) return null;
  const quick = values.quick === true;
  const scenarios = selectScenarios(values.scenario ?? [quick ? "quick" : "all"]);
  const compareNodes = (values["compare-node"] ?? []).map(nodeRuntime);
  const targets = targetsWith(compareNodes);
  let targetIds: Set<string> | null = null;
  if (values.target !== undefined) {
    targetIds = new Set(values.target.flatMap((t) => t.split(",")).map((t) => t.trim()));
    for (const id of targetIds) {
      if (!targets.some((t) => t.id === id)) {
        throw new Error(`unknown target "${id}" (known: ${targets.map((t) => t.id).join(", ")})`);
      }
    }
  }
  const load = values.load;
  if (load !== "auto" && load !== "autocannon" && load !== "wrk") {
    throw new Error(`--load must be auto, autocannon or wrk, got "${load}"`);
  }
  const tlsKey = values["tls-key"];
  if (tlsKey !== "rsa" && tlsKey !== "ecdsa") {
    throw new Error(`--tls-key must be rsa or ecdsa, got "${tlsKey}"`);
  }
  const connections = positive("connections", values.connections);
  const runs = positive("runs", values.runs);
  const churnWindows = positive("churn-windows", values["churn-windows"]) ?? DEFAULT_CHURN_WINDOWS;
  if (!Number.isInteger(churnWindows) || churnWindows > MAX_CHURN_WINDOWS) {
    throw new Error(
      `--churn-windows must be a whole number 1..${MAX_CHURN_WINDOWS}, got "${values["churn-windows"]}"`,
    );
  }
  return {
    scenarios,
    targetIds,
    quick,
    durationSec: positive("duration", values.duration),
    connections: connections === null ? null : Math.round(connections),
    runs: runs === null ? 3 : Math.round(runs),
    warmupSec: positive("warmup", values.warmup) ?? (quick ? 1 : 3),
    churnWindows,
    load,
    save: values["no-save"] !== true,
    targets,
    compareNodes,
    tlsKey,
  };
}

function shapeOf(spec: ScenarioSpec, options: Options): ScenarioShape {
  const base = options.quick ? (spec.quick ?? { ...spec.defaults, durationSec: 3 }) : spec.defaults;
  return {
    connections: options.connections ?? base.connections,
    durationSec: options.durationSec ?? base.durationSec,
  };
}

function machineInfo(pinning: Pinning): MachineInfo {
  const all = cpus();
  return {
    cpuModel: all[0]?.model.trim() ?? "unknown",
    cores: all.length,
    memoryBytes: totalmem(),
    os: `${osType()} ${osRelease()}`,
    node: process.versions.node,
    pinning: pinning.description,
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Everything the scenario loop needs, fixed for the whole run. */
interface RunContext {
  readonly options: Options;
  readonly pinning: Pinning;
  readonly load: LoadGenerator;
  readonly progress: Progress;
  readonly dir: string;
  readonly nginxBackend: boolean;
  /** The certificates, when a selected target needs them. */
  readonly tls: TlsMaterial | undefined;
}

function loadRequest(
  spec: ScenarioSpec,
  shape: ScenarioShape,
  target: RunningTarget,
  durationSec: number,
): LoadRequest {
  // A target that terminates mTLS gets a client that can present a certificate (not wrk).
  const client =
    target.tls === undefined ? spec.client : (mtlsClientFor(spec.client) ?? spec.client);
  return {
    client,
    url: target.url,
    connections: shape.connections,
    durationSec,
    method: spec.method,
    path: spec.path,
    headers: { host: SERVICE_NAME },
    bodyBytes: spec.bodyBytes,
    ...(spec.overallRate === undefined ? {} : { overallRate: spec.overallRate }),
    timeoutSec: spec.timeoutSec,
    ...(target.tls === undefined ? {} : { tls: target.tls }),
  };
}

/**
 * Starts watching how much of each pinned core processes outside the benchmark take: the
 * proxy core should hold only the target; the load core the load generator, the backend and
 * this orchestrator.
 */
function watchContention(
  ctx: RunContext,
  targetPid: number | null,
  backend: Backend,
): { proxy: CoreContention | null; load: CoreContention } | null {
  const { proxyCore, loadCore } = ctx.pinning;
  if (proxyCore === null || loadCore === null) return null;
  const loadPid = ctx.load.pid;
  const backendPids = backend.instances.map((b) => b.process.pid);
  const cpu = (pid: number | null): number => (pid === null ? 0 : (treeCpuMs(pid) ?? 0));
  return {
    // Direct puts nothing on the proxy core, so what runs there cannot disturb it.
    proxy: targetPid === null ? null : new CoreContention(proxyCore, () => cpu(targetPid)),
    load: new CoreContention(
      loadCore,
      () =>
        (processCpuMs(process.pid) ?? 0) +
        cpu(loadPid) +
        backendPids.reduce<number>((sum, p) => sum + cpu(p), 0),
    ),
  };
}

/** One measured run: load, plus the target's CPU and peak memory over exactly that window. */
async function measure(
  ctx: RunContext,
  spec: ScenarioSpec,
  shape: ScenarioShape,
  target: RunningTarget,
  backend: Backend,
): Promise<RunSample> {
  const pid = target.pid;
  const probe = pid === null ? null : new PeakRssProbe(pid);
  const cpuBefore = pid === null ? null : treeCpuMs(pid);
  const contention = watchContention(ctx, pid, backend);
  const disruption = spec.disruption;
  const timer =
    disruption === undefined
      ? undefined
      : setTimeout(
          () =>
            void backend.disrupt(disruption.backend, disruption.fault).catch((err: unknown) => {
              ctx.progress.note(
                `  disruption failed: ${err instanceof Error ? err.message : String(err)}`,
              );
            }),
          shape.durationSec * 1000 * disruption.atFraction,
        );
  try {
    const result = await ctx.load.run(loadRequest(spec, shape, target, shape.durationSec), (n) =>
      ctx.progress.tick(n),
    );
    const cpuAfter = pid === null ? null : treeCpuMs(pid);
    // What the backend that turned bad still received: asked before anything is stopped.
    const control =
      disruption === undefined ? undefined : backend.instances[disruption.backend]?.faulty;
    const faulty = control === undefined ? undefined : await control.counts().catch(() => null);
    return {
      ...result,
      ...(faulty === undefined ? {} : { faultyBackend: faulty }),
      cpuMs: cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore,
      peakRssBytes: probe?.stop() ?? null,
      otherLoad:
        contention === null
          ? null
          : { proxyCore: contention.proxy?.stop() ?? null, loadCore: contention.load.stop() },
    };
  } finally {
    clearTimeout(timer);
    probe?.stop();
  }
}

async function warmUp(
  ctx: RunContext,
  spec: ScenarioSpec,
  shape: ScenarioShape,
  target: RunningTarget,
  sec: number,
): Promise<void> {
  if (sec <= 0) return;
  await ctx.load.run(loadRequest(spec, shape, target, sec), (n) => ctx.progress.tick(n));
}

function backendKind(spec: ScenarioSpec, ctx: RunContext): BackendKind {
  if (spec.backend !== "any") return spec.backend;
  return ctx.nginxBackend ? "nginx" : "node";
}

/** The scenario's backends: the faulty instance, when its disruption needs one, switchable. */
function backendOptions(spec: ScenarioSpec, ctx: RunContext): BackendOptions {
  const fault = spec.disruption?.fault;
  return {
    count: spec.backendCount,
    kind: backendKind(spec, ctx),
    core: ctx.pinning.loadCore,
    dir: ctx.dir,
    ...(fault === undefined || fault === "kill" ? {} : { faulty: spec.disruption!.backend }),
  };
}

/** How a target starts for this scenario: its backends, its core, and the resilience asked for. */
/**
 * Starts `t`, or records why it did not start (the report's row says so) and returns undefined.
 */
async function startOrRecord(
  t: TargetSpec,
  context: TargetContext,
  ctx: RunContext,
  outcome: Map<string, RunSample[] | string>,
): Promise<RunningTarget | undefined> {
  try {
    return await t.start(context);
  } catch (err) {
    const reason = `did not start: ${err instanceof Error ? err.message : String(err)}`;
    outcome.set(t.id, reason);
    ctx.progress.note(`  ${t.label}: ${reason}`);
    return undefined;
  }
}

function targetContext(spec: ScenarioSpec, ctx: RunContext, backend: Backend): TargetContext {
  return {
    backends: backend.instances.map((b) => b.address),
    core: ctx.pinning.proxyCore,
    dir: ctx.dir,
    ...(spec.resilience === undefined ? {} : { resilience: spec.resilience }),
    ...(ctx.tls === undefined ? {} : { tls: ctx.tls }),
  };
}

function summaryOf(sample: RunSample, spec: ScenarioSpec): string {
  const rate =
    spec.focus === "bytes"
      ? `${(sample.bytesPerSec / 2 ** 20).toFixed(0)} MiB/s`
      : spec.focus === "handshake"
        ? `${Math.round((sample.handshakes ?? 0) / sample.durationSec).toLocaleString("en-US")} handshakes/s`
        : `${Math.round(sample.requestsPerSec).toLocaleString("en-US")} req/s`;
  const errors = sample.errors + sample.non2xx;
  const faulty = sample.faultyBackend;
  return (
    `${rate}, p99 ${sample.latency.p99.toFixed(2)} ms${errors > 0 ? `, ${errors} errors` : ""}` +
    (faulty == null ? "" : `, ${faulty.requests} requests to the bad backend`)
  );
}

/** Scenarios whose targets survive their runs: one process per target serves all runs. */
async function runShared(
  ctx: RunContext,
  spec: ScenarioSpec,
  shape: ScenarioShape,
  targets: TargetSpec[],
): Promise<Map<string, RunSample[] | string>> {
  const outcome = new Map<string, RunSample[] | string>();
  const backend = await startBackend(backendOptions(spec, ctx));
  const running = new Map<string, RunningTarget>();
  try {
    for (const t of targets) {
      const target = await startOrRecord(t, targetContext(spec, ctx, backend), ctx, outcome);
      if (target === undefined) continue;
      running.set(t.id, target);
      outcome.set(t.id, []);
    }
    for (const t of targets) {
      const target = running.get(t.id);
      if (target === undefined) continue;
      ctx.progress.begin(`${spec.id} · ${t.label} · warm-up`, ctx.options.warmupSec);
      await warmUp(ctx, spec, shape, target, ctx.options.warmupSec);
      ctx.progress.end();
    }
    for (let run = 1; run <= ctx.options.runs; run++) {
      for (const t of targets) {
        const target = running.get(t.id);
        const samples = outcome.get(t.id);
        if (target === undefined || !Array.isArray(samples)) continue;
        await measuredRun(ctx, spec, shape, t.label, run, target, backend, samples);
        await sleep(200);
      }
    }
  } finally {
    await Promise.all([...running.values()].map((t) => t.stop()));
    await backend.stop();
  }
  return outcome;
}

/** One measured run of one target, its progress line, and its sample (or a note if it failed). */
async function measuredRun(
  ctx: RunContext,
  spec: ScenarioSpec,
  shape: ScenarioShape,
  label: string,
  run: number,
  target: RunningTarget,
  backend: Backend,
  samples: RunSample[],
): Promise<void> {
  ctx.progress.begin(`${spec.id} · ${label} · run ${run}/${ctx.options.runs}`, shape.durationSec);
  try {
    const sample = await measure(ctx, spec, shape, target, backend);
    samples.push(sample);
    ctx.progress.end(summaryOf(sample, spec));
  } catch (err) {
    ctx.progress.end();
    noteFailure(ctx, label, run, err);
  }
}

function noteFailure(ctx: RunContext, label: string, run: number, err: unknown): void {
  ctx.progress.note(
    `  ${label} run ${run} failed: ${err instanceof Error ? err.message : String(err)}`,
  );
}

/** remora's metrics now, or null when the target has no admin API or it did not answer. */
async function scrapeRemora(target: RunningTarget): Promise<RemoraScrape | null> {
  if (target.admin === undefined) return null;
  try {
    const res = await fetch(`${target.admin}/stats/prometheus`);
    return res.ok ? parseRemoraScrape(await res.text()) : null;
  } catch {
    return null;
  }
}

/**
 * The churn scenario: one fake Kubernetes API server and one backend for the whole scenario, a
 * fresh target for every run (an idle one would apply the churn on the proxy core too). Each run:
 * start and sync every endpoint (RSS read then), warm up, then the windows of churnSchedule
 * (quiet, churn, quiet, ..., quiet), the API server writing `churn.updatesPerSec` slice updates a
 * second during the churn ones only; remora's metrics scraped at every window boundary.
 */
async function runChurn(
  ctx: RunContext,
  spec: ScenarioSpec,
  shape: ScenarioShape,
  targets: TargetSpec[],
  churn: ChurnShape,
): Promise<Map<string, RunSample[] | string>> {
  const outcome = new Map<string, RunSample[] | string>(targets.map((t) => [t.id, []]));
  const schedule = churnSchedule(ctx.options.churnWindows);
  const backend = await startBackend({
    ...backendOptions(spec, ctx),
    hosts: churnHosts(churn.endpointsPerService),
  });
  let cluster: ChurnCluster | undefined;
  try {
    const port = backend.instances[0]?.port;
    if (port === undefined) throw new Error("the churn backend did not start");
    cluster = await ChurnCluster.start(churn, SERVICE_NAME, port);
    const kubeconfig = join(ctx.dir, "churn-kubeconfig.json");
    cluster.writeKubeconfig(kubeconfig);
    for (let run = 1; run <= ctx.options.runs; run++) {
      for (const t of targets) {
        const samples = outcome.get(t.id);
        if (!Array.isArray(samples)) continue;
        const context = { ...targetContext(spec, ctx, backend), kubeconfig };
        const target = await startOrRecord(t, context, ctx, outcome);
        if (target === undefined) continue;
        try {
          // Ready means every endpoint listed and routed: the memory of holding them, before load.
          const rssAfterSync = target.pid === null ? null : treeRssBytes(target.pid);
          const label = `${spec.id} · ${t.label} · run ${run}/${ctx.options.runs}`;
          ctx.progress.begin(`${label} · warm-up`, ctx.options.warmupSec);
          await warmUp(ctx, spec, shape, target, ctx.options.warmupSec);
          ctx.progress.end();
          const scrapes = [await scrapeRemora(target)];
          const windows: MeasuredWindow[] = [];
          for (const [i, kind] of schedule.entries()) {
            ctx.progress.begin(`${label} · ${i + 1}/${schedule.length} ${kind}`, shape.durationSec);
            if (kind === "churn") cluster.startChurn();
            let sample: RunSample;
            let tally: ChurnTally | null = null;
            try {
              sample = await measure(ctx, spec, shape, target, backend);
            } finally {
              // Stopped (and counted) as the load ends, before anything else.
              if (kind === "churn") tally = cluster.stopChurn();
            }
            scrapes.push(await scrapeRemora(target));
            windows.push({ kind, sample, tally });
            ctx.progress.end(summaryOf(sample, spec));
          }
          const sample = churnRunSample(windows, scrapes, churn, rssAfterSync);
          samples.push(sample);
          ctx.progress.note(`  ${t.label} run ${run}: ${churnSummaryOf(sample)}`);
        } catch (err) {
          ctx.progress.end();
          noteFailure(ctx, t.label, run, err);
        } finally {
          await target.stop();
        }
      }
    }
  } finally {
    await cluster?.stop();
    await backend.stop();
  }
  return outcome;
}

function churnSummaryOf(sample: RunSample): string {
  const c = sample.churn;
  if (c === undefined) return "";
  const loop = (ms: number | null) => (ms === null ? "?" : ms.toFixed(1));
  const ratios = (c.windows ?? []).flatMap((w) =>
    w.ratio === null ? [] : [`${w.ratio.toFixed(2)}×`],
  );
  return (
    `${Math.round(c.churn.requestsPerSec).toLocaleString("en-US")} req/s under churn, ` +
    `${Math.round(c.quiet.requestsPerSec).toLocaleString("en-US")} quiet; ` +
    `${c.ratio == null ? "?" : c.ratio.toFixed(2)}× (median of ${ratios.join(", ")}), ` +
    `loop p99 ${loop(c.quiet.loopP99Ms)} → ${loop(c.churn.loopP99Ms)} ms, ` +
    `${Math.round(c.updatesPerSec)} updates/s`
  );
}

/**
 * The soak scenario: one backend on `soak.hosts` loopback addresses, and for each target one long
 * run (a soak is not repeated) on a fresh process: sampled before the load, every few seconds
 * under it while the discovery file's endpoints rotate, and once more after it has been idle for
 * two sampling intervals (pooled upstream connections have expired by then).
 */
async function runSoak(
  ctx: RunContext,
  spec: ScenarioSpec,
  shape: ScenarioShape,
  targets: TargetSpec[],
  soak: SoakShape,
): Promise<Map<string, RunSample[] | string>> {
  const outcome = new Map<string, RunSample[] | string>(targets.map((t) => [t.id, []]));
  const backend = await startBackend({ ...backendOptions(spec, ctx), hosts: soakHostsOf(soak) });
  const everySec = soakSampleEverySec(shape.durationSec);
  try {
    const port = backend.instances[0]?.port;
    if (port === undefined) throw new Error("the soak backend did not start");
    const discoveryFile = join(ctx.dir, "soak-services.yaml");
    const endpoints = new SoakEndpoints(discoveryFile, SERVICE_NAME, soak, port);
    for (const t of targets) {
      const samples = outcome.get(t.id);
      if (!Array.isArray(samples)) continue;
      endpoints.reset();
      const context = { ...targetContext(spec, ctx, backend), discoveryFile };
      const target = await startOrRecord(t, context, ctx, outcome);
      if (target === undefined) continue;
      try {
        if (target.pid === null) throw new Error("no process to sample");
        const sampler = new SoakSampler(target.pid, target.admin);
        await sampler.take("before");
        ctx.progress.begin(`${spec.id} · ${t.label} · warm-up`, ctx.options.warmupSec);
        await warmUp(ctx, spec, shape, target, ctx.options.warmupSec);
        ctx.progress.end();
        ctx.progress.begin(`${spec.id} · ${t.label} · soak`, shape.durationSec);
        sampler.start(everySec);
        endpoints.start();
        let measured: RunSample;
        let rewrites: number;
        try {
          measured = await measure(ctx, spec, shape, target, backend);
        } finally {
          rewrites = endpoints.stop();
          await sampler.stop();
        }
        await sampler.take("load");
        ctx.progress.end(summaryOf(measured, spec));
        await sleep(Math.max(2 * everySec, 6) * 1000);
        await sampler.take("after");
        samples.push(
          soakRunSample(
            measured,
            soakSample(sampler.points, shape.durationSec, everySec, rewrites),
          ),
        );
      } catch (err) {
        ctx.progress.end();
        noteFailure(ctx, t.label, 1, err);
      } finally {
        await target.stop();
      }
    }
  } finally {
    await backend.stop();
  }
  return outcome;
}

/** Scenarios that break their setup (failover): fresh backends and target for every run. */
async function runFresh(
  ctx: RunContext,
  spec: ScenarioSpec,
  shape: ScenarioShape,
  targets: TargetSpec[],
): Promise<Map<string, RunSample[] | string>> {
  const outcome = new Map<string, RunSample[] | string>(targets.map((t) => [t.id, []]));
  const warmup = Math.min(ctx.options.warmupSec, 1);
  for (let run = 1; run <= ctx.options.runs; run++) {
    for (const t of targets) {
      const samples = outcome.get(t.id);
      if (!Array.isArray(samples)) continue;
      const backend = await startBackend(backendOptions(spec, ctx));
      const target = await startOrRecord(t, targetContext(spec, ctx, backend), ctx, outcome);
      if (target === undefined) {
        await backend.stop();
        continue;
      }
      try {
        ctx.progress.begin(`${spec.id} · ${t.label} · warm-up`, warmup);
        await warmUp(ctx, spec, shape, target, warmup);
        ctx.progress.end();
        await measuredRun(ctx, spec, shape, t.label, run, target, backend, samples);
      } catch (err) {
        ctx.progress.end();
        noteFailure(ctx, t.label, run, err);
      } finally {
        await target.stop();
        await backend.stop();
      }
    }
  }
  return outcome;
}

function paramsOf(
  spec: ScenarioSpec,
  shape: ScenarioShape,
  options: Options,
): Record<string, number | string> {
  const { runs, warmupSec } = options;
  const params: Record<string, number | string> = {
    request: `${spec.method} ${spec.path}${spec.bodyBytes > 0 ? ` with ${spec.bodyBytes.toLocaleString("en-US")} B body` : ""}`,
    connections: shape.connections,
    "seconds per run": shape.durationSec,
    runs,
    "warm-up s": spec.freshPerRun ? Math.min(warmupSec, 1) : warmupSec,
  };
  if (spec.overallRate !== undefined) params.rate = spec.overallRate;
  if (spec.backendCount > 1) params.backends = spec.backendCount;
  if (spec.disruption !== undefined) params.disruption = spec.disruption.description;
  if (spec.soak !== undefined) {
    const k = spec.soak;
    params.runs = 1;
    params.endpoints = `${k.live} at once from a discovery file, one replaced every ${k.rotateEverySec} s`;
    params["sampled every s"] = soakSampleEverySec(shape.durationSec);
  }
  if (spec.churn !== undefined) {
    const c = spec.churn;
    params["warm-up s"] = warmupSec;
    params.services = c.services;
    params.endpoints = c.services * c.endpointsPerService;
    params["updates/s"] = c.updatesPerSec;
    const schedule = churnSchedule(options.churnWindows);
    delete params["seconds per run"];
    params.windows = `${schedule.map((k) => (k === "quiet" ? "Q" : "C")).join(" ")} per run (Q quiet, C churn), ${shape.durationSec} s each, a fresh target per run`;
    params["churn ÷ quiet"] =
      "each churn window's req/s over the mean of the two quiet windows beside it, the median of those per run";
  }
  return params;
}

/** wrk's version when a `wrk` binary is on PATH, else null. */
function installedWrk(): string | null {
  const out = commandText("wrk", ["-v"]);
  return out === null ? null : (wrkVersion(out) ?? "(unknown version)");
}

/** What drives a scenario's load, as the report names it. */
function loadGeneratorOf(
  client: ScenarioSpec["client"],
  versions: Readonly<Record<string, string>>,
): string {
  switch (client) {
    case "wrk":
      return `wrk ${versions.wrk ?? "?"} (1 thread)`;
    case "autocannon":
      return `autocannon ${versions.autocannon ?? "?"}`;
    case "stream":
      return "bench/stream-client.ts (node:http)";
    case "hold":
      return "bench/hold-client.ts (node:net)";
    case "handshake":
      return "bench/handshake-client.ts (node:tls, a new connection per request)";
  }
}

/** "proxies RSA 2048, load generator ECDSA P-256": the key types the TLS rows were measured with. */
function tlsKeysOf(tls: TlsMaterial): string {
  return `proxies ${tls.keyType === "rsa" ? "RSA 2048" : "ECDSA P-256"}, load generator ECDSA P-256`;
}

function datedName(iso: string): string {
  // 2025-01-31T12:34:56.789Z -> 2025-01-31T12-34
  return iso.slice(0, 16).replace(":", "-");
}

async function main(): Promise<number> {
  // The garbage scenario (issue 14) measures one remora's memory, not targets: its own runner.
  if (wantsGarbage(process.argv.slice(2))) return garbageMain(process.argv.slice(2));
  if (wantsChurnCost(process.argv.slice(2))) return churnCostMain(process.argv.slice(2));
  let options: Options | null;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n\n${HELP}`);
    return 2;
  }
  if (options === null) {
    process.stdout.write(HELP);
    return 0;
  }
  const wrk = options.load === "autocannon" ? null : installedWrk();
  if (options.load === "wrk" && wrk === null) {
    process.stderr.write(
      "bench: --load wrk: no wrk on PATH (Debian/Ubuntu: apt-get install wrk); or use --load autocannon\n",
    );
    return 2;
  }
  const startedAt = new Date().toISOString();
  const pinning = detectPinning();
  // The orchestrator itself stays off the proxy core.
  pinProcess(process.pid, pinning.loadCore);
  if (!procAvailable())
    process.stderr.write("bench: /proc not readable; CPU and memory figures will be empty\n");

  // Which targets can run here at all.
  const versions: Record<string, string> = { node: process.versions.node };
  if (options.compareNodes.length > 0)
    versions["node (compared)"] = options.compareNodes.map((n) => n.version).join(", ");
  const skipped: { targetId: string; reason: string }[] = [];
  const available: TargetSpec[] = [];
  for (const t of options.targets) {
    if (!selected(t, options.targetIds)) continue;
    const a = t.available();
    if (a.ok) {
      available.push(t);
      Object.assign(versions, a.versions);
    } else {
      skipped.push({ targetId: t.id, reason: a.reason });
      process.stderr.write(`bench: skipping ${t.label}: ${a.reason}\n`);
    }
  }
  const nginxBackendVersion = nginxVersion();
  const nginxBackend = nginxBackendVersion !== null;
  const backendDescription = nginxBackend
    ? `nginx ${nginxBackendVersion} (1 worker; the upload scenario uses the Node.js backend)`
    : "Node.js (node:cluster, one worker per core it may use), nginx not installed";
  versions.autocannon = packageVersion("autocannon") ?? "?";
  if (options.load === "auto" && wrk === null && options.scenarios.some(wrkCanDrive)) {
    process.stderr.write(
      "bench: wrk not found; autocannon drives the saturation scenarios and may be slower than the proxies it measures\n",
    );
  }

  const plan = options.scenarios.map((scenario) => {
    // The --load choice, applied: wrk may stand in for autocannon.
    const client = loadClientFor(scenario, options.load, wrk !== null);
    const spec = client === scenario.client ? scenario : { ...scenario, client };
    if (client === "wrk") versions.wrk = wrk ?? "?";
    const shape = shapeOf(spec, options);
    const targets = available.filter((t) => scenarioSkipReason(spec, t) === null);
    const warm = spec.freshPerRun
      ? Math.min(options.warmupSec, 1) * options.runs
      : options.warmupSec;
    return {
      spec,
      shape,
      targets,
      seconds:
        spec.soak !== undefined
          ? targets.length * (options.warmupSec + shape.durationSec)
          : spec.churn === undefined
            ? targets.length * (warm + options.runs * shape.durationSec)
            : targets.length *
              options.runs *
              (options.warmupSec + churnSchedule(options.churnWindows).length * shape.durationSec),
      loadGenerator: loadGeneratorOf(client, versions),
      // What drives the targets that terminate mTLS, when not the scenario's client (wrk).
      mtlsLoadGenerator: loadGeneratorOf(mtlsClientFor(client) ?? client, versions),
    };
  });
  const progress = new Progress(plan.reduce((sum, p) => sum + p.seconds, 0));

  const dir = mkdtempSync(join(tmpdir(), "remora-bench-"));
  tempDir = dir;
  // nginx workers run as "nobody" when started by root and must reach the files in here.
  chmodSync(dir, 0o755);
  let tls: TlsMaterial | undefined;
  if (available.some((t) => t.needsTls === true)) {
    const tlsDir = join(dir, "tls");
    mkdirSync(tlsDir);
    tls = mintTlsMaterial(tlsDir, options.tlsKey);
  }
  const load = LoadGenerator.start(pinning.loadCore);
  const ctx: RunContext = { options, pinning, load, progress, dir, nginxBackend, tls };
  const scenarios: ScenarioOutcome[] = [];
  try {
    for (const { spec, shape, targets, loadGenerator, mtlsLoadGenerator } of plan) {
      const results =
        spec.soak !== undefined
          ? await runSoak(ctx, spec, shape, targets, spec.soak)
          : spec.churn !== undefined
            ? await runChurn(ctx, spec, shape, targets, spec.churn)
            : spec.freshPerRun
              ? await runFresh(ctx, spec, shape, targets)
              : await runShared(ctx, spec, shape, targets);
      const rows: TargetOutcome[] = [];
      for (const t of options.targets) {
        if (!selected(t, options.targetIds)) continue;
        const globalSkip = skipped.find((s) => s.targetId === t.id);
        const result = results.get(t.id);
        const scenarioSkip = scenarioSkipReason(spec, t);
        const row = {
          targetId: t.id,
          label: t.label,
          ...(t.compare === undefined ? {} : { compare: t.compare }),
          ...(t.clientMtls === true && mtlsLoadGenerator !== loadGenerator
            ? { loadGenerator: mtlsLoadGenerator }
            : {}),
        };
        if (globalSkip !== undefined) {
          rows.push({ ...row, samples: [], skipped: globalSkip.reason });
        } else if (scenarioSkip !== null) {
          rows.push({ ...row, samples: [], skipped: scenarioSkip });
        } else if (typeof result === "string") {
          rows.push({ ...row, samples: [], skipped: result });
        } else {
          const samples = result ?? [];
          rows.push({
            ...row,
            samples,
            ...(samples.length === 0 ? { skipped: "every run failed" } : {}),
          });
        }
      }
      scenarios.push({
        id: spec.id,
        title: spec.title,
        focus: spec.focus,
        params: {
          ...paramsOf(spec, shape, options),
          ...(tls !== undefined && targets.some((t) => t.needsTls === true)
            ? { "TLS keys": tlsKeysOf(tls) }
            : {}),
        },
        loadGenerator,
        targets: rows,
      });
    }
  } finally {
    progress.finish();
    await load.stop();
    cleanUp();
  }

  const report: BenchReport = {
    startedAt,
    finishedAt: new Date().toISOString(),
    command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(" ")}` : ""}`,
    machine: machineInfo(pinning),
    versions,
    backend: backendDescription,
    scenarios,
    skipped,
  };
  process.stdout.write(markdownReport(report));

  if (options.save) {
    const results = fileURLToPath(new URL("../../bench/results/", import.meta.url));
    mkdirSync(results, { recursive: true });
    const json = `${JSON.stringify(report, null, 2)}\n`;
    const svg = svgChart(report);
    const stamp = datedName(startedAt);
    writeFileSync(join(results, "latest.json"), json);
    writeFileSync(join(results, `${stamp}.json`), json);
    writeFileSync(join(results, "latest.svg"), svg);
    writeFileSync(join(results, `${stamp}.svg`), svg);
    process.stderr.write(
      `bench: wrote bench/results/latest.json, latest.svg and ${stamp}.{json,svg}\n`,
    );
  }
  return 0;
}

/** The run's temp dir (generated configs, the download file), removed however the run ends. */
let tempDir: string | undefined;

function cleanUp(): void {
  killAllLaunched();
  if (tempDir !== undefined) rmSync(tempDir, { recursive: true, force: true });
  tempDir = undefined;
}

process.on("exit", cleanUp);
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    cleanUp();
    process.stderr.write(`\nbench: interrupted (${sig})\n`);
    process.exit(130);
  });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    cleanUp();
    process.stderr.write(
      `bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
    );
    process.exitCode = 1;
  },
);

/** Named with --target, or (without --target) every target that is not opt-in. */
function selected(t: TargetSpec, ids: ReadonlySet<string> | null): boolean {
  return ids === null ? t.optIn !== true : ids.has(t.id);
}
