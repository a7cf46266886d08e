import { describe, expect, it } from "vitest";
import type { Endpoint } from "../discovery/endpoint.js";
import { DEFAULT_LB_SETTINGS, type LoadBalancerSettings } from "./balancer.js";
import { FirstComeBalancer } from "./first-come.js";
import { LeastRequestBalancer } from "./least-request.js";
import { MaglevBalancer } from "./maglev.js";
import { RandomBalancer } from "./random.js";
import {
  canonicalPolicy,
  createBalancer,
  isKnownPolicy,
  knownPolicies,
  UnknownBalancerPolicyError,
} from "./registry.js";
import { RingHashBalancer } from "./ring-hash.js";
import { RoundRobinBalancer } from "./round-robin.js";
import { WeightedBalancer } from "./weighted.js";

const endpoints: Endpoint[] = [1, 2, 3, 4].map((port) => ({
  id: `h:${port}`,
  host: "h",
  port,
  weight: 1,
  labels: {},
  ready: true,
}));

function hashed(policy: string, tableSize = 65537): LoadBalancerSettings {
  return {
    ...DEFAULT_LB_SETTINGS,
    policy,
    consistentHash: { httpHeaderName: "x-user", minimumRingSize: 1024, tableSize },
  };
}

describe("balancer registry", () => {
  it("knows every built-in policy under remora's and Istio's spellings", () => {
    expect(knownPolicies()).toEqual([
      "round-robin",
      "weighted",
      "first-come",
      "least-request",
      "random",
      "ring-hash",
      "maglev",
      "ROUND_ROBIN",
      "WEIGHTED",
      "FIRST_COME",
      "LEAST_REQUEST",
      "LEAST_CONN",
      "RANDOM",
      "RING_HASH",
      "MAGLEV",
    ]);
    for (const policy of knownPolicies()) expect(isKnownPolicy(policy)).toBe(true);
    expect(isKnownPolicy("Round-Robin")).toBe(false);
    expect(canonicalPolicy("LEAST_CONN")).toBe("least-request");
  });

  it("creates the balancer each name stands for, a fresh one per call", () => {
    const classes = {
      "round-robin": RoundRobinBalancer,
      weighted: WeightedBalancer,
      "least-request": LeastRequestBalancer,
      random: RandomBalancer,
      "ring-hash": RingHashBalancer,
      maglev: MaglevBalancer,
    } as const;
    expect(
      createBalancer({ ...DEFAULT_LB_SETTINGS, policy: "first-come", maxConcurrent: 1 }),
    ).toBeInstanceOf(FirstComeBalancer);
    for (const [policy, Class] of Object.entries(classes)) {
      const balancer = createBalancer(policy);
      expect(balancer).toBeInstanceOf(Class);
      expect(balancer.policy).toBe(policy);
      expect(createBalancer(policy)).not.toBe(balancer);
    }
    expect(createBalancer("ROUND_ROBIN")).toBeInstanceOf(RoundRobinBalancer);
    expect(createBalancer("LEAST_CONN")).toBeInstanceOf(LeastRequestBalancer);
    expect(createBalancer("MAGLEV").policy).toBe("maglev");
  });

  it("passes the injected random through", () => {
    const balancer = createBalancer("round-robin", { random: () => 0.75 });
    balancer.update(endpoints);
    expect(balancer.pick({})?.port).toBe(4);
  });

  it("passes the settings through (choiceCount, consistentHash)", () => {
    // choiceCount 4 with draws a, b, c, d and a, b, c busy: only a 4th choice finds d.
    let draw = 0;
    const leastRequest = createBalancer(
      { ...DEFAULT_LB_SETTINGS, policy: "least-request", choiceCount: 4 },
      { random: () => [0.1, 0.3, 0.6, 0.9][draw++ % 4]! },
    );
    leastRequest.update(endpoints);
    for (const e of endpoints.slice(0, 3)) leastRequest.onStart?.(e);
    expect(leastRequest.pick({})?.port).toBe(4);

    // The header key reaches the hash balancers: one user, one endpoint, every time.
    for (const policy of ["ring-hash", "maglev"]) {
      const balancer = createBalancer(hashed(policy), { random: Math.random });
      balancer.update(endpoints);
      const ctx = { headers: ["x-user", "alice"] };
      const first = balancer.pick(ctx);
      for (let i = 0; i < 20; i++) expect(balancer.pick(ctx)).toBe(first);
    }
  });

  it("throws a typed error for an unknown policy", () => {
    expect(() => createBalancer({ ...DEFAULT_LB_SETTINGS, policy: "magic" })).toThrow(
      UnknownBalancerPolicyError,
    );
    expect(() => createBalancer("magic")).toThrow(
      expect.objectContaining({
        name: "UnknownBalancerPolicyError",
        code: "REMORA_ERR_UNKNOWN_LB_POLICY",
        policy: "magic",
        message: `unknown load-balancer policy "magic": expected one of ${knownPolicies().join(", ")}`,
      }),
    );
  });

  it("needs the factory of a user's module for policy module", () => {
    expect(() => createBalancer({ ...DEFAULT_LB_SETTINGS, policy: "module" })).toThrow(
      UnknownBalancerPolicyError,
    );
    const own = new RandomBalancer({ random: Math.random });
    expect(createBalancer({ ...DEFAULT_LB_SETTINGS, policy: "module" }, {}, () => own)).toBe(own);
  });
});
