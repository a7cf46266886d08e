import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { exchangeRecord } from "../../test/exchange-record.js";
import { AccessLog, type AccessLogSettings } from "./access-log.js";

const record = exchangeRecord;

const on = (path: string, sample = 1): AccessLogSettings => ({
  enabled: true,
  path,
  sample,
  format: "json",
});

async function tempPath(name: string): Promise<string> {
  return join(await mkdtemp(join(tmpdir(), "remora-access-log-")), name);
}

async function lines(path: string): Promise<Record<string, unknown>[]> {
  const text = await readFile(path, "utf8").catch(() => "");
  return text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line));
}

describe("AccessLog", () => {
  it("logs every exchange at sample 1 and none at sample 0, and always calls the next reporter", async () => {
    const path = await tempPath("all.log");
    let forwarded = 0;
    const log = new AccessLog({ next: { report: () => forwarded++ } });
    log.configure(on(path, 1));
    for (let i = 0; i < 200; i++) log.report(record({ path: `/${i}` }));
    log.configure(on(path, 0));
    for (let i = 0; i < 200; i++) log.report(record({ path: "/never" }));
    await log.close();
    const written = await lines(path);
    expect(written.map((l) => l.path)).toEqual(Array.from({ length: 200 }, (_, i) => `/${i}`));
    expect(forwarded).toBe(400);
    expect(log.stats()).toMatchObject({ lines: 200, dropped: 0, errors: 0 });
  });

  it("samples with the injected random source", async () => {
    const path = await tempPath("sampled.log");
    const draws = [0.1, 0.7, 0.49, 0.5, 0.0, 0.99];
    let at = 0;
    const log = new AccessLog({ random: () => draws[at++]! });
    log.configure(on(path, 0.5));
    for (let i = 0; i < draws.length; i++) log.report(record({ path: `/${i}` }));
    await log.close();
    // Kept when the draw is below the fraction: draws 0.1, 0.49 and 0.0.
    expect((await lines(path)).map((l) => l.path)).toEqual(["/0", "/2", "/4"]);
  });

  it("writes nothing and times nothing while disabled", async () => {
    const log = new AccessLog();
    log.configure({ enabled: false, path: "stdout", sample: 1, format: "json" });
    log.report(record());
    expect(log.upstreamTiming).toBe(false);
    expect(log.stats()).toMatchObject({ enabled: false, path: null, lines: 0 });
    await log.close();
  });

  it("moves to a new file on configure, flushing the old one, and stops on disable", async () => {
    const first = await tempPath("first.log");
    const second = await tempPath("second.log");
    const log = new AccessLog();
    log.configure(on(first));
    expect(log.upstreamTiming).toBe(true);
    log.report(record({ path: "/one" }));
    log.configure(on(second));
    log.report(record({ path: "/two" }));
    log.configure({ ...on(second), enabled: false });
    expect(log.upstreamTiming).toBe(false);
    log.report(record({ path: "/off" }));
    await log.close();
    expect((await lines(first)).map((l) => l.path)).toEqual(["/one"]);
    expect((await lines(second)).map((l) => l.path)).toEqual(["/two"]);
  });

  it("keeps the running file when a new path cannot be opened", async () => {
    const good = await tempPath("good.log");
    const log = new AccessLog();
    log.configure(on(good));
    expect(() => log.configure(on(join(good, "..", "missing-dir", "x.log")))).toThrow(/ENOENT/);
    log.report(record({ path: "/still" }));
    expect(log.stats().path).toBe(good);
    await log.close();
    expect((await lines(good)).map((l) => l.path)).toEqual(["/still"]);
  });

  it("drops and counts lines that do not fit the buffer instead of waiting", async () => {
    // A full disk: every write to /dev/full fails with ENOSPC.
    let now = 0;
    const log = new AccessLog({ now: () => now, bufferBytes: 256 * 1024 });
    log.configure(on("/dev/full"));
    const big = record({ userAgent: "x".repeat(100_000) });
    // Lines longer than a chunk go out on their own; the second is refused (buffer full).
    for (let i = 0; i < 3; i++) log.report(big);
    while (log.stats().errors === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    // While the error is fresh, lines are dropped without touching the destination.
    const before = log.stats();
    for (let i = 0; i < 10; i++) log.report(record());
    expect(log.stats().dropped - before.dropped).toBe(10);
    expect(log.stats().lines - before.lines).toBe(10);
    // After the back-off the destination is tried again.
    now += 1001;
    log.report(record());
    expect(log.stats().dropped - before.dropped).toBe(10);
    expect(log.stats().lines - before.lines).toBe(11);
    await log.close();
    expect(log.dropped).toBeGreaterThan(10);
  });
});
