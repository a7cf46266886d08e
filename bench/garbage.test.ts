import { describe, expect, it } from "vitest";
import { garbageMarkdown, wantsGarbage } from "./garbage.js";

describe("garbage scenario plumbing", () => {
  it("is chosen by --scenario garbage in either spelling, and only then", () => {
    expect(wantsGarbage(["--scenario", "garbage"])).toBe(true);
    expect(wantsGarbage(["--rounds", "2", "--scenario=garbage"])).toBe(true);
    expect(wantsGarbage(["--scenario", "small-get"])).toBe(false);
    expect(wantsGarbage([])).toBe(false);
  });

  it("reports peak RSS per round against the 100 MB goal", () => {
    const text = garbageMarkdown({
      restRssMb: 58,
      rounds: [
        { round: 1, seconds: 10, peakRssMb: 151.2, endRssMb: 140 },
        { round: 2, seconds: 9, peakRssMb: 96, endRssMb: 90 },
      ],
      requestsPerRound: 20000,
      concurrency: 200,
      flags: [],
      kinds: ["random-bytes", "huge-line"],
      env: { MALLOC_ARENA_MAX: "2" },
    });
    expect(text).toContain("environment: MALLOC_ARENA_MAX=2.");
    expect(text).toContain("200 connections at once (random-bytes, huge-line)");
    expect(text).toContain("| 1 | 10.0 | 151.2 | 140.0 |");
    expect(text).toContain("Peak 151.2 MB: OVER the 100 MB goal.");
  });
});
