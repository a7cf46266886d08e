import { describe, expect, it } from "vitest";
import { parseConfig } from "./load.js";
import { REDACTED, redact, redactAt, SECRET_PATHS } from "./redact.js";

const config = parseConfig(
  [
    "admin: { port: 0 }",
    "probes: { port: null }",
    "listeners: [{ name: out, kind: outbound, port: 0 }]",
    "services:",
    "  - { name: a, endpoints: [{ address: 127.0.0.1:1, labels: { token: t1 } }] }",
    "  - { name: b, endpoints: [{ address: 127.0.0.1:2, labels: { token: t2, zone: z } }] }",
  ].join("\n"),
  "test.yaml",
);

describe("redact", () => {
  it("replaces every value at a listed path, through lists and mappings, in a copy", () => {
    const shown = redact(config, ["services.*.endpoints.*.labels.token", "admin.address"]);
    expect(shown.services.map((s) => s.endpoints[0]?.labels)).toEqual([
      { token: REDACTED },
      { token: REDACTED, zone: "z" },
    ]);
    expect(shown.admin.address).toBe(REDACTED);
    expect(shown.admin.port).toBe(0);
    // The running config is not touched.
    expect(config.services[0]?.endpoints[0]?.labels.token).toBe("t1");
    expect(config.admin.address).toBe("127.0.0.1");
  });

  it("redacts a value shown by its key path: a secret, inside one, or holding one", () => {
    const paths = ["tls.key", "services.*.token"];
    expect(redactAt("tls.key", "PEM", paths)).toBe(REDACTED);
    expect(redactAt("tls.key.pem", "PEM", paths)).toBe(REDACTED);
    expect(redactAt("services.3.token", "t", paths)).toBe(REDACTED);
    expect(redactAt("tls", { key: "PEM", cert: "C" }, paths)).toEqual({ key: REDACTED, cert: "C" });
    expect(redactAt("tls.cert", "C", paths)).toBe("C");
    expect(redactAt("tls.key", undefined, paths)).toBeUndefined();
  });

  it("ignores paths that are absent or unset", () => {
    const shown = redact(config, ["discovery.file", "services.*.nothing.here", "probes.port"]);
    expect(shown).toEqual(config);
  });

  it("lists paths that exist in the schema's vocabulary (none hold secrets yet)", () => {
    for (const path of SECRET_PATHS) expect(path).toMatch(/^[A-Za-z*]+(\.[A-Za-z*]+)*$/);
    expect(redact(config)).toEqual(config);
  });
});
