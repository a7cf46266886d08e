/** The config's `tls:` key through load, Runtime start/stop and the expiry metric. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadConfigFile, parseConfig, serviceDefaults } from "../proxy/config/load.js";
import { Runtime } from "../proxy/runtime.js";
import { mint } from "../tls/testing.js";
import { TlsIdentityError } from "../tls/workload-identity.js";

const CONFIG = `
admin: { port: 0 }
probes: { port: null }
metrics: { port: null }
tls: { certFile: certs/tls.crt, keyFile: certs/tls.key, caFile: certs/ca.crt }
listeners:
  - { name: outbound, kind: outbound, port: 0 }
services: []
`;

describe("config tls: this workload's identity in the runtime", () => {
  let dir: string;
  let runtime: Runtime | undefined;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "remora-tls-config-"));
    mkdirSync(join(dir, "certs"));
    writeFileSync(join(dir, "remora.yaml"), CONFIG);
  });

  afterEach(async () => {
    await runtime?.stop();
    runtime = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  const writeCerts = (options: { notAfter?: number; notBefore?: number } = {}) => {
    const ca = mint({ commonName: "mesh CA" });
    const leaf = mint({ issuer: ca, uris: ["spiffe://cluster.local/ns/a/sa/b"], ...options });
    writeFileSync(join(dir, "certs", "tls.crt"), leaf.certPem);
    writeFileSync(join(dir, "certs", "tls.key"), leaf.keyPem);
    writeFileSync(join(dir, "certs", "ca.crt"), ca.certPem);
    return leaf;
  };

  it("resolves the files against the config's directory, starts them and reports expiry", async () => {
    const leaf = writeCerts({ notAfter: Date.now() + 10 * 3_600_000 });
    const config = loadConfigFile(join(dir, "remora.yaml"));
    expect(config.tls?.certFile).toBe(join(dir, "certs", "tls.crt"));
    runtime = new Runtime(config, serviceDefaults());
    await runtime.start();
    expect(runtime.identity?.certificate.serial).toBe(leaf.serial);
    const text = await runtime.metrics!.exposition();
    const value = Number(
      /^remora_certificate_expiry_seconds\{kind="workload"\} (\S+)$/m.exec(text)?.[1],
    );
    expect(value).toBeGreaterThan(9 * 3600);
    expect(value).toBeLessThanOrEqual(10 * 3600);
    // kind="ca": the trust bundle's CA, minted valid for a day (tls/testing.ts's default).
    const ca = Number(/^remora_certificate_expiry_seconds\{kind="ca"\} (\S+)$/m.exec(text)?.[1]);
    expect(ca).toBeGreaterThan(23 * 3600);
    expect(ca).toBeLessThanOrEqual(24 * 3600);
  });

  it("fails the start with the certificate's reason before any listener binds", async () => {
    writeCerts({ notBefore: Date.now() - 48 * 3_600_000, notAfter: Date.now() - 3_600_000 });
    runtime = new Runtime(loadConfigFile(join(dir, "remora.yaml")), serviceDefaults());
    const error = await runtime.start().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TlsIdentityError);
    expect((error as Error).message).toMatch(/certs\/tls\.crt expired .* \(60 min ago\)$/);
    expect(runtime.listeners).toEqual([]);
    expect(runtime.identity).toBeUndefined();
  });

  it("has no expiry series without tls, and names a missing file key", async () => {
    runtime = new Runtime(
      parseConfig(CONFIG.replace(/^tls:.*$/m, ""), "t.yaml"),
      serviceDefaults(),
    );
    await runtime.start();
    expect(await runtime.metrics!.exposition()).not.toMatch(
      /^remora_certificate_expiry_seconds\{/m,
    );
    expect(() => parseConfig(CONFIG.replace("keyFile: certs/tls.key, ", ""), "t.yaml")).toThrow(
      /tls\.keyFile/,
    );
  });
});
