import { describe, expect, it } from "vitest";
import {
  mtlsClientFor,
  RESILIENCE,
  SCENARIO_ALIASES,
  SCENARIOS,
  type ScenarioSpec,
  scenarioSkipReason,
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
      "tls-handshake",
      "churn",
      "soak",
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

describe("targets that terminate the client's mTLS", () => {
  const plain = { id: "remora", multiEndpoint: true };
  const tls = { id: "remora-tls", multiEndpoint: false, clientMtls: true };
  const withClient = (id: string, client: ScenarioSpec["client"]): ScenarioSpec => ({
    ...byId(id),
    client,
  });

  it("get a client that can present a certificate: autocannon where wrk was chosen", () => {
    expect(mtlsClientFor("wrk")).toBe("autocannon");
    expect(mtlsClientFor("autocannon")).toBe("autocannon");
    expect(mtlsClientFor("handshake")).toBe("handshake");
    expect(mtlsClientFor("stream")).toBeNull();
    expect(mtlsClientFor("hold")).toBeNull();
    expect(scenarioSkipReason(withClient("small-get", "wrk"), tls)).toBeNull();
    expect(scenarioSkipReason(withClient("latency", "autocannon"), tls)).toBeNull();
  });

  it("are skipped, with the reason, where no client of the harness speaks mTLS", () => {
    expect(scenarioSkipReason(byId("stream-download"), tls)).toBe(
      "the stream client cannot present a client certificate",
    );
    expect(scenarioSkipReason(byId("conn-1000-open"), tls)).toBe(
      "the hold client cannot present a client certificate",
    );
    // Nothing changes for plaintext targets there.
    expect(scenarioSkipReason(byId("stream-download"), plain)).toBeNull();
  });

  it("are the only targets of the handshake scenario", () => {
    const handshake = byId("tls-handshake");
    expect(handshake).toMatchObject({ focus: "handshake", client: "handshake", mtlsOnly: true });
    expect(scenarioSkipReason(handshake, tls)).toBeNull();
    expect(scenarioSkipReason(handshake, plain)).toBe(
      "plaintext to the client: no TLS handshake to measure",
    );
    expect(scenarioSkipReason(handshake, { id: "direct", multiEndpoint: false })).not.toBeNull();
    // --scenario tls: keep-alive throughput and handshakes.
    expect(selectScenarios(["tls"]).map((s) => s.id)).toEqual(["small-get", "tls-handshake"]);
    // Not part of --quick.
    expect(SCENARIO_ALIASES.quick).not.toContain("tls-handshake");
  });

  it("keep the failover reasons first: one upstream is one upstream", () => {
    expect(scenarioSkipReason(byId("failover"), tls)).toBe(
      "takes a single upstream; no balancing to fail over",
    );
    expect(scenarioSkipReason(byId("failover"), { id: "direct", multiEndpoint: false })).toBe(
      "nothing to fail over without a proxy",
    );
  });
});
