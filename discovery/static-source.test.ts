import { describe, expect, it } from "vitest";
import { parseConfig } from "../proxy/config/load.js";
import { ServiceRegistry } from "./registry.js";
import { StaticSource, serviceEndpoints } from "./static-source.js";

const config = parseConfig(
  [
    "listeners: [{ name: out, kind: outbound, port: 0 }]",
    "services:",
    "  - name: hello",
    "    endpoints:",
    "      - { address: 127.0.0.1:9101, weight: 3, labels: { version: v1 } }",
    '      - { address: "[::1]:9102" }',
    "  - { name: db, namespace: data }",
  ].join("\n"),
  "test.yaml",
);

describe("StaticSource", () => {
  it("publishes the config's services once and is synced after start", () => {
    const registry = new ServiceRegistry();
    const source = new StaticSource(registry, config.services);
    expect(registry.isSynced()).toBe(false);
    source.start();
    expect(registry.isSynced()).toBe(true);
    expect(registry.keys()).toEqual(["db.data", "hello.default"]);
    expect(registry.get("hello.default")?.endpoints).toEqual([
      {
        id: "127.0.0.1:9101",
        host: "127.0.0.1",
        port: 9101,
        weight: 3,
        labels: { version: "v1" },
        ready: true,
      },
      { id: "[::1]:9102", host: "::1", port: 9102, weight: 1, labels: {}, ready: true },
    ]);
    expect(registry.get("db.data")?.endpoints).toEqual([]);
  });

  it("builds frozen endpoints the registry can publish without copying", () => {
    const [hello] = serviceEndpoints(config.services);
    const endpoint = hello?.endpoints[0];
    expect(Object.isFrozen(endpoint)).toBe(true);
    expect(Object.isFrozen(endpoint?.labels)).toBe(true);
    const registry = new ServiceRegistry();
    registry.apply("s", { kind: "reset", services: [hello!] });
    expect(registry.get("hello.default")?.endpoints[0]).toBe(endpoint);
  });

  it("update publishes a reloaded config's services as one reset: changed, added, removed", () => {
    const registry = new ServiceRegistry();
    const source = new StaticSource(registry, config.services);
    source.start();
    const changed: string[] = [];
    registry.subscribe((snapshot, key) => changed.push(`${key}:${snapshot ? "set" : "gone"}`));
    const next = parseConfig(
      [
        "listeners: [{ name: out, kind: outbound, port: 0 }]",
        "services:",
        "  - name: hello",
        "    endpoints:",
        "      - { address: 127.0.0.1:9101, weight: 3, labels: { version: v1 } }",
        "  - { name: db, namespace: data }",
        "  - { name: new, endpoints: [{ address: 127.0.0.1:9200 }] }",
      ].join("\n"),
      "next.yaml",
    );
    source.update(next.services);
    // db.data is unchanged, so it is not republished.
    expect(changed.sort()).toEqual(["hello.default:set", "new.default:set"]);
    expect(registry.get("hello.default")?.endpoints.map((e) => e.id)).toEqual(["127.0.0.1:9101"]);
    source.update([]);
    expect(registry.keys()).toEqual([]);
  });
});
