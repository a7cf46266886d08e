/**
 * ClusterManager and `discovery.kubernetes.trafficPolicy`: a Kubernetes Service port nobody
 * configured takes the discovered Services' policy, a `services:` entry for its NAME replaces it
 * whole, a reload moves them between the two, and a TLS cluster's connector is told the
 * Service's real name and port (Istio's SNI), never the cluster name `NAME:PORT`.
 */
import { describe, expect, it } from "vitest";
import { ServiceRegistry } from "../discovery/registry.js";
import type { ClientTlsSettings } from "../tls/client-tls-settings.js";
import { ClusterManager, type ClusterSettings, type ConnectorFactory } from "./cluster.js";
import { parseConfig, serviceDefaults } from "./config/load.js";
import { clusterSettings } from "./runtime.js";
import type { UpstreamConnector } from "./upstream/connector.js";

const DEFAULTS = clusterSettings(serviceDefaults());
const CONFIG = `listeners: [{ name: out, kind: outbound, port: 0 }]
tls: { certFile: a.crt, keyFile: a.key, caFile: ca.crt }
discovery:
  kubernetes:
    trafficPolicy: { tls: { mode: ISTIO_MUTUAL }, loadBalancer: { policy: LEAST_REQUEST } }
services:
  - { name: legacy, namespace: shop, trafficPolicy: { tls: { mode: DISABLE } } }
`;

function settings() {
  const config = parseConfig(CONFIG, "test.yaml");
  const policy = config.discovery?.kubernetes?.trafficPolicy;
  const discovered = clusterSettings({ ...serviceDefaults(), trafficPolicy: policy! });
  const legacy = config.services[0]!;
  const configured = new Map([
    ["legacy.shop", { ...clusterSettings(legacy), name: "legacy", namespace: "shop" }],
  ]);
  return { discovered, configured };
}

type Seen = { tls: ClientTlsSettings; service: Parameters<ConnectorFactory>[1] };

function manager() {
  const registry = new ServiceRegistry();
  const seen: Seen[] = [];
  const connectors: ConnectorFactory = (tls, service) => {
    seen.push({ tls, service });
    return { open: () => {} } as unknown as UpstreamConnector;
  };
  const clusters = new ClusterManager(registry, DEFAULTS, { connectors });
  const publish = (name: string, namespace: string) =>
    registry.apply("kubernetes", {
      kind: "add",
      services: [
        {
          name,
          namespace,
          endpoints: [
            { id: "127.0.0.1:9", host: "127.0.0.1", port: 9, weight: 1, labels: {}, ready: true },
          ],
        },
      ],
    });
  return { clusters, publish, seen };
}

const tlsOf = (s: ClusterSettings | undefined) => s?.tls?.mode ?? "DISABLE";

describe("ClusterManager: discovered Services' default policy", () => {
  it("a port of an unconfigured Service takes it; a configured NAME's entry replaces it whole", () => {
    const { clusters, publish, seen } = manager();
    const { discovered, configured } = settings();
    clusters.configure(configured, discovered);
    publish("hello:80", "shop");
    publish("legacy:8080", "shop");
    const hello = clusters.get("hello:80.shop");
    expect(tlsOf(hello?.settings)).toBe("ISTIO_MUTUAL");
    expect(hello?.settings.lb.policy).toBe("least-request");
    // The entry wins for every field, not only the ones it writes: legacy keeps round-robin.
    const legacy = clusters.get("legacy:8080.shop");
    expect(tlsOf(legacy?.settings)).toBe("DISABLE");
    expect(legacy?.settings.lb.policy).toBe(DEFAULTS.lb.policy);
    // The connector names the Service and its port, not the cluster `hello:80`.
    expect(seen.map((s) => s.service)).toEqual([
      { name: "hello", namespace: "shop", key: "hello:80.shop", port: 80 },
    ]);
    // A discovered service that is no Kubernetes Service port (a discovery file's) keeps the defaults.
    publish("files-only", "shop");
    expect(tlsOf(clusters.get("files-only.shop")?.settings)).toBe("DISABLE");
  });

  it("a reload that drops the default puts the port clusters back on the defaults, and back again", () => {
    const { clusters, publish } = manager();
    const { discovered, configured } = settings();
    clusters.configure(configured, discovered);
    publish("hello:80", "shop");
    clusters.configure(configured);
    expect(clusters.get("hello:80.shop")?.settings).toEqual(DEFAULTS);
    clusters.configure(configured, discovered);
    expect(tlsOf(clusters.get("hello:80.shop")?.settings)).toBe("ISTIO_MUTUAL");
    // A new entry for hello replaces the default for hello's ports on the same reload.
    const entry = { ...DEFAULTS, name: "hello", namespace: "shop" };
    clusters.configure(new Map([...configured, ["hello.shop", entry]]), discovered);
    expect(tlsOf(clusters.get("hello:80.shop")?.settings)).toBe("DISABLE");
  });
});
