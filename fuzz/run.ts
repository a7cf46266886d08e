/**
 * `npm run fuzz -- [--cases N] [--session M] [--seed S] [--case I]`: long runs of the HTTP/1.1
 * fuzzer whose short share runs in `npm test` (fuzz/fuzz.test.ts). Prints the seed first, and for
 * every failure the case index, the property and the smallest input still failing, so it
 * replays with `--seed S --case I`. Exits 1 when any property failed.
 */
import { parseArgs } from "node:util";
import { caseRandom, generateCase } from "./cases.js";
import { checkCodec, describeVerdict, readConnection, runCodecCases } from "./codec.js";
import {
  checkSession,
  REMORA_LIMITS,
  RecordingBackend,
  RemoraProcess,
  SERVICE,
} from "./session.js";

const HELP = `Usage: npm run fuzz -- [options]

  --cases N      connections checked in-process against the codec's properties (default 20000)
  --session M    connections sent through a real remora process to a node:http backend
                 (default: cases / 100)
  --seed S       seed (default: from the clock; always printed)
  --case I       replay case I of the seed only: print it, its verdict and any failure
  -h, --help     this text
`;

/** The in-process run's limits: small, so heads reach them often (as in fuzz.test.ts). */
const CODEC_LIMITS = { maxHeadBytes: 4096, maxTargetBytes: 512 };

function count(raw: string | undefined, fallback: number, name: string): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0)
    throw new Error(`--${name} must be a whole number, got "${raw}"`);
  return n;
}

/** An input as a JSON string, cut at 4,000 bytes (replay with --case for the whole of it). */
const show = (b: Buffer): string =>
  `${JSON.stringify(b.toString("latin1", 0, 4000))}${b.length > 4000 ? ` ... (${b.length} bytes)` : ""}`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      cases: { type: "string" },
      session: { type: "string" },
      seed: { type: "string" },
      case: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const seed = count(values.seed, Date.now() % 0x7fffffff, "seed");
  const cases = count(values.cases, 20_000, "cases");
  const sessionCases = count(values.session, Math.floor(cases / 100), "session");
  process.stdout.write(`fuzz: seed ${seed}\n`);
  const codecCase = (i: number) =>
    generateCase(seed, i, { host: SERVICE, mutations: "bytes" }, CODEC_LIMITS);

  if (values.case !== undefined) {
    const i = count(values.case, 0, "case");
    const c = codecCase(i);
    process.stdout.write(`case ${i} [${c.tags.join(",")}]\n  input ${show(c.wire)}\n`);
    process.stdout.write(`  verdict ${describeVerdict(readConnection([c.wire], CODEC_LIMITS))}\n`);
    const failure = checkCodec(c.wire, CODEC_LIMITS, caseRandom(seed + 1, i));
    process.stdout.write(
      failure === null ? "  codec: ok\n" : `  codec: ${failure.property}: ${failure.detail}\n`,
    );
    return failure === null ? 0 : 1;
  }

  const started = performance.now();
  const run = runCodecCases(cases, CODEC_LIMITS, codecCase, (i) => caseRandom(seed + 1, i), 20);
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  process.stdout.write(
    `fuzz: codec: ${run.checked} connections in ${seconds} s (${run.accepted} accepted, ` +
      `${run.rejected} rejected), ${run.failures.length} failures\n`,
  );
  for (const f of run.failures) {
    process.stdout.write(
      `FAIL codec case ${f.index} [${f.tags.join(",")}] ${f.failure.property}\n` +
        `  ${f.failure.detail.slice(0, 2000)}\n  minimal input (${f.minimal.length} bytes): ${show(f.minimal)}\n` +
        `  replay: npm run fuzz -- --seed ${seed} --case ${f.index}\n`,
    );
  }

  let sessionFailures = 0;
  let skipped = 0;
  if (sessionCases > 0) {
    const backend = await RecordingBackend.start();
    const remora = await RemoraProcess.start(backend.address);
    try {
      for (let i = 0; i < sessionCases && sessionFailures < 20; i++) {
        const c = generateCase(seed, i, { host: SERVICE, mutations: "structured" }, REMORA_LIMITS);
        const problem = await checkSession(remora, backend, c, caseRandom(seed + 2, i));
        if (problem === "skip") skipped++;
        if (problem === null || problem === "skip") continue;
        sessionFailures++;
        process.stdout.write(
          `FAIL session case ${i} [${c.tags.join(",")}] ${problem}\n  input: ${show(c.wire)}\n`,
        );
        if (!remora.running) break;
      }
    } finally {
      await remora.stop();
      await backend.close();
    }
    process.stdout.write(
      `fuzz: session: ${sessionCases} connections through remora, ${backend.requests.length} ` +
        `requests reached the backend, ${skipped} skipped (a method llhttp does not know), ` +
        `${sessionFailures} failures\n`,
    );
  }
  return run.failures.length + sessionFailures === 0 ? 0 : 1;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(
      `fuzz: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n\n${HELP}`,
    );
    process.exitCode = 2;
  },
);
