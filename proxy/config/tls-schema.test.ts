import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createCa, issueWorkloadCertificate } from "../../tls/ca.js";
import { ConfigError, loadConfigFile, parseConfig } from "./load.js";

const IDENTITY = "tls: { certFile: tls.crt, keyFile: tls.key, caFile: ca.crt }";

function config(tls: string, top = "", subsets = ""): string {
  return [
    top,
    "listeners: [{ name: outbound, kind: outbound, port: 0 }]",
    "services:",
    "  - name: reviews",
    "    endpoints: [{ address: 127.0.0.1:9443 }]",
    `    trafficPolicy: { tls: ${tls} }`,
    subsets,
    "",
  ].join("\n");
}

function issuesOf(run: () => unknown): { path: string; message: string }[] {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues.map(({ path, message }) => ({ path, message }));
  }
  throw new Error("expected the config to be refused");
}

const AT = "services[0].trafficPolicy.tls";

describe("services[].trafficPolicy.tls", () => {
  it("defaults to DISABLE", () => {
    const parsed = parseConfig(config("{}"), "t.yaml");
    expect(parsed.services[0]!.trafficPolicy.tls).toEqual({ mode: "DISABLE", subjectAltNames: [] });
  });

  it("ISTIO_MUTUAL accepts identities without spiffe:// and stores them with it", () => {
    const parsed = parseConfig(
      config(
        "{ mode: ISTIO_MUTUAL, subjectAltNames: [cluster.local/ns/prod/sa/reviews] }",
        IDENTITY,
      ),
      "t.yaml",
    );
    expect(parsed.services[0]!.trafficPolicy.tls.subjectAltNames).toEqual([
      "spiffe://cluster.local/ns/prod/sa/reviews",
    ]);
  });

  it("ISTIO_MUTUAL needs this workload's identity (the top-level tls), on services and subsets", () => {
    const subsets = "    subsets: [{ name: v1, trafficPolicy: { tls: { mode: ISTIO_MUTUAL } } }]";
    expect(
      issuesOf(() => parseConfig(config("{ mode: ISTIO_MUTUAL }", "", subsets), "t.yaml")),
    ).toEqual([
      { path: `${AT}.mode`, message: expect.stringContaining("needs this workload's identity") },
      {
        path: "services[0].subsets[0].trafficPolicy.tls.mode",
        message: expect.stringContaining("set the top-level tls"),
      },
    ]);
  });

  it("ISTIO_MUTUAL refuses caFile/certFile/keyFile and non-SPIFFE names, saying why", () => {
    const issues = issuesOf(() =>
      parseConfig(
        config(
          "{ mode: ISTIO_MUTUAL, caFile: ca.crt, subjectAltNames: [reviews.prod.svc] }",
          IDENTITY,
        ),
        "t.yaml",
      ),
    );
    expect(issues.map((i) => i.path)).toEqual([`${AT}.caFile`, `${AT}.subjectAltNames[0]`]);
    expect(issues[0]!.message).toContain(
      "Istio would ignore this file silently, remora refuses it",
    );
    expect(issues[1]!.message).toContain("ISTIO_MUTUAL expects SPIFFE identities");
  });

  it("MUTUAL needs certFile and keyFile; SIMPLE refuses them; DISABLE refuses everything else", () => {
    expect(
      issuesOf(() => parseConfig(config("{ mode: MUTUAL }"), "t.yaml")).map((i) => i.path),
    ).toEqual([`${AT}.certFile`, `${AT}.keyFile`]);
    expect(
      issuesOf(() => parseConfig(config("{ mode: SIMPLE, certFile: c.pem }"), "t.yaml")),
    ).toEqual([{ path: `${AT}.certFile`, message: expect.stringContaining("use mode MUTUAL") }]);
    expect(issuesOf(() => parseConfig(config("{ sni: x.example }"), "t.yaml"))).toEqual([
      { path: `${AT}.sni`, message: "has no effect with mode DISABLE (plain TCP)" },
    ]);
    expect(issuesOf(() => parseConfig(config("{ mode: STRICT }"), "t.yaml"))[0]!.message).toBe(
      'expected one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL, got "STRICT"',
    );
  });
});

describe("trafficPolicy.tls files are read at load", () => {
  const dir = mkdtempSync(join(tmpdir(), "remora-tls-files-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const ca = createCa();
  const cert = issueWorkloadCertificate({ ca, namespace: "prod", serviceAccount: "client" });
  const other = issueWorkloadCertificate({ ca, namespace: "prod", serviceAccount: "other" });
  writeFileSync(join(dir, "ca.crt"), ca.certPem);
  writeFileSync(join(dir, "client.crt"), cert.certPem);
  writeFileSync(join(dir, "client.key"), cert.keyPem);
  writeFileSync(join(dir, "other.key"), other.keyPem);
  writeFileSync(join(dir, "junk.crt"), "not a certificate\n");

  const load = (tls: string) => {
    const file = join(dir, "remora.yaml");
    writeFileSync(file, config(tls));
    return loadConfigFile(file);
  };

  it("resolves paths against the config file's directory", () => {
    const loaded = load(
      "{ mode: MUTUAL, caFile: ca.crt, certFile: client.crt, keyFile: client.key }",
    );
    expect(loaded.services[0]!.trafficPolicy.tls.caFile).toBe(join(dir, "ca.crt"));
  });

  it("names the key, the path and the reason for each bad file", () => {
    expect(
      issuesOf(() =>
        load("{ mode: MUTUAL, caFile: missing.crt, certFile: junk.crt, keyFile: client.key }"),
      ),
    ).toEqual([
      { path: `${AT}.caFile`, message: `${join(dir, "missing.crt")} does not exist` },
      {
        path: `${AT}.certFile`,
        message: `${join(dir, "junk.crt")} holds no PEM certificate (no "BEGIN CERTIFICATE")`,
      },
    ]);
    expect(
      issuesOf(() => load("{ mode: MUTUAL, certFile: client.crt, keyFile: other.key }")),
    ).toEqual([
      {
        path: `${AT}.keyFile`,
        message: `${join(dir, "other.key")} is not the key of ${join(dir, "client.crt")}`,
      },
    ]);
  });
});
