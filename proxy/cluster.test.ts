import { describe, expect, it } from "vitest";
import type { Endpoint } from "../discovery/endpoint.js";
import { ServiceRegistry } from "../discovery/registry.js";
import type { ServiceEndpoints } from "../discovery/update.js";
import { ClusterManager, type ClusterSettings } from "./cluster.js";
import { serviceDefaults } from "./config/load.js";
import { silentLogger } from "./log.js";
import { clusterSettings } from "./runtime.js";

function endpoint(host: string, labels: Record<string, string> = {}): Endpoint {
  return { id: `${host}:8080`, host, port: 8080, weight: 1, labels, ready: true };
}

function service(name: string, hosts: string[]): ServiceEndpoints {
  return { name, namespace: "default", endpoints: hosts.map((host) => endpoint(host)) };
}

function manager(settings: ClusterSettings = clusterSettings(serviceDefaults())) {
  const registry = new ServiceRegistry();
  const clusters = new ClusterManager(registry, settings, { logger: silentLogger() });
  return { registry, clusters };
}

describe("ClusterManager: a discovery update rebuilds only the services it names", () => {
  it("leaves every other cluster, its host set and its balancer untouched", () => {
    const { registry, clusters } = manager();
    let changes = 0;
    clusters.onChange(() => changes++);
    registry.apply("k", {
      kind: "reset",
      services: [service("a", ["10.0.0.1", "10.0.0.2"]), service("b", ["10.0.1.1"])],
    });
    expect(changes).toBe(2);
    const b = clusters.get("b.default");
    const selected = b?.hosts.selected;
    const balancer = b?.hosts.balancer;
    registry.apply("k", { kind: "add", services: [service("a", ["10.0.0.1"])] });
    expect(clusters.get("a.default")?.hosts.selected.map((e) => e.id)).toEqual(["10.0.0.1:8080"]);
    expect(clusters.get("b.default")).toBe(b);
    expect(b?.hosts.selected).toBe(selected);
    expect(b?.hosts.balancer).toBe(balancer);
    // The set of clusters did not change: the router is not asked to rebuild.
    expect(changes).toBe(2);
  });

  it("a subset's host set still selects by label; the whole service's takes every endpoint", () => {
    const defaults = clusterSettings(serviceDefaults());
    const { registry, clusters } = manager({
      ...defaults,
      subsets: [{ name: "v1", labels: { version: "v1" }, lb: defaults.lb }],
    });
    registry.apply("k", {
      kind: "add",
      services: [
        {
          name: "a",
          namespace: "default",
          endpoints: [
            endpoint("10.0.0.1", { version: "v1" }),
            endpoint("10.0.0.2", { version: "v2" }),
          ],
        },
      ],
    });
    const [all, v1] = clusters.get("a.default")?.hostSets() ?? [];
    expect(all?.selected.map((e) => e.host)).toEqual(["10.0.0.1", "10.0.0.2"]);
    expect(v1?.selected.map((e) => e.host)).toEqual(["10.0.0.1"]);
  });
});
