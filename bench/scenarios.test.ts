import { describe, expect, it } from "vitest";
import {
  RESILIENCE,
  SCENARIO_ALIASES,
  SCENARIOS,
  type ScenarioSpec,
  selectScenarios,
  wrkCanDrive,
} from "./scenarios.js";

const byId = (id: string): ScenarioSpec => {
  const spec = SCENARIOS.find((s) => s.id === id);
  if (spec === undefined) throw new Error(`no scenario ${id}`);
  return spec;
};

describe("the failover scenarios", () => {
  it("are listed in table order, the kill first, and selected together by failover-all", () => {
    expect(SCENARIOS.map((s) => s.id)).toEqual([
      "small-get",
      "post-1k",
      "latency",
      "stream-download",
      "stream-upload",
      "conn-1000",
      "conn-1000-open",
      "failover",
      "failover-503",
      "failover-hang",
    ]);
    expect(SCENARIO_ALIASES["failover-all"]).toEqual(["failover", "failover-503", "failover-hang"]);
    expect(selectScenarios(["failover-hang,failover", "failover-503"]).map((s) => s.id)).toEqual([
      "failover",
      "failover-503",
      "failover-hang",
    ]);
    // `all` runs them; `quick` does not (they have no quick shape).
    expect(SCENARIO_ALIASES.all).toContain("failover-hang");
    expect(SCENARIO_ALIASES.quick).not.toContain("failover-503");
  });

  it("keeps the kill scenario as it was: SIGKILL half-way, targets as shipped", () => {
    const kill = byId("failover");
    expect(kill.disruption).toEqual({
      atFraction: 0.5,
      backend: 0,
      fault: "kill",
      description: "backend 1 of 3 SIGKILLed half-way",
    });
    expect(kill.resilience).toBeUndefined();
  });

  it("turns backend 1 of 3 bad half-way and hardens every target alike", () => {
    for (const [id, fault] of [
      ["failover-503", "503"],
      ["failover-hang", "hang"],
    ] as const) {
      const spec = byId(id);
      expect(spec.disruption).toMatchObject({ atFraction: 0.5, backend: 0, fault });
      expect(spec.resilience).toBe(RESILIENCE);
      expect(spec).toMatchObject({
        focus: "failover",
        method: "GET",
        path: "/",
        client: "autocannon",
        backendCount: 3,
        needsMultiEndpoint: true,
        freshPerRun: true,
        defaults: { connections: 32, durationSec: 10 },
      });
      // Same shape as the kill scenario, so the three tables compare.
      expect(spec.timeoutSec).toBe(byId("failover").timeoutSec);
      // Error counts stay autocannon's, as in the kill scenario.
      expect(wrkCanDrive(spec)).toBe(false);
    }
  });

  it("gives a hung try a deadline well inside the client's timeout", () => {
    const hang = byId("failover-hang");
    const r = RESILIENCE;
    // Every try cut at perTryTimeout: the client's wait ends long before its own timeout.
    expect((r.retries + 1) * r.perTryTimeoutMs).toBeLessThan(hang.timeoutSec * 1000);
    // An ejected endpoint stays out for the rest of the run.
    expect(r.ejectionMs).toBeGreaterThan(hang.defaults.durationSec * 1000);
    expect(Object.isFrozen(r) && Object.isFrozen(r.healthCheck)).toBe(true);
  });
});
