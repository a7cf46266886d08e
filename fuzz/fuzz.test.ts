/**
 * The HTTP/1.1 fuzzer's CI share (issue 14): a few thousand generated connections through the
 * codec in-process, and a few hundred through a real remora process to a node:http backend.
 * Seeded: a failure here replays with `npm run fuzz -- --seed S --case I` (docs/development.md).
 * Long runs: `npm run fuzz -- --cases 200000`.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { caseRandom, generateCase } from "./cases.js";
import { runCodecCases } from "./codec.js";
import {
  checkSession,
  REMORA_LIMITS,
  RecordingBackend,
  RemoraProcess,
  SERVICE,
} from "./session.js";

const SEED = 0x14_f022;
/** Small limits in-process, so heads reach them (and the 2 KiB prescan path) often. */
const CODEC_LIMITS = { maxHeadBytes: 4096, maxTargetBytes: 512 };

describe("codec fuzz (in-process)", () => {
  it("3,000 connections: only HttpParseError, split-invariant, forwarded heads round-trip", () => {
    const run = runCodecCases(
      3000,
      CODEC_LIMITS,
      (i) => generateCase(SEED, i, { host: SERVICE, mutations: "bytes" }, CODEC_LIMITS),
      (i) => caseRandom(SEED + 1, i),
    );
    const report = run.failures.map(
      (f) =>
        `case ${f.index} [${f.tags.join(",")}] ${f.failure.property}: ${f.failure.detail.slice(0, 400)}\n` +
        `  minimal: ${JSON.stringify(f.minimal.toString("latin1").slice(0, 400))}`,
    );
    expect(report).toEqual([]);
    // Both verdicts in bulk, or "no failure" would mean little.
    expect(run.accepted).toBeGreaterThan(600);
    expect(run.rejected).toBeGreaterThan(600);
  });
});

describe("session fuzz (a remora process, a node:http backend)", () => {
  let backend: RecordingBackend;
  let remora: RemoraProcess;

  beforeAll(async () => {
    backend = await RecordingBackend.start();
    remora = await RemoraProcess.start(backend.address);
  });

  afterAll(async () => {
    await remora?.stop();
    await backend?.close();
  });

  it("300 connections: answered as the model says, rejected bytes reach no backend", async () => {
    const problems: string[] = [];
    for (let i = 0; i < 300 && problems.length < 5; i++) {
      const c = generateCase(SEED, i, { host: SERVICE, mutations: "structured" }, REMORA_LIMITS);
      const problem = await checkSession(remora, backend, c, caseRandom(SEED + 2, i));
      if (problem !== null && problem !== "skip") {
        problems.push(
          `case ${i} [${c.tags.join(",")}] ${problem}\n  ${JSON.stringify(c.wire.toString("latin1").slice(0, 300))}`,
        );
      }
    }
    expect(problems).toEqual([]);
    expect(backend.requests.length).toBeGreaterThan(150);
  });
});
