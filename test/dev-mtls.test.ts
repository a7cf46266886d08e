/**
 * Dev mode (`remora run --dev-mtls`, `tls: { dev: true }`) with real remora processes and clients
 * nobody here wrote (curl, openssl), plus the config and flag rules around it.
 */
import { execFile, execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadConfigFile, parseConfig } from "../proxy/config/load.js";
import { quickConfig } from "../proxy/config/quick.js";
import { issueWorkloadCertificate } from "../tls/ca.js";
import { CLI, type HttpBackend, httpBackend, type SpawnedRemora, spawnRemora } from "./harness.js";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 20_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

const workloadDir = (state: string, ns: string, sa: string) =>
  join(state, "dev-mtls", "workloads", ns, sa);

describe("remora run --dev-mtls: two local remoras, one dev CA", () => {
  let dir: string;
  let state: string;
  let app: HttpBackend;
  let reviews: SpawnedRemora;
  let ratings: SpawnedRemora;

  /** A config with an inbound STRICT listener and no certificate files. */
  const writeConfig = (name: string, tls: string) => {
    const path = join(dir, `${name}.yaml`);
    writeFileSync(
      path,
      [
        "admin: { port: 0 }",
        "probes: { port: null }",
        "metrics: { port: null }",
        tls,
        "listeners:",
        `  - { name: inbound, kind: inbound, address: 127.0.0.1, port: 0, app: "${app.address}", tls: { mode: STRICT } }`,
        "services: []",
        "",
      ].join("\n"),
    );
    return path;
  };

  const curl = (remora: SpawnedRemora, client: string, caFile: string) => {
    const port = remora.ports.get("inbound")!;
    return run("curl", [
      "-sS",
      "--max-time",
      "10",
      "--cert",
      join(client, "tls.crt"),
      "--key",
      join(client, "tls.key"),
      "--cacert",
      caFile,
      // The server's certificate names a SPIFFE ID, not a host: check the chain only.
      "--resolve",
      `reviews:${port}:127.0.0.1`,
      "--insecure",
      `https://reviews:${port}/hello`,
    ]);
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "remora-dev-mtls-"));
    state = join(dir, "state");
    app = await httpBackend();
    // Both at once, sharing one state directory: they must agree on one CA.
    [reviews, ratings] = await Promise.all([
      spawnRemora(["run", "-c", writeConfig("reviews", ""), "--dev-mtls", "--state-dir", state]),
      spawnRemora([
        "run",
        "-c",
        writeConfig("ratings", "tls: { dev: true, serviceAccount: ratings, stateDir: state }"),
      ]),
    ]);
  });

  afterAll(async () => {
    await reviews?.stop();
    await ratings?.stop();
    await app?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("logs the CA path and the identity once, as a warning", () => {
    const lines = reviews
      .stderr()
      .split("\n")
      .filter((line) => line.includes("dev mTLS: identity"));
    expect(lines).toHaveLength(1);
    const record = JSON.parse(lines[0]!);
    expect(record.level).toBe(40);
    expect(record.spiffeId).toBe("spiffe://cluster.local/ns/default/sa/default");
    expect(record.ca).toBe(join(state, "dev-mtls", "ca", "ca.crt"));
    expect(record.msg).toContain("for development only");
    expect(ratings.stderr()).toContain('"spiffeId":"spiffe://cluster.local/ns/default/sa/ratings"');
  });

  it("both started at once end with one CA; each certificate verifies against the other's ca.crt", () => {
    expect(readdirSync(join(state, "dev-mtls")).sort()).toEqual(["ca", "workloads"]);
    const mine = workloadDir(state, "default", "default");
    const theirs = workloadDir(state, "default", "ratings");
    expect(readFileSync(join(mine, "ca.crt"), "utf8")).toBe(
      readFileSync(join(theirs, "ca.crt"), "utf8"),
    );
    const verify = (ca: string, cert: string) =>
      execFileSync("openssl", ["verify", "-CAfile", ca, cert]).toString().trim();
    expect(verify(join(theirs, "ca.crt"), join(mine, "tls.crt"))).toMatch(/: OK$/);
    expect(verify(join(mine, "ca.crt"), join(theirs, "tls.crt"))).toMatch(/: OK$/);
  });

  it("each one's STRICT listener accepts the other's certificate (curl --cert/--key/--cacert)", async () => {
    const mine = workloadDir(state, "default", "default");
    const theirs = workloadDir(state, "default", "ratings");
    const toReviews = await curl(reviews, theirs, join(theirs, "ca.crt"));
    expect(toReviews.stderr).toBe("");
    expect(JSON.parse(toReviews.stdout).headers["x-forwarded-client-cert"]).toMatch(
      /^By=spiffe:\/\/cluster\.local\/ns\/default\/sa\/default;Hash=[0-9a-f]{64};URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/ratings$/,
    );
    const toRatings = await curl(ratings, mine, join(mine, "ca.crt"));
    expect(JSON.parse(toRatings.stdout).headers["x-forwarded-client-cert"]).toMatch(
      /;URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/default$/,
    );
  });

  it("a reload applies --dev-mtls again: the file alone (STRICT, no tls) would not validate", async () => {
    const response = await fetch(`http://127.0.0.1:${reviews.adminPort}/reload`, {
      method: "POST",
    });
    expect(response.status).toBe(200);
  });

  it("accepts a client certificate issued by the dev CA with remora's CA tool", async () => {
    const caDir = join(state, "dev-mtls", "ca");
    const client = issueWorkloadCertificate({
      ca: {
        certPem: readFileSync(join(caDir, "ca.crt"), "utf8"),
        keyPem: readFileSync(join(caDir, "ca.key"), "utf8"),
      },
      namespace: "shop",
      serviceAccount: "frontend",
    });
    const out = join(dir, "frontend");
    mkdirSync(out);
    writeFileSync(join(out, "tls.crt"), client.certPem);
    writeFileSync(join(out, "tls.key"), client.keyPem);
    const result = await curl(reviews, out, join(caDir, "ca.crt"));
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout).headers["x-forwarded-client-cert"]).toMatch(
      /;URI=spiffe:\/\/cluster\.local\/ns\/shop\/sa\/frontend$/,
    );
  });
});

describe("dev mode's config and flags", () => {
  let dir: string;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "remora-dev-config-"));
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const base = (tls: string) => `
admin: { port: 0 }
probes: { port: null }
metrics: { port: null }
${tls}
listeners:
  - { name: in, kind: inbound, port: 0, app: 127.0.0.1:9000, tls: { mode: STRICT } }
services: []
`;

  const cli = (args: string[]) => run(process.execPath, [CLI, ...args]);

  it("names the files the dev CA writes, under a state directory relative to the config", () => {
    const path = join(dir, "dev.yaml");
    writeFileSync(
      path,
      base("tls: { dev: true, namespace: shop, serviceAccount: web, stateDir: st }"),
    );
    const tls = loadConfigFile(path).tls!;
    expect(tls.dev).toEqual({
      namespace: "shop",
      serviceAccount: "web",
      trustDomain: "cluster.local",
      stateDir: join(dir, "st"),
    });
    expect(tls.certFile).toBe(join(dir, "st", "dev-mtls", "workloads", "shop", "web", "tls.crt"));
    expect(tls.caFile).toBe(join(dir, "st", "dev-mtls", "workloads", "shop", "web", "ca.crt"));
  });

  describe("the default state directory", () => {
    const saved = { ...process.env };
    afterEach(() => {
      process.env.REMORA_STATE_DIR = saved.REMORA_STATE_DIR;
      if (saved.REMORA_STATE_DIR === undefined) delete process.env.REMORA_STATE_DIR;
    });

    it("is $REMORA_STATE_DIR when set; namespace and service account default to default", () => {
      process.env.REMORA_STATE_DIR = "/var/lib/remora-test";
      const tls = parseConfig(base("tls: { dev: true }"), "t.yaml").tls!;
      expect(tls.dev).toEqual({
        namespace: "default",
        serviceAccount: "default",
        trustDomain: "cluster.local",
        stateDir: "/var/lib/remora-test",
      });
      expect(tls.keyFile).toBe("/var/lib/remora-test/dev-mtls/workloads/default/default/tls.key");
    });
  });

  it("refuses dev together with the file keys, and dev keys without dev, naming each key", () => {
    expect(() =>
      parseConfig(base("tls: { dev: true, certFile: a.crt, keyFile: a.key }"), "t.yaml"),
    ).toThrow(/tls\.certFile: not with dev: true .*\n.*tls\.keyFile: not with dev: true/);
    expect(() =>
      parseConfig(
        base("tls: { certFile: a, keyFile: b, caFile: c, serviceAccount: web }"),
        "t.yaml",
      ),
    ).toThrow(/tls\.serviceAccount: only with dev: true/);
    expect(() => parseConfig(base("tls: { dev: true, namespace: Shop }"), "t.yaml")).toThrow(
      /tls\.namespace: invalid namespace "Shop"/,
    );
    expect(() => parseConfig(base("tls: {}"), "t.yaml")).toThrow(
      /tls\.certFile: required: a file path \(or dev: true for a local development CA\)/,
    );
  });

  it("--dev-mtls with a config that sets tls files is a clear error", async () => {
    const path = join(dir, "files.yaml");
    writeFileSync(path, base("tls: { certFile: a.crt, keyFile: a.key, caFile: ca.crt }"));
    const result = await cli(["run", "-c", path, "--dev-mtls", "--state-dir", join(dir, "s1")]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `command line: invalid config\n  - --dev-mtls: ${path} sets tls.certFile, tls.keyFile, tls.caFile: dev mode makes its own certificate files; drop --dev-mtls or the tls files\n`,
    );
  });

  it("--state-dir without dev mode is an error; remora validate takes the flags too", async () => {
    const path = join(dir, "plain.yaml");
    writeFileSync(path, base(""));
    const refused = await cli(["validate", "-c", path, "--state-dir", join(dir, "s2")]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain("--state-dir: only with dev mode");
    // The STRICT listener needs an identity: --dev-mtls provides it.
    expect((await cli(["validate", "-c", path])).stderr).toMatch(
      /STRICT needs this workload's identity/,
    );
    const ok = await cli(["validate", "-c", path, "--dev-mtls", "--state-dir", join(dir, "s2")]);
    expect(ok.stdout).toBe(`${path}: ok\n`);
  });

  it("quick mode builds tls: { dev: true } from --dev-mtls", () => {
    const config = quickConfig({
      listen: 0,
      adminPort: 0,
      services: [],
      devMtls: true,
      stateDir: join(dir, "quick"),
    });
    expect(config.tls?.dev?.stateDir).toBe(join(dir, "quick"));
    expect(config.tls?.certFile).toBe(
      join(dir, "quick", "dev-mtls", "workloads", "default", "default", "tls.crt"),
    );
    expect(() => quickConfig({ listen: 0, adminPort: 0, services: [], stateDir: "/x" })).toThrow(
      /--state-dir: only with dev mode/,
    );
  });

  it("quick mode: remora run --listen --dev-mtls starts with a dev identity", async () => {
    const state = join(dir, "quick-run");
    const remora = await spawnRemora([
      "run",
      "--listen",
      "0",
      "--admin-port",
      "0",
      "--dev-mtls",
      "--state-dir",
      state,
    ]);
    try {
      expect(remora.stderr()).toContain('"msg":"tls identity loaded"');
      const cert = join(workloadDir(state, "default", "default"), "tls.crt");
      const ca = join(state, "dev-mtls", "ca", "ca.crt");
      expect(execFileSync("openssl", ["verify", "-CAfile", ca, cert]).toString()).toMatch(/: OK/);
    } finally {
      await remora.stop();
    }
  });
});
