/** The `metrics:` and `workload:` config keys (docs/metrics.md). */
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "./load.js";

const LISTENER = "listeners: [{ name: out, kind: outbound, port: 15001 }]\n";

function issuesOf(text: string): [string, string][] {
  try {
    parseConfig(text, "test.yaml");
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues.map((i) => [i.path, i.message]);
  }
  throw new Error("config was accepted");
}

describe("metrics and workload config", () => {
  it("defaults to Istio's metrics port on every interface, and an empty workload", () => {
    const config = parseConfig(LISTENER, "x.yaml");
    expect(config.metrics).toEqual({ enabled: true, port: 15090, address: "0.0.0.0" });
    expect(config.workload).toEqual({});
  });

  it("takes port null (no listener), port 0 and a disabled switch", () => {
    expect(parseConfig(`${LISTENER}metrics: { port: null }`, "x").metrics.port).toBeNull();
    expect(parseConfig(`${LISTENER}metrics: { port: 0 }`, "x").metrics.port).toBe(0);
    expect(parseConfig(`${LISTENER}metrics: { enabled: false }`, "x").metrics.enabled).toBe(false);
  });

  it("rejects a metrics port another listener or the admin API uses", () => {
    expect(issuesOf(`admin: { port: 15000 }\n${LISTENER}metrics: { port: 15000 }`)).toEqual([
      ["metrics.port", "port 15000 is already used by admin.port"],
    ]);
    expect(issuesOf(`${LISTENER.replace("15001", "15090")}`)).toEqual([
      ["listeners[0].port", "port 15090 is already used by metrics.port"],
    ]);
  });

  it("rejects bad values and unknown keys with their paths", () => {
    const issues = issuesOf(
      `${LISTENER}metrics: { enabled: yes, port: 99999, extra: 1 }\nworkload: { namespace: Bad_NS, nme: x }`,
    );
    expect(issues.map(([path]) => path).sort()).toEqual([
      "metrics.enabled",
      "metrics.extra",
      "metrics.port",
      "workload.namespace",
      "workload.nme",
    ]);
  });

  it("keeps the workload fields as written", () => {
    const config = parseConfig(
      `${LISTENER}workload: { name: reviews-v1, namespace: shop, serviceAccount: sa, app: reviews, version: v1, cluster: east }`,
      "x",
    );
    expect(config.workload).toEqual({
      name: "reviews-v1",
      namespace: "shop",
      serviceAccount: "sa",
      app: "reviews",
      version: "v1",
      cluster: "east",
    });
  });
});
