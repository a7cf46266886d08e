/**
 * Outbound TLS origination (services[].trafficPolicy.tls) with real processes: remora A's outbound
 * listener originates mTLS to remora B's STRICT inbound listener, and to node TLS servers that
 * each break one rule (wrong identity, foreign CA, expired, plaintext, refusing our certificate).
 */
import { once } from "node:events";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createServer as createTlsServer,
  type TLSSocket,
  type Server as TlsServer,
} from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig, serviceDefaults } from "../proxy/config/load.js";
import { type CertificateAndKey, createCa, issueWorkloadCertificate } from "../tls/ca.js";
import { mint } from "../tls/testing.js";
import {
  type HttpBackend,
  httpBackend,
  type InProcessRemora,
  RawClient,
  type SpawnedRemora,
  spawnRemora,
  startRemora,
} from "./harness.js";

const HOUR = 3_600_000;
const A_ID = "spiffe://cluster.local/ns/prod/sa/productpage";
const B_ID = "spiffe://cluster.local/ns/prod/sa/reviews";
const RATINGS_ID = "spiffe://cluster.local/ns/prod/sa/ratings";

/** A TLS server answering every request with a fixed HTTP response; `peers` gets each client cert's subject. */
async function tlsServer(options: {
  cert: CertificateAndKey;
  ca?: string;
  requestCert?: boolean;
}): Promise<{ server: TlsServer; port: number; peers: string[] }> {
  const peers: string[] = [];
  const server = createTlsServer(
    {
      cert: options.cert.certPem,
      key: options.cert.keyPem,
      ca: options.ca,
      requestCert: options.requestCert ?? false,
      rejectUnauthorized: options.requestCert ?? false,
    },
    (socket: TLSSocket) => {
      peers.push(socket.getPeerX509Certificate()?.subject ?? "");
      socket.on("data", () => {
        socket.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
      });
      socket.on("error", () => {});
    },
  );
  server.on("tlsClientError", () => {});
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { server, port: (server.address() as AddressInfo).port, peers };
}

describe("outbound TLS origination (trafficPolicy.tls)", () => {
  let dir: string;
  let app: HttpBackend;
  let plain: HttpBackend;
  let b: SpawnedRemora;
  let a: SpawnedRemora;
  const servers: TlsServer[] = [];
  let mutualServer: { port: number; peers: string[] };

  const write = (name: string, cert: CertificateAndKey) => {
    const out = join(dir, name);
    mkdirSync(out);
    writeFileSync(join(out, "tls.crt"), cert.certPem);
    writeFileSync(join(out, "tls.key"), cert.keyPem);
    return out;
  };

  /** GET / on A's outbound listener with Host `service`. */
  const get = async (service: string) => {
    const response = await RawClient.exchange(
      a.ports.get("outbound")!,
      `GET / HTTP/1.1\r\nhost: ${service}\r\n\r\n`,
    );
    return {
      status: response.status,
      flags: response.headers.get("x-remora-response-flags")?.[0],
      body: response.body.toString(),
    };
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "remora-outbound-tls-"));
    const caMade = Date.now() - 7 * 24 * HOUR;
    const ca = createCa({ now: () => caMade });
    writeFileSync(join(dir, "ca.crt"), ca.certPem);
    write("a", issueWorkloadCertificate({ ca, namespace: "prod", serviceAccount: "productpage" }));
    write("b", issueWorkloadCertificate({ ca, namespace: "prod", serviceAccount: "reviews" }));
    const ratings = issueWorkloadCertificate({ ca, namespace: "prod", serviceAccount: "ratings" });
    const foreignCa = createCa();
    const foreign = issueWorkloadCertificate({
      ca: foreignCa,
      namespace: "prod",
      serviceAccount: "reviews",
    });
    const past = Date.now() - 48 * HOUR;
    const expired = issueWorkloadCertificate({
      ca,
      namespace: "prod",
      serviceAccount: "reviews",
      now: () => past,
    });
    // SIMPLE/MUTUAL: a web CA and a server certificate for localhost.
    const webCa = mint({ commonName: "web CA" });
    writeFileSync(join(dir, "web-ca.crt"), webCa.certPem);
    const webWithName = issueWorkloadCertificate({
      ca,
      namespace: "prod",
      serviceAccount: "web",
      dnsNames: ["localhost"],
    });
    write("client", mint({ issuer: webCa, commonName: "mutual client" }));

    app = await httpBackend();
    plain = await httpBackend();
    const wrongId = await tlsServer({ cert: ratings, ca: ca.certPem, requestCert: true });
    const untrusted = await tlsServer({ cert: foreign, ca: ca.certPem, requestCert: true });
    const old = await tlsServer({ cert: expired, ca: ca.certPem, requestCert: true });
    const refusing = await tlsServer({ cert: ratings, ca: foreignCa.certPem, requestCert: true });
    const simple = await tlsServer({ cert: webWithName });
    const mutual = await tlsServer({ cert: webWithName, ca: webCa.certPem, requestCert: true });
    mutualServer = mutual;
    servers.push(wrongId.server, untrusted.server, old.server, refusing.server, simple.server);
    servers.push(mutual.server);

    const bConfig = join(dir, "b.yaml");
    writeFileSync(
      bConfig,
      [
        "admin: { port: 0 }",
        "probes: { port: null }",
        "metrics: { port: null }",
        "tls: { certFile: b/tls.crt, keyFile: b/tls.key, caFile: ca.crt }",
        "listeners:",
        `  - { name: inbound, kind: inbound, address: 127.0.0.1, port: 0, app: "${app.address}", tls: { mode: STRICT } }`,
        "",
      ].join("\n"),
    );
    b = await spawnRemora(["run", "-c", bConfig]);
    const bPort = b.ports.get("inbound")!;

    const service = (name: string, port: number, tls: string) =>
      [
        `  - name: ${name}`,
        `    endpoints: [{ address: "127.0.0.1:${port}" }]`,
        "    retries: { attempts: 0 }",
        `    trafficPolicy: { tls: ${tls} }`,
      ].join("\n");
    const aConfig = join(dir, "a.yaml");
    writeFileSync(
      aConfig,
      [
        "admin: { port: 0 }",
        "probes: { port: null }",
        "metrics: { port: null }",
        "tls: { certFile: a/tls.crt, keyFile: a/tls.key, caFile: ca.crt }",
        "listeners:",
        "  - { name: outbound, kind: outbound, port: 0 }",
        "services:",
        service(
          "reviews",
          bPort,
          "{ mode: ISTIO_MUTUAL, subjectAltNames: [cluster.local/ns/prod/sa/reviews] }",
        ),
        service("anymesh", bPort, "{ mode: ISTIO_MUTUAL }"),
        service("wrongid", wrongId.port, `{ mode: ISTIO_MUTUAL, subjectAltNames: ["${B_ID}"] }`),
        service("untrusted", untrusted.port, "{ mode: ISTIO_MUTUAL }"),
        service("expired", old.port, "{ mode: ISTIO_MUTUAL }"),
        service("refusing", refusing.port, "{ mode: ISTIO_MUTUAL }"),
        service("plaintext", plain.port, "{ mode: ISTIO_MUTUAL }"),
        service("simple", simple.port, `{ mode: SIMPLE, sni: localhost, caFile: ca.crt }`),
        service("simplewrong", simple.port, `{ mode: SIMPLE, sni: wrong.example, caFile: ca.crt }`),
        service(
          "mutual",
          mutual.port,
          "{ mode: MUTUAL, sni: localhost, caFile: ca.crt, certFile: client/tls.crt, keyFile: client/tls.key }",
        ),
        "",
      ].join("\n"),
    );
    a = await spawnRemora(["run", "-c", aConfig]);
  });

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await app?.close();
    await plain?.close();
    for (const server of servers) server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A's log lines (JSON) whose message starts with `TLS to SERVICE`. */
  const tlsLines = (service: string) =>
    a
      .stderr()
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as { msg: string; reason: string; service: string })
      .filter((line) => line.msg.startsWith(`TLS to ${service} `));

  it("ISTIO_MUTUAL to a remora STRICT inbound: the app sees A's identity in x-forwarded-client-cert", async () => {
    const response = await get("reviews");
    expect(response.status).toBe(200);
    const echoed = JSON.parse(response.body) as { headers: Record<string, string> };
    const xfcc = echoed.headers["x-forwarded-client-cert"]!;
    expect(xfcc).toContain(`By=${B_ID}`);
    expect(xfcc).toContain(`URI=${A_ID}`);
  });

  it("ISTIO_MUTUAL without subjectAltNames accepts any identity of our trust domain", async () => {
    const response = await get("anymesh");
    expect(response.status).toBe(200);
    expect(response.body).toContain(`URI=${A_ID}`);
  });

  it("a server with another identity is refused: 503 UF, and A's log names both identities", async () => {
    const response = await get("wrongid");
    expect(response.status).toBe(503);
    expect(response.flags).toBe("UF");
    expect(response.body).toBe("upstream TLS handshake failed\n");
    await waitFor(() => tlsLines("wrongid").length > 0);
    const [line] = tlsLines("wrongid");
    expect(line!.reason).toBe("identity_mismatch");
    expect(line!.msg).toMatch(
      new RegExp(
        `^TLS to wrongid \\(127\\.0\\.0\\.1:\\d+\\) failed: the server presented ${RATINGS_ID}, but service wrongid expects ${B_ID} \\(trafficPolicy\\.tls\\.subjectAltNames\\); we are ${A_ID}$`,
      ),
    );
  });

  it("a server certificate from a foreign CA is refused and its issuer named", async () => {
    const response = await get("untrusted");
    expect(response.status).toBe(503);
    await waitFor(() => tlsLines("untrusted").length > 0);
    const [line] = tlsLines("untrusted");
    expect(line!.reason).toBe("untrusted");
    expect(line!.msg).toContain(`the server's certificate (${B_ID}, issued by`);
    expect(line!.msg).toContain("is not issued by our trust bundle");
  });

  it("an expired server certificate is refused with its date", async () => {
    const response = await get("expired");
    expect(response.status).toBe(503);
    await waitFor(() => tlsLines("expired").length > 0);
    const [line] = tlsLines("expired");
    expect(line!.reason).toBe("expired");
    expect(line!.msg).toMatch(/expired on \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(\d+ h ago\)/);
  });

  it("a server that does not trust our certificate: the reason says so", async () => {
    const response = await get("refusing");
    expect(response.status).toBe(503);
    expect(response.flags).toBe("UF");
    await waitFor(() => tlsLines("refusing").length > 0);
    const [line] = tlsLines("refusing");
    expect(line!.reason).toBe("peer_refused_our_certificate");
    expect(line!.msg).toContain("the server does not trust our certificate");
    expect(line!.msg).toContain("(issuer ");
  });

  it("a plaintext endpoint: the reason says to use DISABLE", async () => {
    const response = await get("plaintext");
    expect(response.status).toBe(503);
    await waitFor(() => tlsLines("plaintext").length > 0);
    const [line] = tlsLines("plaintext");
    expect(line!.reason).toBe("not_tls");
    expect(line!.msg).toContain("the endpoint answered in plaintext");
  });

  it("SIMPLE checks the server's name: sni localhost passes, a wrong name is refused", async () => {
    const ok = await get("simple");
    expect(ok.status).toBe(200);
    const wrong = await get("simplewrong");
    expect(wrong.status).toBe(503);
    await waitFor(() => tlsLines("simplewrong").length > 0);
    const [line] = tlsLines("simplewrong");
    expect(line!.reason).toBe("identity_mismatch");
    expect(line!.msg).toContain("expects the name wrong.example (trafficPolicy.tls.sni)");
  });

  it("MUTUAL presents certFile/keyFile", async () => {
    const response = await get("mutual");
    expect(response.status).toBe(200);
    expect(mutualServer.peers.at(-1)).toBe("CN=mutual client");
  });
});

async function waitFor(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !condition(); i++) await new Promise((r) => setTimeout(r, 20));
  expect(condition()).toBe(true);
}

describe("pools are per TLS settings: a reload from DISABLE to ISTIO_MUTUAL uses new connections", () => {
  let dir: string;
  let app: HttpBackend;
  let b: SpawnedRemora;
  let a: InProcessRemora;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "remora-outbound-reload-"));
    const ca = createCa();
    writeFileSync(join(dir, "ca.crt"), ca.certPem);
    for (const [name, account] of [
      ["a", "productpage"],
      ["b", "reviews"],
    ] as const) {
      const cert = issueWorkloadCertificate({ ca, namespace: "prod", serviceAccount: account });
      mkdirSync(join(dir, name));
      writeFileSync(join(dir, name, "tls.crt"), cert.certPem);
      writeFileSync(join(dir, name, "tls.key"), cert.keyPem);
    }
    app = await httpBackend();
    const bConfig = join(dir, "b.yaml");
    writeFileSync(
      bConfig,
      [
        "admin: { port: 0 }",
        "probes: { port: null }",
        "metrics: { port: null }",
        "tls: { certFile: b/tls.crt, keyFile: b/tls.key, caFile: ca.crt }",
        "listeners:",
        `  - { name: inbound, kind: inbound, address: 127.0.0.1, port: 0, app: "${app.address}", tls: { mode: PERMISSIVE } }`,
        "",
      ].join("\n"),
    );
    b = await spawnRemora(["run", "-c", bConfig]);
    a = await startRemora(aConfig("DISABLE"));
  });

  const aConfig = (mode: string) =>
    [
      "admin: { port: 0 }",
      "probes: { port: null }",
      "metrics: { port: null }",
      `tls: { certFile: ${join(dir, "a/tls.crt")}, keyFile: ${join(dir, "a/tls.key")}, caFile: ${join(dir, "ca.crt")} }`,
      "listeners:",
      "  - { name: outbound, kind: outbound, port: 0 }",
      "services:",
      "  - name: reviews",
      `    endpoints: [{ address: "127.0.0.1:${b.ports.get("inbound")}" }]`,
      `    trafficPolicy: { tls: { mode: ${mode} } }`,
      "",
    ].join("\n");

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await app?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const xfcc = async () => {
    const response = await RawClient.exchange(a.port(), "GET / HTTP/1.1\r\nhost: reviews\r\n\r\n");
    expect(response.status).toBe(200);
    const echoed = JSON.parse(response.body.toString()) as { headers: Record<string, string> };
    return echoed.headers["x-forwarded-client-cert"];
  };

  it("plaintext first, then mTLS on the next request after the reload", async () => {
    expect(await xfcc()).toBeUndefined();
    // The plaintext connection is now idle in the pool.
    const cluster = a.runtime.clusters.get("reviews.default")!;
    expect(cluster.poolStats(cluster.endpoints[0]!.id).idle).toBe(1);
    const outcome = await a.runtime.reload({
      config: parseConfig(aConfig("ISTIO_MUTUAL"), "reload.yaml"),
      serviceDefaults: serviceDefaults(),
    });
    expect(outcome.result).toBe("applied");
    expect(await xfcc()).toContain("URI=spiffe://cluster.local/ns/prod/sa/productpage");
    // And back: DISABLE again is plaintext again.
    await a.runtime.reload({
      config: parseConfig(aConfig("DISABLE"), "reload.yaml"),
      serviceDefaults: serviceDefaults(),
    });
    expect(await xfcc()).toBeUndefined();
  });
});
