import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { describe, expect, it } from "vitest";
import { encodeName, randomSerial, signCertificate } from "./certificate-signer.js";
import {
  DEFAULT_TRUST_DOMAIN,
  InvalidSpiffeIdError,
  identityOfCertificate,
  parseSpiffeId,
  spiffeId,
  uriSansOf,
} from "./identity.js";

function rejection(fn: () => unknown): InvalidSpiffeIdError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidSpiffeIdError);
    return error as InvalidSpiffeIdError;
  }
  throw new Error("expected a rejection");
}

describe("spiffeId", () => {
  it("formats Istio's identity", () => {
    expect(DEFAULT_TRUST_DOMAIN).toBe("cluster.local");
    expect(spiffeId("cluster.local", "default", "bookinfo-reviews")).toBe(
      "spiffe://cluster.local/ns/default/sa/bookinfo-reviews",
    );
    expect(spiffeId("prod_mesh.example.com", "a1", "sa.with.dots")).toBe(
      "spiffe://prod_mesh.example.com/ns/a1/sa/sa.with.dots",
    );
  });

  it.each([
    ["", "default", "sa", "trust domain", "empty"],
    ["Cluster.local", "default", "sa", "trust domain", "lowercase"],
    ["cluster..local", "default", "sa", "trust domain", "empty label"],
    ["-cluster.local", "default", "sa", "trust domain", "'-'"],
    ["cluster.local:8080", "default", "sa", "trust domain", "may hold only"],
    ["cluster.local", "Default", "sa", "namespace", "DNS-1123 label"],
    ["cluster.local", "my_ns", "sa", "namespace", "DNS-1123 label"],
    ["cluster.local", "ns-", "sa", "namespace", "DNS-1123 label"],
    ["cluster.local", "a".repeat(64), "sa", "namespace", "longer than 63"],
    ["cluster.local", "", "sa", "namespace", "empty"],
    ["cluster.local", "default", "SA", "service account", "DNS-1123 subdomain"],
    ["cluster.local", "default", "a..b", "service account", "DNS-1123 subdomain"],
    ["cluster.local", "default", "a/b", "service account", "DNS-1123 subdomain"],
    ["cluster.local", "default", "", "service account", "empty"],
  ])("rejects %j / %j / %j, naming the %s", (td, ns, sa, what, reason) => {
    const error = rejection(() => spiffeId(td, ns, sa));
    expect(error.code).toBe("REMORA_ERR_BAD_SPIFFE_ID");
    expect(error.name).toBe("InvalidSpiffeIdError");
    expect(error.message).toContain(`invalid ${what} `);
    expect(error.message).toContain(reason);
  });
});

describe("parseSpiffeId", () => {
  it("parses what spiffeId formats", () => {
    expect(parseSpiffeId("spiffe://cluster.local/ns/default/sa/bookinfo")).toEqual({
      trustDomain: "cluster.local",
      namespace: "default",
      serviceAccount: "bookinfo",
    });
    const id = spiffeId("td", "n-1", "s.a");
    expect(spiffeId(...(Object.values(parseSpiffeId(id)) as [string, string, string]))).toBe(id);
  });

  it.each([
    ["cluster.local/ns/default/sa/x", 'must start with "spiffe://"'],
    ["SPIFFE://cluster.local/ns/default/sa/x", 'must start with "spiffe://"'],
    ["https://cluster.local/ns/default/sa/x", 'must start with "spiffe://"'],
    ["spiffe://cluster.local", "has no path"],
    ["spiffe://cluster.local/ns/default/sa/x?a=b", "query, fragment or percent"],
    ["spiffe://cluster.local/ns/default/sa/x#f", "query, fragment or percent"],
    ["spiffe://cluster.local/ns/def%61ult/sa/x", "query, fragment or percent"],
    ["spiffe://Cluster.local/ns/default/sa/x", "must be lowercase"],
    ["spiffe://user@cluster.local/ns/default/sa/x", "may hold only"],
    ["spiffe://cluster.local:443/ns/default/sa/x", "may hold only"],
    ["spiffe:///ns/default/sa/x", 'trust domain "" empty'],
    ["spiffe://cluster.local/", "exactly /ns/"],
    ["spiffe://cluster.local/ns/default/sa/x/", "exactly /ns/"],
    ["spiffe://cluster.local/ns/default/sa", "exactly /ns/"],
    ["spiffe://cluster.local/ns/default/sa/x/extra", "exactly /ns/"],
    ["spiffe://cluster.local/sa/x/ns/default", "exactly /ns/"],
    ["spiffe://cluster.local//ns/default/sa/x", "exactly /ns/"],
    ["spiffe://cluster.local/ns//sa/x", 'namespace "" empty'],
    ["spiffe://cluster.local/ns/Default/sa/x", 'namespace "Default" must be a DNS-1123 label'],
    ["spiffe://cluster.local/ns/default/sa/", 'service account "" empty'],
    ["spiffe://cluster.local/ns/default/sa/X", 'service account "X" must be a DNS-1123'],
    ["spiffe://cluster.local/ns/../sa/x", "DNS-1123 label"],
  ])("rejects %j: %s", (text, reason) => {
    const error = rejection(() => parseSpiffeId(text));
    expect(error.code).toBe("REMORA_ERR_BAD_SPIFFE_ID");
    expect(error.input).toBe(text);
    expect(error.message).toBe(`invalid SPIFFE ID ${JSON.stringify(text)}: ${error.reason}`);
    expect(error.reason).toContain(reason);
  });
});

describe("uriSansOf (Node's subjectAltName text)", () => {
  it("returns URI entries in order, with JSON-quoted values decoded", () => {
    expect(uriSansOf(undefined)).toEqual([]);
    expect(uriSansOf("")).toEqual([]);
    expect(
      uriSansOf(
        'DNS:a.example, URI:spiffe://td/ns/a/sa/b, IP Address:127.0.0.1, URI:"https://x/a,b", DNS:"c, URI:spiffe://evil"',
      ),
    ).toEqual(["spiffe://td/ns/a/sa/b", "https://x/a,b"]);
  });
});

describe("identityOfCertificate", () => {
  // Certificates built directly with the signer, so these tests do not depend on the CA's policy.
  function certificateWith(altNames: object[]): string {
    const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
    return signCertificate(
      {
        serial: randomSerial((n) => Buffer.alloc(n, 7)),
        issuerDer: encodeName([{ shortName: "CN", value: "test" }]),
        subject: [{ shortName: "CN", value: "test" }],
        notBefore: new Date(0),
        notAfter: new Date(2_000_000_000_000),
        publicKey,
        extensions: altNames.length ? [{ name: "subjectAltName", altNames }] : [],
      },
      privateKey,
    );
  }

  it("returns the SPIFFE URI SANs exactly, from PEM, DER or a parsed certificate", () => {
    const pem = certificateWith([
      { type: 2, value: "reviews.default.svc" },
      { type: 6, value: "spiffe://cluster.local/ns/default/sa/reviews" },
      { type: 6, value: "https://not-an-identity.example/" },
    ]);
    const x509 = new X509Certificate(pem);
    for (const input of [pem, Buffer.from(pem), x509.raw, x509]) {
      expect(identityOfCertificate(input)).toEqual([
        "spiffe://cluster.local/ns/default/sa/reviews",
      ]);
    }
  });

  it("finds none in a certificate without SANs", () => {
    expect(identityOfCertificate(certificateWith([]))).toEqual([]);
  });

  it("is not fooled by a DNS name that spells a URI entry (CVE-2021-44532's shape)", () => {
    const pem = certificateWith([
      { type: 2, value: "x, URI:spiffe://cluster.local/ns/kube-system/sa/admin" },
    ]);
    // Node quotes the value and escapes its comma, so nothing splits there.
    expect(new X509Certificate(pem).subjectAltName).toBe(
      'DNS:"x\\u002c URI:spiffe://cluster.local/ns/kube-system/sa/admin"',
    );
    expect(identityOfCertificate(pem)).toEqual([]);
  });

  it("decodes a quoted URI SAN to its exact text", () => {
    const pem = certificateWith([
      { type: 6, value: 'spiffe://td/ns/a/sa/b,"q"' },
      { type: 6, value: "spiffe://td/ns/a/sa/c" },
    ]);
    expect(identityOfCertificate(pem)).toEqual([
      'spiffe://td/ns/a/sa/b,"q"',
      "spiffe://td/ns/a/sa/c",
    ]);
  });
});
