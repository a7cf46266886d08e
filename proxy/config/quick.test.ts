import { describe, expect, it } from "vitest";
import { ConfigError } from "./errors.js";
import { parseConfig } from "./load.js";
import { quickConfig } from "./quick.js";

describe("quickConfig", () => {
  it("builds the same config as the equivalent file", () => {
    const quick = quickConfig({
      listen: 15001,
      adminPort: 15000,
      services: ["hello=127.0.0.1:9101,127.0.0.1:9102", "db.data=[::1]:5432"],
    });
    const file = parseConfig(
      [
        "admin: { port: 15000 }",
        "probes: { port: null }",
        "metrics: { port: null }",
        "listeners: [{ name: outbound, kind: outbound, port: 15001 }]",
        "services:",
        "  - name: hello",
        "    endpoints: [{ address: 127.0.0.1:9101 }, { address: 127.0.0.1:9102 }]",
        "  - name: db",
        "    namespace: data",
        '    endpoints: [{ address: "[::1]:5432" }]',
      ].join("\n"),
      "equivalent.yaml",
    );
    expect(quick).toEqual(file);
    expect(quick.listeners[0]).toMatchObject({
      kind: "outbound",
      address: "127.0.0.1",
      port: 15001,
    });
    expect(quick.services.map((s) => `${s.name}.${s.namespace}`)).toEqual([
      "hello.default",
      "db.data",
    ]);
  });

  it("accepts no services and ephemeral ports", () => {
    const config = quickConfig({ listen: 0, adminPort: 0, services: [] });
    expect(config.services).toEqual([]);
    expect(config.admin.port).toBe(0);
  });

  it("trims spaces around names and addresses", () => {
    const config = quickConfig({ listen: 1, adminPort: 2, services: [" a = h:1 , h:2 "] });
    expect(config.services[0]?.endpoints.map((e) => e.address)).toEqual(["h:1", "h:2"]);
  });

  it.each([
    ["hello", /"hello": expected NAME=HOST:PORT/],
    ["=h:1", /missing service NAME/],
    ["a=", /one or more HOST:PORT/],
    ["a=h:1,,h:2", /one or more HOST:PORT/],
  ])("rejects the malformed spec %j under --service", (spec, message) => {
    try {
      quickConfig({ listen: 1, adminPort: 2, services: [spec] });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const issues = (error as ConfigError).issues;
      expect(issues).toHaveLength(1);
      expect(issues[0]?.path).toBe("--service");
      expect(issues[0]?.message).toMatch(message);
      expect((error as ConfigError).source).toBe("command line");
    }
  });

  it.each([
    [{ services: ["Hello=h:1"] }, "services[0].name", /DNS-1123/],
    [{ services: ["a.b.c=h:1"] }, "services[0].namespace", /DNS-1123/],
    [{ services: ["a=h"] }, "services[0].endpoints[0].address", /missing :PORT/],
    [{ services: ["a=h:1", "a.default=h:2"] }, "services[1].name", /duplicate service a.default/],
    [{ services: ["a=h:1,h:1"] }, "services[0].endpoints[1].address", /duplicate endpoint/],
    [{ listen: 70000 }, "listeners[0].port", /from 0 to 65535/],
    [{ listen: 15000, adminPort: 15000 }, "listeners[0].port", /already used by admin.port/],
  ])("reports %j with the schema's path", (opts, path, message) => {
    try {
      quickConfig({ listen: 15001, adminPort: 15000, services: [], ...opts });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const issue = (error as ConfigError).issues.find((i) => i.path === path);
      expect(issue?.message).toMatch(message);
    }
  });
});
