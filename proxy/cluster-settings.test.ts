import { describe, expect, it } from "vitest";
import { parseConfig } from "./config/load.js";
import { clusterSettings } from "./runtime.js";

const LISTENER = "listeners: [{ name: out, kind: outbound, port: 0 }]\n";

function settingsOf(services: string) {
  const config = parseConfig(`${LISTENER}services: ${services}`, "test.yaml");
  return clusterSettings(config.services[0]!);
}

describe("clusterSettings: a subset's trafficPolicy is merged over the service's, field by field", () => {
  it("a subset that sets only tls keeps the service's balancer", () => {
    const settings =
      settingsOf(`[{ name: a, trafficPolicy: { loadBalancer: { policy: LEAST_REQUEST, choiceCount: 3 } },
      subsets: [{ name: v1, labels: { v: "1" }, trafficPolicy: { tls: { mode: SIMPLE } } }] }]`);
    const v1 = settings.subsets[0]!;
    expect(v1.lb.policy).toBe(settings.lb.policy);
    expect(v1.lb.choiceCount).toBe(3);
    expect(v1.tls.mode).toBe("SIMPLE");
  });

  it("a subset's own balancer replaces the service's; its tls stays the service's", () => {
    const settings =
      settingsOf(`[{ name: a, trafficPolicy: { loadBalancer: { policy: LEAST_REQUEST }, tls: { mode: SIMPLE } },
      subsets: [{ name: v1, trafficPolicy: { loadBalancer: { policy: RANDOM } } }, { name: v2 }] }]`);
    expect(settings.subsets[0]!.lb.policy).not.toBe(settings.lb.policy);
    expect(settings.subsets[0]!.tls.mode).toBe("SIMPLE");
    expect(settings.subsets[1]!.lb).toEqual(settings.lb);
  });
});
