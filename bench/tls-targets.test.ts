/**
 * The TLS targets (remora-tls, haproxy-tls, remora-mtls), the certificates a run mints for them,
 * and the clients that load them: configs as generated, then short real runs through real
 * processes (remora, HAProxy when installed) with the handshake client and autocannon.
 */
import { spawnSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LoadGenerator, type LoadRequest } from "../dist/bench/load.js";
// The built module: it finds dist/proxy/cli.js relative to itself, as `npm run bench` runs it.
import {
  haproxyConfig,
  type RunningTarget,
  remoraInboundTlsConfig,
  remoraOutboundMtlsConfig,
  remoraRejects,
  SERVICE_NAME,
  TARGETS,
  type TargetSpec,
} from "../dist/bench/targets.js";
import { parseConfig } from "../proxy/config/load.js";
import { type HttpBackend, httpBackend } from "../test/harness.js";
import { runHandshakeLoad } from "./handshake-client.js";
import { clientTlsOf, mintTlsMaterial, type TlsMaterial } from "./tls-material.js";

function installed(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: "ignore" }).error === undefined;
}

const target = (id: string): TargetSpec => TARGETS.find((t) => t.id === id)!;

let dir: string;
let tls: TlsMaterial;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "remora-bench-tls-"));
  tls = mintTlsMaterial(dir, "rsa");
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("the certificates a run mints", () => {
  it("gives the proxies the chosen key type and the load generator ECDSA, all from one CA", () => {
    const key = (file: string) => new X509Certificate(readFileSync(file)).publicKey;
    expect(key(tls.server.certFile).asymmetricKeyType).toBe("rsa");
    expect(key(tls.server.certFile).asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(key(tls.outbound.certFile).asymmetricKeyType).toBe("rsa");
    expect(key(tls.client.certFile).asymmetricKeyType).toBe("ec");
    const ca = new X509Certificate(readFileSync(tls.caFile));
    for (const who of [tls.server, tls.outbound, tls.client]) {
      const cert = new X509Certificate(readFileSync(who.certFile));
      expect(cert.verify(ca.publicKey)).toBe(true);
      expect(cert.subjectAltName).toContain(`URI:${who.spiffeId}`);
    }
    expect(tls.server.spiffeId).toBe("spiffe://cluster.local/ns/bench/sa/server");
    // HAProxy's crt: the certificate, then its key; keys readable by their owner only.
    const pem = readFileSync(tls.server.pemFile, "utf8");
    expect(pem).toMatch(/^-----BEGIN CERTIFICATE-----[\s\S]+-----BEGIN PRIVATE KEY-----/);
    expect(statSync(tls.server.keyFile).mode & 0o777).toBe(0o600);
  });

  it("mints ECDSA P-256 proxies on request (--tls-key ecdsa)", async () => {
    const ecDir = await mkdtemp(join(tmpdir(), "remora-bench-tls-ec-"));
    try {
      const ec = mintTlsMaterial(ecDir, "ecdsa");
      const key = new X509Certificate(readFileSync(ec.server.certFile)).publicKey;
      expect(key.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    } finally {
      await rm(ecDir, { recursive: true, force: true });
    }
  });

  it.skipIf(!installed("openssl", ["version"]))("verify with openssl", () => {
    for (const file of [tls.server.certFile, tls.client.certFile]) {
      const out = spawnSync("openssl", ["verify", "-CAfile", tls.caFile, file], {
        encoding: "utf8",
      });
      expect(out.stdout.trim(), out.stderr).toBe(`${file}: OK`);
    }
  });
});

describe("TLS target configs", () => {
  it("remora-tls: an inbound listener, STRICT, with the workload identity, to the backend", () => {
    const text = remoraInboundTlsConfig(8443, 9901, "127.0.0.1:9101", tls);
    const config = parseConfig(text, "remora-tls.yaml");
    expect(config.tls).toEqual({
      certFile: tls.server.certFile,
      keyFile: tls.server.keyFile,
      caFile: tls.caFile,
    });
    expect(config.listeners).toHaveLength(1);
    expect(config.listeners[0]).toMatchObject({
      kind: "inbound",
      address: "127.0.0.1",
      port: 8443,
      app: "127.0.0.1:9101",
      tls: { mode: "STRICT" },
    });
    expect(config.probes.port).toBeNull();
    expect(config.metrics.port).toBeNull();
  });

  it("HAProxy: the same frontend terminating mTLS, client certificates required", () => {
    const conf = haproxyConfig(8443, ["127.0.0.1:9101"], undefined, tls);
    expect(conf).toContain(
      `  bind 127.0.0.1:8443 ssl crt ${tls.server.pemFile} ca-file ${tls.caFile} verify required alpn http/1.1\n`,
    );
    expect(conf).toContain(
      `  http-request set-header x-forwarded-client-cert "By=${tls.server.spiffeId};Hash=%[ssl_c_der,sha2(256),hex,lower]"\n`,
    );
    expect(conf).toContain("  nbthread 1\n");
    // The plaintext HAProxy is unchanged.
    expect(haproxyConfig(8080, ["127.0.0.1:9101"])).toContain("  bind 127.0.0.1:8080\n");
  });

  it.skipIf(!installed("haproxy", ["-v"]))(
    "HAProxy: the installed version accepts it",
    async () => {
      const file = join(dir, "haproxy-tls.cfg");
      await writeFile(file, haproxyConfig(8443, ["127.0.0.1:9101"], undefined, tls));
      const check = spawnSync("haproxy", ["-c", "-f", file], { encoding: "utf8" });
      expect(check.status, `${check.stdout}${check.stderr}`).toBe(0);
    },
  );

  it("remora-mtls: the outbound side originates ISTIO_MUTUAL to the inbound side", () => {
    const text = remoraOutboundMtlsConfig(15001, 15000, "127.0.0.1:15006", tls);
    expect(text).toContain(
      `tls: { certFile: ${JSON.stringify(tls.outbound.certFile)}, keyFile: ${JSON.stringify(tls.outbound.keyFile)}, caFile: ${JSON.stringify(tls.caFile)} }`,
    );
    expect(text).toContain(
      `      tls: { mode: ISTIO_MUTUAL, subjectAltNames: ["${tls.server.spiffeId}"] }\n`,
    );
    expect(text).toContain('      - { address: "127.0.0.1:15006" }\n');
  });

  it("asks the built remora whether it accepts a config, and says why not", () => {
    expect(remoraRejects(remoraInboundTlsConfig(8443, 9901, "127.0.0.1:9101", tls))).toBeNull();
    const refused = remoraRejects("services: []\nlisteners: []\nbogus: 1\n");
    expect(refused).toMatch(/bogus/);
    expect(refused).toMatch(/unknown key/);
  });

  it("runs remora-mtls once remora accepts the two-hop config, and until then says why not", () => {
    const mtls = target("remora-mtls");
    const refused = remoraRejects(remoraOutboundMtlsConfig(15001, 15000, "127.0.0.1:15006", tls));
    const availability = mtls.available();
    if (refused === null) {
      expect(availability.ok).toBe(true);
    } else {
      expect(availability).toEqual({
        ok: false,
        reason: expect.stringContaining("does not accept the two-hop config"),
      });
      if (!availability.ok) expect(availability.reason).toContain(refused);
    }
  });
});

describe("short real runs through the TLS targets", () => {
  let backend: HttpBackend;
  const seen: string[] = [];

  beforeAll(async () => {
    backend = await httpBackend((req, res) => {
      seen.push(String(req.headers["x-forwarded-client-cert"]));
      res.end("through TLS");
    });
  });

  afterAll(async () => {
    await backend?.close();
  });

  /** Starts a target, runs `body` against it, stops it. */
  async function withTarget(
    id: string,
    body: (running: RunningTarget) => Promise<void>,
  ): Promise<void> {
    const running = await target(id).start({ backends: [backend.address], core: null, dir, tls });
    try {
      await body(running);
    } finally {
      await running.stop();
    }
  }

  const request = (running: RunningTarget, client: LoadRequest["client"]): LoadRequest => ({
    client,
    url: running.url,
    connections: 4,
    durationSec: 1,
    method: "GET",
    path: "/",
    headers: { host: SERVICE_NAME },
    bodyBytes: 0,
    timeoutSec: 5,
    ...(running.tls === undefined ? {} : { tls: running.tls }),
  });

  /** A plaintext request to a STRICT listener gets no HTTP answer. */
  function plaintextAnswer(url: string): Promise<string> {
    return new Promise((resolve) => {
      const socket = connect(Number(new URL(url).port), "127.0.0.1");
      let got = "";
      socket.on("data", (chunk: Buffer) => {
        got += chunk.toString("latin1");
      });
      socket.on("error", () => {});
      socket.once("close", () => resolve(got));
      socket.write(`GET / HTTP/1.1\r\nHost: ${SERVICE_NAME}\r\n\r\n`);
      socket.setTimeout(5000, () => socket.destroy());
    });
  }

  const negotiated: Record<string, string | null> = {};

  async function measureHandshakes(id: string): Promise<void> {
    await withTarget(id, async (running) => {
      expect(running.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(running.tls).toEqual(clientTlsOf(tls));
      seen.length = 0;
      const result = await runHandshakeLoad(request(running, "handshake"), () => {});
      expect(result.errors).toBe(0);
      expect(result.handshakes).toBeGreaterThan(0);
      // One request per connection: every completed exchange had its own handshake.
      expect(result.completed).toBeLessThanOrEqual(result.handshakes);
      expect(result.completed).toBeGreaterThanOrEqual(result.handshakes - 4);
      expect(result.non2xx).toBe(0);
      expect(result.negotiated).toMatch(
        /^TLSv1\.3 .+, X25519, ALPN http\/1\.1, server key rsa 2048$/,
      );
      negotiated[id] = result.negotiated;
      // The app is told who called, by hash of the load generator's certificate.
      expect(seen[0]).toMatch(
        /^By=spiffe:\/\/cluster\.local\/ns\/bench\/sa\/server;Hash=[0-9a-f]{64}/,
      );
      expect(await plaintextAnswer(running.url)).not.toMatch(/^HTTP\/1\.1 200/);
    });
  }

  it("remora-tls: handshakes complete, one per request, over TLS 1.3 with X25519", async () => {
    await measureHandshakes("remora-tls");
  }, 30_000);

  it.skipIf(!installed("haproxy", ["-v"]))(
    "haproxy-tls: the same, and the same session parameters as remora's",
    async () => {
      await measureHandshakes("haproxy-tls");
      if (negotiated["remora-tls"] !== undefined) {
        expect(negotiated["haproxy-tls"]).toBe(negotiated["remora-tls"]);
      }
    },
    30_000,
  );

  it("autocannon presents the client certificate on keep-alive connections", async () => {
    const load = LoadGenerator.start(null);
    try {
      await withTarget("remora-tls", async (running) => {
        const withCert = await load.run(request(running, "autocannon"));
        expect(withCert.errors).toBe(0);
        expect(withCert.completed).toBeGreaterThan(10);
        // The same load without the certificate: STRICT refuses every handshake.
        const { tls: _omitted, ...bare } = request(running, "autocannon");
        const without = await load.run(bare);
        expect(without.completed).toBe(0);
      });
    } finally {
      await load.stop();
    }
  }, 30_000);
});
