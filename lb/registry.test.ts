import { describe, expect, it } from "vitest";
import {
  createBalancer,
  isKnownPolicy,
  knownPolicies,
  UnknownBalancerPolicyError,
} from "./registry.js";
import { RoundRobinBalancer } from "./round-robin.js";

describe("balancer registry", () => {
  it("knows round-robin under remora's and Istio's spelling", () => {
    expect(knownPolicies()).toEqual(["round-robin", "ROUND_ROBIN"]);
    expect(isKnownPolicy("round-robin")).toBe(true);
    expect(isKnownPolicy("ROUND_ROBIN")).toBe(true);
    expect(isKnownPolicy("Round-Robin")).toBe(false);
  });

  it("creates a fresh balancer per call, canonical name either way", () => {
    const one = createBalancer("round-robin");
    const two = createBalancer("ROUND_ROBIN");
    expect(one).toBeInstanceOf(RoundRobinBalancer);
    expect(two).toBeInstanceOf(RoundRobinBalancer);
    expect(one).not.toBe(two);
    expect(two.policy).toBe("round-robin");
  });

  it("passes the injected random through", () => {
    const balancer = createBalancer("round-robin", { random: () => 0.75 });
    const endpoints = [1, 2, 3, 4].map((port) => ({
      id: `h:${port}`,
      host: "h",
      port,
      weight: 1,
      labels: {},
      ready: true,
    }));
    balancer.update(endpoints);
    expect(balancer.pick({})?.port).toBe(4);
  });

  it("throws a typed error for an unknown policy", () => {
    expect(() => createBalancer("LEAST_REQUEST")).toThrow(UnknownBalancerPolicyError);
    expect(() => createBalancer("magic")).toThrow(
      expect.objectContaining({
        name: "UnknownBalancerPolicyError",
        code: "REMORA_ERR_UNKNOWN_LB_POLICY",
        policy: "magic",
        message: 'unknown load-balancer policy "magic": expected one of round-robin, ROUND_ROBIN',
      }),
    );
  });
});
