/**
 * `npm run bench -- --scenario garbage`: issue 14's memory-under-garbage run. One remora process
 * (started as the CLI starts it, V8 flags included), rounds of malformed requests on fresh
 * connections, many at once: random bytes, mutated valid requests (the fuzzer's generator),
 * 1 MiB header lines, huge header counts and bad chunk sizes. remora's RSS is sampled from
 * /proc every 50 ms; the figure is the peak per round (goal: under 100 MB), not a timed test.
 */

import { readFileSync } from "node:fs";
import { connect } from "node:net";
import { parseArgs } from "node:util";
import { generateCase, int, type Random, seededRandom } from "../fuzz/cases.js";
import { REMORA_LIMITS, RecordingBackend, RemoraProcess, SERVICE } from "../fuzz/session.js";
import { asksForScenario, nodeFlagsOption, positiveInteger } from "./own-runner.js";
import { parseStatusBytes } from "./proc.js";
import { remoraLaunch } from "./targets.js";

export const GARBAGE_HELP = `Usage: npm run bench -- --scenario garbage [options]

  --rounds N        rounds (default 4)
  --requests N      malformed requests per round, one connection each (default 20000)
  --concurrency N   connections open at once (default 200)
  --seed S          seed of the inputs (default 14)
  --kinds K,K       only these kinds of input (default: all of random-bytes, mutated,
                    huge-line, many-fields, bad-chunk)
  --node-flags F    extra Node.js flags for remora, to try V8 settings (e.g. "--max-semi-space-size=2")
`;

/** The goal of issue 14: peak RSS during the run. */
export const GARBAGE_GOAL_MB = 100;

const KINDS = ["random-bytes", "mutated", "huge-line", "many-fields", "bad-chunk"] as const;
type Kind = (typeof KINDS)[number];

const HUGE_LINE = Buffer.concat([
  Buffer.from(`GET / HTTP/1.1\r\nHost: ${SERVICE}\r\nX-Big: `, "latin1"),
  Buffer.alloc(1024 * 1024, "a"),
]);
const MANY_FIELDS = Buffer.from(
  `GET / HTTP/1.1\r\nHost: ${SERVICE}\r\n${"X-N: v\r\n".repeat(20_000)}\r\n`,
  "latin1",
);
const BAD_CHUNKS = [
  "zz\r\nhello\r\n0\r\n\r\n",
  "00000000000000005\r\nhello\r\n0\r\n\r\n",
  "ffffffffffffffffff\r\nx\r\n",
  "5\r\nhelloXX\r\n0\r\n\r\n",
  "5 ;a\r\nhello\r\n0\r\n\r\n",
  `5;${"e".repeat(20_000)}\r\nhello\r\n0\r\n\r\n`,
];

/** Input `i` of a round: the kinds in turn, each varied by the seed. */
function garbage(
  r: Random,
  seed: number,
  i: number,
  kinds: readonly Kind[],
): { kind: Kind; bytes: Buffer } {
  const kind = kinds[i % kinds.length]!;
  switch (kind) {
    case "random-bytes": {
      const out = Buffer.allocUnsafe(int(r, 1, 8192));
      for (let k = 0; k < out.length; k++) out[k] = int(r, 0, 255);
      return { kind, bytes: out };
    }
    case "mutated":
      return {
        kind,
        bytes: generateCase(seed, i, { host: SERVICE, mutations: "bytes" }, REMORA_LIMITS).wire,
      };
    case "huge-line":
      return { kind, bytes: HUGE_LINE };
    case "many-fields":
      return { kind, bytes: MANY_FIELDS };
    case "bad-chunk":
      return {
        kind,
        bytes: Buffer.from(
          `POST / HTTP/1.1\r\nHost: ${SERVICE}\r\nTransfer-Encoding: chunked\r\n\r\n${BAD_CHUNKS[int(r, 0, BAD_CHUNKS.length - 1)]}`,
          "latin1",
        ),
      };
  }
}

/** Sends `bytes` on a new connection; resolves once remora closes it (or after 10 s). */
function send(port: number, bytes: Buffer): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    const timer = setTimeout(() => socket.destroy(), 10_000);
    socket.on("connect", () => {
      socket.end(bytes);
    });
    socket.on("data", () => {});
    socket.on("error", () => {});
    socket.on("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function rssMb(pid: number): number {
  try {
    return (parseStatusBytes(readFileSync(`/proc/${pid}/status`, "latin1"), "VmRSS") ?? 0) / 1e6;
  } catch {
    return 0;
  }
}

export interface GarbageRound {
  readonly round: number;
  readonly seconds: number;
  readonly peakRssMb: number;
  readonly endRssMb: number;
}

export interface GarbageReport {
  readonly restRssMb: number;
  readonly rounds: GarbageRound[];
  readonly requestsPerRound: number;
  readonly concurrency: number;
  readonly flags: string[];
  /** Environment the CLI's first line sets (MALLOC_ARENA_MAX). */
  readonly env: Record<string, string>;
  readonly kinds: readonly Kind[];
}

export async function runGarbage(options: {
  rounds: number;
  requests: number;
  concurrency: number;
  seed: number;
  kinds: readonly Kind[];
  nodeFlags: string[];
  log: (line: string) => void;
}): Promise<GarbageReport> {
  const backend = await RecordingBackend.start();
  const cli = remoraLaunch();
  const launch = { env: cli.env, flags: [...cli.flags, ...options.nodeFlags] };
  const remora = await RemoraProcess.start(backend.address, launch);
  const pid = remora.child.pid!;
  try {
    // At rest: started, one valid request served, settled.
    await send(
      remora.port,
      Buffer.from(`GET / HTTP/1.1\r\nHost: ${SERVICE}\r\nConnection: close\r\n\r\n`),
    );
    await new Promise((resolve) => setTimeout(resolve, 500));
    const restRssMb = rssMb(pid);
    options.log(`garbage: remora at rest ${restRssMb.toFixed(1)} MB RSS`);
    const rounds: GarbageRound[] = [];
    const r = seededRandom(options.seed);
    for (let round = 1; round <= options.rounds; round++) {
      let peak = rssMb(pid);
      const sampler = setInterval(() => {
        peak = Math.max(peak, rssMb(pid));
      }, 50);
      const started = performance.now();
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < options.requests) {
          const i = next++;
          await send(remora.port, garbage(r, options.seed + round, i, options.kinds).bytes);
        }
      };
      await Promise.all(Array.from({ length: options.concurrency }, worker));
      clearInterval(sampler);
      const seconds = (performance.now() - started) / 1000;
      const endRssMb = rssMb(pid);
      peak = Math.max(peak, endRssMb);
      if (!remora.running) throw new Error("remora exited during the garbage run");
      rounds.push({ round, seconds, peakRssMb: peak, endRssMb });
      options.log(
        `garbage: round ${round}: ${options.requests} requests in ${seconds.toFixed(1)} s, ` +
          `peak ${peak.toFixed(1)} MB, after ${endRssMb.toFixed(1)} MB RSS`,
      );
    }
    return {
      restRssMb,
      rounds,
      requestsPerRound: options.requests,
      concurrency: options.concurrency,
      flags: launch.flags,
      env: launch.env,
      kinds: options.kinds,
    };
  } finally {
    await remora.stop();
    await backend.close();
  }
}

/** The Markdown the scenario prints. */
export function garbageMarkdown(report: GarbageReport): string {
  const worst = Math.max(...report.rounds.map((r) => r.peakRssMb));
  const lines = [
    "## garbage: memory under malformed input",
    "",
    `${report.requestsPerRound.toLocaleString("en-US")} malformed requests per round, ` +
      `${report.concurrency} connections at once (${report.kinds.join(", ")}); ` +
      `remora's V8 flags: ${report.flags.length === 0 ? "none" : report.flags.join(" ")}; ` +
      `environment: ${
        Object.entries(report.env)
          .map(([k, v]) => `${k}=${v}`)
          .join(" ") || "none"
      }.`,
    "",
    "| round | seconds | peak RSS (MB) | RSS after (MB) |",
    "|---|---|---|---|",
    `| at rest | | | ${report.restRssMb.toFixed(1)} |`,
    ...report.rounds.map(
      (r) =>
        `| ${r.round} | ${r.seconds.toFixed(1)} | ${r.peakRssMb.toFixed(1)} | ${r.endRssMb.toFixed(1)} |`,
    ),
    "",
    `Peak ${worst.toFixed(1)} MB: ${worst < GARBAGE_GOAL_MB ? "under" : "OVER"} the ${GARBAGE_GOAL_MB} MB goal.`,
    "",
  ];
  return lines.join("\n");
}

/** Whether `argv` asks for the garbage scenario (run.ts hands those runs here). */
export function wantsGarbage(argv: string[]): boolean {
  return asksForScenario(argv, "garbage");
}

/** `npm run bench -- --scenario garbage [--rounds N] [--requests N] [--concurrency N]`. */
export async function garbageMain(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      scenario: { type: "string" },
      rounds: { type: "string", default: "4" },
      requests: { type: "string", default: "20000" },
      concurrency: { type: "string", default: "200" },
      seed: { type: "string", default: "14" },
      kinds: { type: "string", default: KINDS.join(",") },
      "node-flags": { type: "string", default: "" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(GARBAGE_HELP);
    return 0;
  }
  const kinds = values.kinds.split(",").map((k) => k.trim());
  for (const k of kinds) {
    if (!(KINDS as readonly string[]).includes(k))
      throw new Error(`--kinds: unknown kind "${k}" (known: ${KINDS.join(", ")})`);
  }
  const report = await runGarbage({
    kinds: kinds as Kind[],
    rounds: positiveInteger("rounds", values.rounds),
    requests: positiveInteger("requests", values.requests),
    concurrency: positiveInteger("concurrency", values.concurrency),
    seed: positiveInteger("seed", values.seed),
    nodeFlags: nodeFlagsOption(values["node-flags"]),
    log: (line) => process.stderr.write(`${line}\n`),
  });
  process.stdout.write(garbageMarkdown(report));
  return Math.max(...report.rounds.map((r) => r.peakRssMb)) < GARBAGE_GOAL_MB ? 0 : 1;
}
