/**
 * `npm run bench -- --scenario churn-cost`: what watching a busy cluster costs remora with no
 * traffic at all (issue 12). The churn scenario's cluster and writer (bench/churn.ts: 1,000
 * Services × 10 endpoints on the fake API server, one slice rewrite per update), one remora
 * pinned to the proxy core and started as the CLI starts it, and its CPU time read from
 * /proc/PID/task per thread: first over a quiet window, then over a window of `--rate` updates a
 * second. The figure is CPU ms per 1,000 updates (main thread, and the other threads: V8's GC
 * workers), which other tenants of a shared machine disturb far less than the churn scenario's
 * throughput ratio: the number to watch when making slice events cheaper.
 */

import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ChurnCluster, remoraKubernetesConfig } from "./churn.js";
import { detectPinning, freePort, launch, pinProcess, waitForHttp } from "./launch.js";
import { asksForScenario, nodeFlagsOption, positiveInteger } from "./own-runner.js";
import { parseStat, ticksPerSecond } from "./proc.js";
import { spread } from "./report.js";
import { remoraLaunch } from "./targets.js";

export const CHURN_COST_HELP = `Usage: npm run bench -- --scenario churn-cost [options]

  --rate N          slice updates per second in the churn window (default 500)
  --seconds N       length of each measured window (default 10)
  --runs N          fresh remora processes measured; medians reported (default 3)
  --node-flags=F    extra Node.js flags for remora
`;

/** CPU ms a process's threads used, split into its main thread and all the others. */
export interface ThreadCpu {
  readonly mainMs: number;
  readonly otherMs: number;
}

/** The sum of each thread's user+system time, from /proc/PID/task/TID/stat texts. */
export function threadCpu(
  pid: number,
  stats: ReadonlyMap<number, string>,
  msPerTick: number,
): ThreadCpu {
  let mainMs = 0;
  let otherMs = 0;
  for (const [tid, text] of stats) {
    const fields = parseStat(text);
    if (fields === null) continue;
    const ms = (fields.utime + fields.stime) * msPerTick;
    if (tid === pid) mainMs += ms;
    else otherMs += ms;
  }
  return { mainMs, otherMs };
}

function readThreads(pid: number): Map<number, string> {
  const out = new Map<number, string>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      out.set(Number(tid), readFileSync(`/proc/${pid}/task/${tid}/stat`, "latin1"));
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}

export interface ChurnCostRun {
  /** CPU ms used over the quiet window (main thread, other threads). */
  readonly quiet: ThreadCpu;
  /** The same over the churn window, `updates` slice updates written during it. */
  readonly churn: ThreadCpu;
  readonly seconds: number;
  readonly updates: number;
}

/** CPU ms per 1,000 updates that the churn added over the quiet baseline (all threads). */
export function msPerThousand(run: ChurnCostRun): { main: number; other: number } {
  const per = 1000 / Math.max(1, run.updates);
  return {
    main: (run.churn.mainMs - run.quiet.mainMs) * per,
    other: (run.churn.otherMs - run.quiet.otherMs) * per,
  };
}

/** The Markdown the scenario prints. */
export function churnCostMarkdown(runs: readonly ChurnCostRun[], rate: number): string {
  const rows = runs.map((run, i) => {
    const cost = msPerThousand(run);
    const share = (ms: number) => `${((100 * ms) / (run.seconds * 1000)).toFixed(1)}%`;
    return `| ${i + 1} | ${run.updates} | ${share(run.quiet.mainMs)} / ${share(run.quiet.otherMs)} | ${share(run.churn.mainMs)} / ${share(run.churn.otherMs)} | ${cost.main.toFixed(0)} | ${cost.other.toFixed(0)} | ${(cost.main + cost.other).toFixed(0)} |`;
  });
  const median =
    spread(
      runs.map((run) => {
        const cost = msPerThousand(run);
        return cost.main + cost.other;
      }),
    )?.median ?? 0;
  return [
    "## churn-cost: remora's CPU for slice updates, no traffic",
    "",
    `${rate} updates/s to 1,000 Services × 10 endpoints; remora pinned to one core; CPU from /proc per thread (main / other threads, share of a core).`,
    "",
    "| run | updates | quiet window | churn window | main ms / 1k updates | other threads ms / 1k | total ms / 1k |",
    "|---|---:|---|---|---:|---:|---:|",
    ...rows,
    "",
    `Median: **${median.toFixed(0)} ms of CPU per 1,000 updates** (${((median * rate) / 10_000).toFixed(1)}% of a core at ${rate}/s).`,
    "",
  ].join("\n");
}

/** Whether `argv` asks for this scenario (run.ts hands those runs here). */
export function wantsChurnCost(argv: string[]): boolean {
  return asksForScenario(argv, "churn-cost");
}

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function measureOnce(
  cluster: ChurnCluster,
  dir: string,
  seconds: number,
  nodeFlags: string[],
): Promise<ChurnCostRun> {
  const pinning = detectPinning();
  const [port, admin] = [await freePort(), await freePort()];
  const kubeconfig = join(dir, "kubeconfig.json");
  cluster.writeKubeconfig(kubeconfig);
  const config = join(dir, "remora.yaml");
  writeFileSync(config, remoraKubernetesConfig(port, admin, kubeconfig));
  const how = remoraLaunch();
  const cli = new URL("../proxy/cli.js", import.meta.url).pathname;
  const proc = launch(
    "remora",
    process.execPath,
    [...how.flags, ...nodeFlags, cli, "run", "-c", config],
    { core: pinning.proxyCore, env: { ...process.env, ...how.env } },
  );
  try {
    await waitForHttp(proc, `http://127.0.0.1:${admin}/ready`, { timeoutMs: 60_000 });
    const pid = proc.pid!;
    const msPerTick = 1000 / ticksPerSecond();
    const window = async (): Promise<ThreadCpu> => {
      const before = threadCpu(pid, readThreads(pid), msPerTick);
      await wait(seconds * 1000);
      const after = threadCpu(pid, readThreads(pid), msPerTick);
      return { mainMs: after.mainMs - before.mainMs, otherMs: after.otherMs - before.otherMs };
    };
    await wait(2000); // the list's garbage collected, timers settled
    const quiet = await window();
    // Two seconds of churn first (past the first burst), then the window counts its own updates.
    cluster.startChurn();
    await wait(2000);
    cluster.stopChurn();
    cluster.startChurn();
    const churn = await window();
    const tally = cluster.stopChurn();
    return { quiet, churn, seconds, updates: tally.updates };
  } finally {
    await proc.stop();
  }
}

/** `npm run bench -- --scenario churn-cost [--rate N] [--seconds N] [--runs N]`. */
export async function churnCostMain(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      scenario: { type: "string" },
      rate: { type: "string", default: "500" },
      seconds: { type: "string", default: "10" },
      runs: { type: "string", default: "3" },
      "node-flags": { type: "string", default: "" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(CHURN_COST_HELP);
    return 0;
  }
  const rate = positiveInteger("rate", values.rate);
  const seconds = positiveInteger("seconds", values.seconds);
  const runs = positiveInteger("runs", values.runs);
  const nodeFlags = nodeFlagsOption(values["node-flags"]);
  pinProcess(process.pid, detectPinning().loadCore);
  const dir = await mkdtemp(join(tmpdir(), "remora-churn-cost-"));
  // The endpoints are never contacted: no traffic goes through remora.
  const cluster = await ChurnCluster.start(
    { services: 1000, endpointsPerService: 10, updatesPerSec: rate },
    "bench",
    9,
  );
  const results: ChurnCostRun[] = [];
  try {
    for (let i = 1; i <= runs; i++) {
      const run = await measureOnce(cluster, dir, seconds, nodeFlags);
      const cost = msPerThousand(run);
      process.stderr.write(
        `churn-cost: run ${i}/${runs}: ${run.updates} updates, ${(cost.main + cost.other).toFixed(0)} ms CPU per 1,000\n`,
      );
      results.push(run);
    }
  } finally {
    await cluster.stop();
    await rm(dir, { recursive: true, force: true });
  }
  process.stdout.write(churnCostMarkdown(results, rate));
  return 0;
}
