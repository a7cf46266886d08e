import { describe, expect, it } from "vitest";
import { validateInput } from "../proxy/config/load.js";
import { overlayConfig } from "../proxy/config/overlay.js";
import { configSchema } from "../proxy/config/schema.js";
import { type SidecarInputs, sidecarConfig } from "./sidecar.js";

const base: SidecarInputs = {
  env: {},
  certDir: "/etc/remora/certs",
  certsPresent: false,
  discovery: true,
};

function validated(inputs: SidecarInputs) {
  return validateInput(configSchema, sidecarConfig(inputs), "test");
}

describe("sidecarConfig", () => {
  it("an outbound-only pod without identity: Istio's ports, discovery, ALLOW_ANY", () => {
    const config = validated(base);
    expect(config.listeners).toMatchObject([
      { name: "outbound", kind: "outbound", address: "127.0.0.1", port: 15001 },
    ]);
    expect(config.admin).toEqual({ address: "127.0.0.1", port: 15000 });
    expect(config.probes).toEqual({ address: "0.0.0.0", port: 15021 });
    expect(config.metrics).toMatchObject({ address: "0.0.0.0", port: 15090, enabled: true });
    expect(config.outboundTrafficPolicy).toEqual({ mode: "ALLOW_ANY" });
    expect(config.discovery?.kubernetes).toBeDefined();
    expect(config.tls).toBeUndefined();
  });

  it("app ports from the environment: one inbound listener each, PERMISSIVE with the identity", () => {
    const config = validated({
      ...base,
      env: { REMORA_APP_PORTS: "8080,9090", POD_NAMESPACE: "shop", SERVICE_ACCOUNT: "web" },
      certsPresent: true,
    });
    expect(config.listeners.slice(1)).toMatchObject([
      {
        name: "inbound-8080",
        kind: "inbound",
        port: 15006,
        app: "127.0.0.1:8080",
        tls: { mode: "PERMISSIVE" },
      },
      {
        name: "inbound-9090",
        kind: "inbound",
        port: 15007,
        app: "127.0.0.1:9090",
        tls: { mode: "PERMISSIVE" },
      },
    ]);
    expect(config.tls).toMatchObject({
      certFile: "/etc/remora/certs/tls.crt",
      keyFile: "/etc/remora/certs/tls.key",
      caFile: "/etc/remora/certs/ca.crt",
    });
    expect(config.workload).toMatchObject({ namespace: "shop", serviceAccount: "web" });
  });

  it("flags win over the environment; STRICT, REGISTRY_ONLY, no discovery, a kubeconfig", () => {
    const config = validated({
      ...base,
      env: { REMORA_APP_PORTS: "1" },
      appPorts: "3000",
      certsPresent: true,
      inboundTlsMode: "STRICT",
      outboundTrafficPolicy: "REGISTRY_ONLY",
      discovery: false,
    });
    expect(config.listeners.map((l) => l.name)).toEqual(["outbound", "inbound-3000"]);
    expect(config.listeners[1]).toMatchObject({ tls: { mode: "STRICT" } });
    expect(config.outboundTrafficPolicy).toEqual({ mode: "REGISTRY_ONLY" });
    expect(config.discovery).toBeUndefined();
    const kube = validated({ ...base, kubeconfig: "/k/config" });
    expect(kube.discovery?.kubernetes?.kubeconfig).toBe("/k/config");
  });

  it("with the identity and discovery, discovered Services get ISTIO_MUTUAL (auto mTLS); without either, no default policy", () => {
    const config = validated({ ...base, certsPresent: true });
    expect(config.discovery?.kubernetes?.trafficPolicy?.tls).toMatchObject({
      mode: "ISTIO_MUTUAL",
      subjectAltNames: [],
    });
    expect(validated(base).discovery?.kubernetes?.trafficPolicy).toBeUndefined();
    const kubeconfig = validated({ ...base, certsPresent: true, kubeconfig: "/k/config" });
    expect(kubeconfig.discovery?.kubernetes).toMatchObject({
      kubeconfig: "/k/config",
      trafficPolicy: { tls: { mode: "ISTIO_MUTUAL" } },
    });
    // The inbound mode does not matter: origination is about the destination's sidecar.
    const plainInbound = validated({ ...base, certsPresent: true, inboundTlsMode: "DISABLE" });
    expect(plainInbound.discovery?.kubernetes?.trafficPolicy?.tls.mode).toBe("ISTIO_MUTUAL");
  });

  it("refuses mTLS without an identity and bad ports, naming where they came from", () => {
    expect(() => sidecarConfig({ ...base, inboundTlsMode: "STRICT" })).toThrow(
      "inbound TLS mode STRICT needs this workload's identity: /etc/remora/certs/tls.crt",
    );
    expect(() => sidecarConfig({ ...base, env: { REMORA_APP_PORTS: "80,x" } })).toThrow(
      'REMORA_APP_PORTS: expected ports 1-65535 separated by commas, got "x"',
    );
    expect(() => sidecarConfig({ ...base, appPorts: "99999" })).toThrow("--app-ports:");
  });
});

describe("overlayConfig (the mounted file over the generated config)", () => {
  const generated = sidecarConfig({ ...base, env: { REMORA_APP_PORTS: "8080" } });

  it("merges mappings, named list entries by name, appends new entries, replaces other values", () => {
    const merged = overlayConfig(generated, {
      admin: { port: 0 },
      listeners: [
        { name: "inbound-8080", tls: { mode: "DISABLE" }, timeouts: { idle: "5m" } },
        { name: "db", kind: "tcp", port: 5432, service: "postgres" },
      ],
      services: [{ name: "postgres", endpoints: [{ address: "198.18.0.9:5432" }] }],
      discovery: { kubernetes: { namespaces: ["shop"] } },
    });
    const config = validateInput(configSchema, merged, "merged");
    expect(config.admin).toEqual({ address: "127.0.0.1", port: 0 });
    expect(config.listeners.map((l) => l.name)).toEqual(["outbound", "inbound-8080", "db"]);
    expect(config.listeners[1]).toMatchObject({
      kind: "inbound",
      port: 15006,
      app: "127.0.0.1:8080",
      tls: { mode: "DISABLE" },
      timeouts: { idle: 300_000 },
    });
    expect(config.discovery?.kubernetes?.namespaces).toEqual(["shop"]);
    expect(config.services.map((s) => s.name)).toEqual(["postgres"]);
    // A list that is not one of the named lists is replaced.
    const replaced = overlayConfig({ a: { list: [1, 2] } }, { a: { list: [3] } });
    expect(replaced).toEqual({ a: { list: [3] } });
    // The generated document is left as it was.
    expect((generated.admin as { port: number }).port).toBe(15000);
  });

  it("the file turns the generated ISTIO_MUTUAL off, or names a destination without a sidecar", () => {
    const withIdentity = sidecarConfig({ ...base, certsPresent: true });
    const off = validateInput(
      configSchema,
      overlayConfig(withIdentity, {
        discovery: { kubernetes: { trafficPolicy: { tls: { mode: "DISABLE" } } } },
      }),
      "merged",
    );
    expect(off.discovery?.kubernetes?.trafficPolicy?.tls.mode).toBe("DISABLE");
    const legacy = validateInput(
      configSchema,
      overlayConfig(withIdentity, {
        services: [{ name: "legacy", trafficPolicy: { tls: { mode: "DISABLE" } } }],
      }),
      "merged",
    );
    expect(legacy.discovery?.kubernetes?.trafficPolicy?.tls.mode).toBe("ISTIO_MUTUAL");
    expect(legacy.services[0]?.trafficPolicy.tls.mode).toBe("DISABLE");
  });

  it("a mistake in the file is reported with its key path by the real schema", () => {
    const merged = overlayConfig(generated, {
      listeners: [{ name: "inbound-8080", tls: { mode: "MAYBE" } }],
    });
    expect(() => validateInput(configSchema, merged, "merged")).toThrow("listeners[1].tls.mode");
  });
});
