import { describe, expect, it } from "vitest";
import { churnCostMarkdown, msPerThousand, threadCpu, wantsChurnCost } from "./churn-cost.js";

/** A /proc/PID/task/TID/stat line with `utime` and `stime` ticks (fields 14 and 15). */
function stat(tid: number, name: string, utime: number, stime: number): string {
  const rest = ["S", "1", "1", "1", "0", "-1", "0", "0", "0", "0", "0", utime, stime, "0", "0"];
  return `${tid} (${name}) ${rest.join(" ")} 20 0 1 0`;
}

describe("churn-cost scenario", () => {
  it("is chosen by --scenario churn-cost in either spelling, and only then", () => {
    expect(wantsChurnCost(["--scenario", "churn-cost"])).toBe(true);
    expect(wantsChurnCost(["--runs", "1", "--scenario=churn-cost"])).toBe(true);
    expect(wantsChurnCost(["--scenario", "churn"])).toBe(false);
  });

  it("splits CPU into the main thread and the others, from per-thread stat lines", () => {
    const stats = new Map([
      [100, stat(100, "MainThread", 30, 10)],
      [101, stat(101, "V8Worker", 5, 1)],
      [102, stat(102, "V8 Worker) x", 2, 2)],
    ]);
    expect(threadCpu(100, stats, 10)).toEqual({ mainMs: 400, otherMs: 100 });
  });

  it("charges the churn only what it added over the quiet window, per 1,000 updates", () => {
    const run = {
      quiet: { mainMs: 80, otherMs: 40 },
      churn: { mainMs: 980, otherMs: 140 },
      seconds: 10,
      updates: 5000,
    };
    expect(msPerThousand(run)).toEqual({ main: 180, other: 20 });
    const text = churnCostMarkdown([run, { ...run, updates: 4000 }, run], 500);
    expect(text).toContain("| 1 | 5000 | 0.8% / 0.4% | 9.8% / 1.4% | 180 | 20 | 200 |");
    expect(text).toContain("| 2 | 4000 | 0.8% / 0.4% | 9.8% / 1.4% | 225 | 25 | 250 |");
    expect(text).toContain("**200 ms of CPU per 1,000 updates** (10.0% of a core at 500/s)");
  });
});
