/**
 * Inbound mTLS termination (listeners[].tls.mode) against a real remora process, with clients
 * nobody here wrote: curl and openssl s_client.
 */
import { execFile } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { once } from "node:events";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../proxy/config/load.js";
import { type CertificateAndKey, createCa, issueWorkloadCertificate } from "../tls/ca.js";
import { type HttpBackend, httpBackend, type SpawnedRemora, spawnRemora } from "./harness.js";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[], input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { timeout: 20_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

const HOUR = 3_600_000;
const SERVER_ID = "spiffe://cluster.local/ns/default/sa/reviews";
const CLIENT_ID = "spiffe://cluster.local/ns/shop/sa/frontend";

describe("inbound listeners: tls.mode STRICT, PERMISSIVE, DISABLE", () => {
  let dir: string;
  let app: HttpBackend;
  let remora: SpawnedRemora;
  const port = (name: string) => remora.ports.get(name)!;

  /** Writes a client's tls.crt/tls.key under DIR/NAME; returns that directory. */
  const writeClient = (name: string, cert: CertificateAndKey) => {
    const out = join(dir, name);
    mkdirSync(out);
    writeFileSync(join(out, "tls.crt"), cert.certPem);
    writeFileSync(join(out, "tls.key"), cert.keyPem);
    return out;
  };

  const curl = (listener: string, client: string | undefined, extra: string[] = []) => {
    const p = port(listener);
    const certArgs =
      client === undefined
        ? []
        : ["--cert", join(dir, client, "tls.crt"), "--key", join(dir, client, "tls.key")];
    return run("curl", [
      "-sS",
      "--max-time",
      "10",
      ...certArgs,
      "--cacert",
      join(dir, "ca.crt"),
      "--resolve",
      `localhost:${p}:127.0.0.1`,
      ...extra,
      `https://localhost:${p}/hello`,
    ]);
  };

  const curlPlain = (listener: string) =>
    run("curl", [
      "-sS",
      "--max-time",
      "10",
      "-H",
      "x-forwarded-client-cert: By=spiffe://evil;URI=spiffe://cluster.local/ns/x/sa/admin",
      `http://127.0.0.1:${port(listener)}/plain`,
    ]);

  let clientDer: Buffer;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "remora-inbound-tls-"));
    // Made a week ago, so it can have issued the expired certificate below.
    const caMade = Date.now() - 7 * 24 * HOUR;
    const ca = createCa({ now: () => caMade });
    const server = issueWorkloadCertificate({
      ca,
      namespace: "default",
      serviceAccount: "reviews",
      dnsNames: ["localhost"],
    });
    writeFileSync(join(dir, "ca.crt"), ca.certPem);
    writeClient("server", server);
    const client = issueWorkloadCertificate({ ca, namespace: "shop", serviceAccount: "frontend" });
    clientDer = new X509Certificate(client.certPem).raw;
    writeClient("client", client);
    const foreignCa = createCa();
    writeClient(
      "foreign",
      issueWorkloadCertificate({ ca: foreignCa, namespace: "shop", serviceAccount: "frontend" }),
    );
    // Issued two days ago for the default 24 h: expired a day ago.
    const past = Date.now() - 48 * HOUR;
    writeClient(
      "expired",
      issueWorkloadCertificate({
        ca,
        namespace: "shop",
        serviceAccount: "frontend",
        now: () => past,
      }),
    );

    app = await httpBackend();
    const listener = (name: string, mode?: string) =>
      `  - { name: ${name}, kind: inbound, address: 127.0.0.1, port: 0, app: "${app.address}"${
        mode === undefined ? "" : `, tls: { mode: ${mode} }`
      }, timeouts: { requestHeaders: 1s } }`;
    const config = join(dir, "remora.yaml");
    writeFileSync(
      config,
      [
        "admin: { port: 0 }",
        "probes: { port: null }",
        "metrics: { port: null }",
        "tls: { certFile: server/tls.crt, keyFile: server/tls.key, caFile: ca.crt }",
        "listeners:",
        listener("strict", "STRICT"),
        listener("permissive", "PERMISSIVE"),
        listener("plain"),
        "services: []",
        "",
      ].join("\n"),
    );
    const level = process.env.REMORA_LOG_LEVEL;
    process.env.REMORA_LOG_LEVEL = "debug";
    try {
      remora = await spawnRemora(["run", "-c", config], 3);
    } finally {
      if (level === undefined) delete process.env.REMORA_LOG_LEVEL;
      else process.env.REMORA_LOG_LEVEL = level;
    }
  });

  afterAll(async () => {
    await remora?.stop();
    await app?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const expectedXfcc = () =>
    `By=${SERVER_ID};Hash=${createHash("sha256").update(clientDer).digest("hex")};URI=${CLIENT_ID}`;

  it("STRICT accepts a mesh certificate; the app sees the peer in x-forwarded-client-cert, not the client's", async () => {
    const result = await curl("strict", "client", [
      "-H",
      "x-forwarded-client-cert: By=spiffe://evil;URI=spiffe://cluster.local/ns/x/sa/admin",
      "-H",
      "X-Forwarded-Client-Cert: Hash=00",
    ]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const echo = JSON.parse(result.stdout);
    expect(echo.url).toBe("/hello");
    expect(echo.headers["x-forwarded-client-cert"]).toBe(expectedXfcc());
    const fields = (echo.rawHeaders as string[]).filter((_, i) => i % 2 === 0);
    expect(fields.filter((f) => f.toLowerCase() === "x-forwarded-client-cert")).toHaveLength(1);
    expect(echo.headers["x-forwarded-proto"]).toBe("https");
  });

  it("STRICT: openssl s_client completes mTLS, negotiates istio-http/1.1 and gets a response", async () => {
    const result = await run(
      "openssl",
      [
        "s_client",
        "-connect",
        `127.0.0.1:${port("strict")}`,
        "-cert",
        join(dir, "client", "tls.crt"),
        "-key",
        join(dir, "client", "tls.key"),
        "-CAfile",
        join(dir, "ca.crt"),
        "-verify_return_error",
        "-alpn",
        "istio-http/1.1,http/1.1",
        "-ign_eof",
      ],
      "GET /s HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n",
    );
    expect(result.stdout).toContain("ALPN protocol: istio-http/1.1");
    expect(result.stdout).toContain("Verify return code: 0 (ok)");
    expect(result.stdout).toMatch(/HTTP\/1\.1 200/);
    expect(result.stdout).toContain(`URI=${CLIENT_ID}`);
  });

  it.each([
    ["no client certificate", undefined],
    ["a foreign CA's certificate", "foreign"],
    ["an expired certificate", "expired"],
  ])("STRICT refuses %s at the handshake", async (_what, client) => {
    const result = await curl("strict", client);
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe("");
  });

  it("STRICT refuses a foreign CA's certificate with openssl s_client too (no HTTP response)", async () => {
    const result = await run(
      "openssl",
      [
        "s_client",
        "-connect",
        `127.0.0.1:${port("strict")}`,
        "-cert",
        join(dir, "foreign", "tls.crt"),
        "-key",
        join(dir, "foreign", "tls.key"),
        "-CAfile",
        join(dir, "ca.crt"),
        "-ign_eof",
      ],
      "GET / HTTP/1.1\r\nHost: reviews\r\nConnection: close\r\n\r\n",
    );
    expect(result.stdout).not.toMatch(/HTTP\/1\.1/);
  });

  it("STRICT refuses plaintext: no HTTP response, and the failures are counted in the debug log", async () => {
    const result = await curlPlain("strict");
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe("");
    const failures = remora
      .stderr()
      .split("\n")
      .filter((line) => line.includes('"tls handshake failed"') && line.includes('"strict"'));
    // plaintext + no certificate + foreign CA (curl and s_client) + expired
    expect(failures.length).toBeGreaterThanOrEqual(4);
    expect(failures.join("\n")).toMatch(/certificate has expired|CERT_HAS_EXPIRED/i);
  });

  it("PERMISSIVE accepts mTLS and plaintext on the same port", async () => {
    const tls = await curl("permissive", "client");
    expect(tls.code).toBe(0);
    const tlsEcho = JSON.parse(tls.stdout);
    expect(tlsEcho.headers["x-forwarded-client-cert"]).toBe(expectedXfcc());
    expect(tlsEcho.headers["x-forwarded-proto"]).toBe("https");

    const plain = await curlPlain("permissive");
    expect(plain.code).toBe(0);
    const plainEcho = JSON.parse(plain.stdout);
    expect(plainEcho.url).toBe("/plain");
    expect(plainEcho.headers["x-forwarded-client-cert"]).toBeUndefined();
    expect(plainEcho.headers["x-forwarded-proto"]).toBe("http");
  });

  it.each([["strict"], ["permissive"]])(
    "%s closes a connection that sends nothing (request-headers timeout)",
    async (name) => {
      const socket = connect(port(name), "127.0.0.1");
      socket.resume();
      await once(socket, "close");
    },
  );

  it("PERMISSIVE still refuses a TLS client from a foreign CA", async () => {
    const result = await curl("permissive", "foreign");
    expect(result.code).not.toBe(0);
    expect(result.stdout).toBe("");
  });

  it("DISABLE serves plaintext as before and strips a forged x-forwarded-client-cert", async () => {
    const result = await curlPlain("plain");
    expect(result.code).toBe(0);
    const echo = JSON.parse(result.stdout);
    expect(echo.url).toBe("/plain");
    expect(echo.headers["x-forwarded-client-cert"]).toBeUndefined();
    expect(echo.headers["x-forwarded-proto"]).toBe("http");
  });
});

describe("config: listeners[].tls", () => {
  const base = (listener: string, tls = "") => `
${tls}
listeners:
  - ${listener}
services: []
`;

  it("defaults to DISABLE on inbound listeners", () => {
    const config = parseConfig(
      base("{ name: in, kind: inbound, port: 8080, app: 127.0.0.1:9000 }"),
      "t.yaml",
    );
    const listener = config.listeners[0]!;
    expect(listener.kind === "inbound" && listener.tls.mode).toBe("DISABLE");
  });

  it("STRICT without the top-level tls is an error naming the key", () => {
    expect(() =>
      parseConfig(
        base("{ name: in, kind: inbound, port: 8080, app: 127.0.0.1:9000, tls: { mode: STRICT } }"),
        "t.yaml",
      ),
    ).toThrow(/listeners\[0\]\.tls\.mode.*STRICT needs this workload's identity/s);
  });

  it("is refused on an outbound listener, and an unknown mode is refused", () => {
    expect(() =>
      parseConfig(
        base("{ name: out, kind: outbound, port: 8080, tls: { mode: STRICT } }"),
        "t.yaml",
      ),
    ).toThrow(/tls/);
    expect(() =>
      parseConfig(
        base("{ name: in, kind: inbound, port: 8080, app: 127.0.0.1:9000, tls: { mode: MUTUAL } }"),
        "t.yaml",
      ),
    ).toThrow(/STRICT/);
  });
});
