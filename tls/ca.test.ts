import { execFile } from "node:child_process";
import { createPrivateKey, createPublicKey, X509Certificate } from "node:crypto";
import { once } from "node:events";
import { mkdtemp, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, createServer, type TLSSocket } from "node:tls";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";
import {
  CaError,
  type CertificateAndKey,
  CLOCK_SKEW_MS,
  createCa,
  DEFAULT_CA_TTL_MS,
  DEFAULT_WORKLOAD_TTL_MS,
  issueWorkloadCertificate,
} from "./ca.js";
import { InvalidSpiffeIdError, identityOfCertificate } from "./identity.js";

const run = promisify(execFile);
// Whole seconds: X.509 times have no milliseconds.
const NOW = Date.UTC(2030, 0, 15, 12, 0, 0);
const now = () => NOW;
const SERVER_AUTH = "1.3.6.1.5.5.7.3.1";
const CLIENT_AUTH = "1.3.6.1.5.5.7.3.2";

async function files(entries: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "remora-ca-"));
  for (const [name, text] of Object.entries(entries)) await writeFile(join(dir, name), text);
  return dir;
}

/** `openssl verify` as an operator runs it; resolves with exit code and output. */
async function opensslVerify(caPem: string, certPem: string, atSeconds = NOW / 1000) {
  const dir = await files({ "ca.crt": caPem, "tls.crt": certPem });
  const args = [
    "verify",
    "-x509_strict",
    "-attime",
    String(atSeconds),
    "-CAfile",
    join(dir, "ca.crt"),
  ];
  try {
    const { stdout, stderr } = await run("openssl", [...args, join(dir, "tls.crt")]);
    return { code: 0, output: stdout + stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, output: e.stdout + e.stderr };
  }
}

/** The named extensions as openssl prints them (`critical` shows there). */
async function opensslExtensions(certPem: string, names: string): Promise<string> {
  const dir = await files({ "c.crt": certPem });
  const { stdout } = await run("openssl", [
    "x509",
    "-in",
    join(dir, "c.crt"),
    "-noout",
    "-ext",
    names,
  ]);
  return stdout;
}

let ca: CertificateAndKey;
beforeAll(() => {
  ca = createCa({ now });
});

describe("createCa", () => {
  it("makes a self-signed RSA 2048 CA for cluster.local, valid 10 years from 5 minutes ago", () => {
    const x509 = new X509Certificate(ca.certPem);
    expect(x509.ca).toBe(true);
    expect(x509.subject).toBe("O=cluster.local\nCN=remora CA");
    expect(x509.issuer).toBe(x509.subject);
    expect(x509.subjectAltName).toBe("URI:spiffe://cluster.local");
    expect(Date.parse(x509.validFrom)).toBe(NOW - CLOCK_SKEW_MS);
    expect(Date.parse(x509.validTo)).toBe(NOW + DEFAULT_CA_TTL_MS);
    expect(x509.verify(x509.publicKey)).toBe(true);
    expect(x509.checkIssued(x509)).toBe(true);
    expect(x509.checkPrivateKey(createPrivateKey(ca.keyPem))).toBe(true);
    expect(x509.publicKey.asymmetricKeyType).toBe("rsa");
    expect(x509.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  });

  it("marks basicConstraints CA:TRUE and keyUsage certSign+cRLSign critical", async () => {
    const text = await opensslExtensions(
      ca.certPem,
      "basicConstraints,keyUsage,subjectKeyIdentifier,authorityKeyIdentifier",
    );
    expect(text).toMatch(/X509v3 Basic Constraints: critical\n\s+CA:TRUE\n/);
    expect(text).toMatch(/X509v3 Key Usage: critical\n\s+Certificate Sign, CRL Sign\n/);
    const ski = /Subject Key Identifier: \n\s+(\S+)/.exec(text)?.[1];
    expect(ski).toMatch(/^([0-9A-F]{2}:){19}[0-9A-F]{2}$/);
    expect(text).toContain(`Authority Key Identifier: \n    ${ski}`);
  });

  it("takes a trust domain, lifetime and key type", () => {
    const other = createCa({
      now,
      trustDomain: "prod.example",
      ttlMs: 86_400_000,
      keyType: "ecdsa",
    });
    const x509 = new X509Certificate(other.certPem);
    expect(x509.subject).toBe("O=prod.example\nCN=remora CA");
    expect(x509.subjectAltName).toBe("URI:spiffe://prod.example");
    expect(Date.parse(x509.validTo)).toBe(NOW + 86_400_000);
    expect(x509.publicKey.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    expect(x509.verify(x509.publicKey)).toBe(true);
  });

  it("writes times from 2050 on as GeneralizedTime (RFC 5280 §4.1.2.5), which openssl accepts", async () => {
    const long = createCa({ now, ttlMs: 50 * 365 * 86_400_000 });
    const x509 = new X509Certificate(long.certPem);
    expect(new Date(x509.validTo).getUTCFullYear()).toBe(2080);
    const leaf = issueWorkloadCertificate({
      ca: long,
      namespace: "a",
      serviceAccount: "b",
      now,
      ttlMs: 30 * 365 * 86_400_000,
    });
    const result = await opensslVerify(long.certPem, leaf.certPem);
    expect(result.output).toContain("tls.crt: OK");
  });

  it("rejects a bad trust domain", () => {
    expect(() => createCa({ trustDomain: "Bad Domain" })).toThrow(InvalidSpiffeIdError);
  });

  it("draws serials from the random source", () => {
    const a = createCa({ now, random: (n) => Buffer.alloc(n, 0xff) });
    // 0xff..ff with the top bits fixed: positive, minimal DER, never 0.
    expect(new X509Certificate(a.certPem).serialNumber).toBe(`7F${"FF".repeat(15)}`);
  });
});

describe("issueWorkloadCertificate", () => {
  it("issues an X509-SVID for the service account: exact SAN, leaf flags, 24 h window", async () => {
    const leaf = issueWorkloadCertificate({
      ca,
      namespace: "default",
      serviceAccount: "bookinfo-reviews",
      dnsNames: ["reviews.default.svc"],
      now,
    });
    expect(leaf.spiffeId).toBe("spiffe://cluster.local/ns/default/sa/bookinfo-reviews");
    expect(leaf.caPem).toBe(ca.certPem);
    const x509 = new X509Certificate(leaf.certPem);
    const caX509 = new X509Certificate(ca.certPem);
    expect(x509.subjectAltName).toBe(
      "URI:spiffe://cluster.local/ns/default/sa/bookinfo-reviews, DNS:reviews.default.svc",
    );
    expect(identityOfCertificate(leaf.certPem)).toEqual([leaf.spiffeId]);
    expect(x509.ca).toBe(false);
    // An empty subject: the identity lives in the (then critical) SAN, as in Istio's certificates.
    // (Node 24 reports an empty subject as undefined, Node 22 as "".)
    expect(x509.subject ?? "").toBe("");
    expect(x509.issuer).toBe(caX509.subject);
    expect(x509.keyUsage).toEqual([SERVER_AUTH, CLIENT_AUTH]);
    expect(Date.parse(x509.validFrom)).toBe(NOW - CLOCK_SKEW_MS);
    expect(Date.parse(x509.validTo)).toBe(NOW + DEFAULT_WORKLOAD_TTL_MS);
    expect(leaf.notAfter.getTime()).toBe(NOW + DEFAULT_WORKLOAD_TTL_MS);
    expect(x509.checkIssued(caX509)).toBe(true);
    expect(x509.verify(caX509.publicKey)).toBe(true);
    expect(x509.checkPrivateKey(createPrivateKey(leaf.keyPem))).toBe(true);
    expect(x509.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);

    const text = await opensslExtensions(
      leaf.certPem,
      "basicConstraints,keyUsage,subjectAltName,authorityKeyIdentifier",
    );
    expect(text).toMatch(/X509v3 Basic Constraints: critical\n\s+CA:FALSE\n/);
    expect(text).toMatch(/X509v3 Key Usage: critical\n\s+Digital Signature, Key Encipherment\n/);
    expect(text).toMatch(/X509v3 Subject Alternative Name: critical\n/);
    const caText = await opensslExtensions(ca.certPem, "subjectKeyIdentifier");
    const caSki = /Subject Key Identifier: \n\s+(\S+)/.exec(caText)?.[1];
    expect(text).toContain(`Authority Key Identifier: \n    ${caSki}`);
  });

  it("verifies with openssl verify -x509_strict, for RSA and ECDSA keys and CAs", async () => {
    const ecCa = createCa({ now, keyType: "ecdsa" });
    for (const [issuer, keyType] of [
      [ca, "rsa"],
      [ca, "ecdsa"],
      [ecCa, "ecdsa"],
      [ecCa, "rsa"],
    ] as const) {
      const leaf = issueWorkloadCertificate({
        ca: issuer,
        namespace: "ns",
        serviceAccount: "sa",
        keyType,
        now,
      });
      const result = await opensslVerify(leaf.caPem, leaf.certPem);
      expect(result.output, keyType).toContain("tls.crt: OK");
      expect(result.code).toBe(0);
      const key = createPublicKey(leaf.keyPem);
      expect(key.asymmetricKeyType).toBe(keyType === "rsa" ? "rsa" : "ec");
      if (keyType === "ecdsa") expect(key.asymmetricKeyDetails?.namedCurve).toBe("prime256v1");
    }
  });

  it("fails openssl verify against another CA, and once expired", async () => {
    const leaf = issueWorkloadCertificate({ ca, namespace: "ns", serviceAccount: "sa", now });
    const foreign = createCa({ now });
    const wrongCa = await opensslVerify(foreign.certPem, leaf.certPem);
    expect(wrongCa.code).not.toBe(0);
    expect(wrongCa.output).toMatch(
      /unable to get local issuer certificate|certificate signature failure/,
    );
    const expired = await opensslVerify(
      ca.certPem,
      leaf.certPem,
      (NOW + DEFAULT_WORKLOAD_TTL_MS) / 1000 + 1,
    );
    expect(expired.code).not.toBe(0);
    expect(expired.output).toContain("certificate has expired");
  });

  it("gives every certificate a different random serial", () => {
    const serials = new Set(
      [1, 2, 3].map(
        () =>
          new X509Certificate(
            issueWorkloadCertificate({
              ca,
              namespace: "ns",
              serviceAccount: "sa",
              keyType: "ecdsa",
              now,
            }).certPem,
          ).serialNumber,
      ),
    );
    expect(serials.size).toBe(3);
  });

  it("takes the trust domain from the CA and refuses another", () => {
    const other = createCa({ now, trustDomain: "prod.example", keyType: "ecdsa" });
    const leaf = issueWorkloadCertificate({
      ca: other,
      namespace: "a",
      serviceAccount: "b",
      keyType: "ecdsa",
      now,
    });
    expect(leaf.spiffeId).toBe("spiffe://prod.example/ns/a/sa/b");
    expect(() =>
      issueWorkloadCertificate({
        ca: other,
        trustDomain: "cluster.local",
        namespace: "a",
        serviceAccount: "b",
        now,
      }),
    ).toThrow('trust domain "cluster.local" differs from the CA\'s "prod.example"');
  });

  it("is usable for mTLS by node:tls in both directions", async () => {
    // Real time here: node:tls checks validity against the clock.
    const current = createCa();
    const server = issueWorkloadCertificate({
      ca: current,
      namespace: "default",
      serviceAccount: "server",
    });
    const client = issueWorkloadCertificate({
      ca: current,
      namespace: "default",
      serviceAccount: "client",
      keyType: "ecdsa",
    });
    const tlsServer = createServer(
      {
        cert: server.certPem,
        key: server.keyPem,
        ca: server.caPem,
        requestCert: true,
        rejectUnauthorized: true,
      },
      (socket) =>
        socket.end(
          identityOfCertificate((socket.getPeerCertificate() as { raw: Buffer }).raw).join(),
        ),
    );
    tlsServer.listen(0, "127.0.0.1");
    await once(tlsServer, "listening");
    try {
      const socket: TLSSocket = connect({
        port: (tlsServer.address() as AddressInfo).port,
        host: "127.0.0.1",
        cert: client.certPem,
        key: client.keyPem,
        ca: client.caPem,
        // The SPIFFE ID is the identity, not a host name: check it instead of the host.
        checkServerIdentity: () => undefined,
      });
      await once(socket, "secureConnect");
      expect(socket.authorized).toBe(true);
      expect(uriOf(socket)).toEqual([server.spiffeId]);
      const chunks: Buffer[] = [];
      for await (const chunk of socket) chunks.push(chunk as Buffer);
      expect(Buffer.concat(chunks).toString()).toBe(client.spiffeId);
    } finally {
      tlsServer.close();
    }
  });

  it.each([
    ["a CA certificate that is not a CA", () => ({ ca: leafAsCa() }), "is not a CA"],
    [
      "a key of another CA",
      () => ({ ca: { certPem: ca.certPem, keyPem: createCa().keyPem } }),
      "does not belong",
    ],
    [
      "garbage as certificate",
      () => ({ ca: { certPem: "nope", keyPem: ca.keyPem } }),
      "not a PEM certificate",
    ],
    [
      "garbage as key",
      () => ({ ca: { certPem: ca.certPem, keyPem: "nope" } }),
      "not a PEM private key",
    ],
    [
      "an expired CA",
      () => ({ now: () => NOW + DEFAULT_CA_TTL_MS }),
      "the CA certificate expired on",
    ],
    ["a CA not valid yet", () => ({ now: () => NOW - 3_600_000 }), "not valid before"],
    [
      "a lifetime beyond the CA's",
      () => ({ ttlMs: DEFAULT_CA_TTL_MS + 1000 }),
      "would outlive its CA",
    ],
    [
      "a bad DNS name",
      () => ({ dnsNames: ["bad name"] }),
      'DNS name "bad name" is not a host name',
    ],
  ])("refuses %s with a CaError", (_what, override, message) => {
    const attempt = () =>
      issueWorkloadCertificate({ ca, namespace: "ns", serviceAccount: "sa", now, ...override() });
    expect(attempt).toThrow(CaError);
    expect(attempt).toThrow(message);
  });

  it("refuses a bad namespace or service account with REMORA_ERR_BAD_SPIFFE_ID", () => {
    expect(() =>
      issueWorkloadCertificate({ ca, namespace: "Bad_NS", serviceAccount: "sa", now }),
    ).toThrow(
      expect.objectContaining({
        code: "REMORA_ERR_BAD_SPIFFE_ID",
        message: expect.stringContaining('namespace "Bad_NS"'),
      }),
    );
    expect(() =>
      issueWorkloadCertificate({ ca, namespace: "ns", serviceAccount: "", now }),
    ).toThrow(InvalidSpiffeIdError);
  });

  it("refuses an unknown key type", () => {
    expect(() =>
      issueWorkloadCertificate({
        ca,
        namespace: "ns",
        serviceAccount: "sa",
        now,
        keyType: "dsa" as "rsa",
      }),
    ).toThrow('unknown key type "dsa"');
  });
});

function leafAsCa(): CertificateAndKey {
  const leaf = issueWorkloadCertificate({
    ca,
    namespace: "ns",
    serviceAccount: "sa",
    now,
    keyType: "ecdsa",
  });
  return { certPem: leaf.certPem, keyPem: leaf.keyPem };
}

function uriOf(socket: TLSSocket): string[] {
  return identityOfCertificate(new X509Certificate(socket.getPeerCertificate().raw));
}
