import { describe, expect, it } from "vitest";
import {
  describeTlsFailure,
  reasonForChainError,
  reasonForHandshakeError,
  type TlsFailureFacts,
  UpstreamTlsFailures,
} from "./outbound-failures.js";

const NOW = Date.parse("2026-06-01T12:00:00Z");
const US = "spiffe://cluster.local/ns/prod/sa/productpage";
const REVIEWS = "spiffe://cluster.local/ns/prod/sa/reviews";
const RATINGS = "spiffe://cluster.local/ns/prod/sa/ratings";

const base: TlsFailureFacts = {
  reason: "other",
  service: "reviews",
  address: "127.0.0.1:9443",
  mode: "ISTIO_MUTUAL",
  subjectAltNames: [REVIEWS],
  trustDomain: "cluster.local",
  ours: US,
  ourIssuer: "O=cluster.local, CN=remora CA",
  trustBundle: "ca /etc/certs/ca.crt",
  now: NOW,
};

const peer = {
  spiffeIds: [RATINGS],
  subjectAltName: `URI:${RATINGS}`,
  subject: "",
  issuer: "O=other, CN=other CA",
  notBefore: NOW - 48 * 3_600_000,
  notAfter: NOW - 3 * 3_600_000,
};

describe("describeTlsFailure: one sentence per reason", () => {
  it("identity mismatch names both identities and the config key", () => {
    expect(describeTlsFailure({ ...base, reason: "identity_mismatch", peer })).toBe(
      `TLS to reviews (127.0.0.1:9443) failed: the server presented ${RATINGS}, but service reviews expects ${REVIEWS} (trafficPolicy.tls.subjectAltNames); we are ${US}`,
    );
  });

  it("without subjectAltNames, the trust domain is what was expected", () => {
    expect(
      describeTlsFailure({ ...base, reason: "identity_mismatch", subjectAltNames: [], peer }),
    ).toContain(
      "expects a SPIFFE identity in trust domain cluster.local (no trafficPolicy.tls.subjectAltNames set)",
    );
  });

  it("a certificate without a SPIFFE identity says so", () => {
    const text = describeTlsFailure({
      ...base,
      reason: "identity_mismatch",
      peer: { ...peer, spiffeIds: [], subjectAltName: "DNS:reviews.example" },
    });
    expect(text).toContain(
      "the server presented a certificate without a SPIFFE identity (DNS:reviews.example)",
    );
  });

  it("SIMPLE: the name from sni, or the service name with a hint", () => {
    const simple = { ...base, mode: "SIMPLE" as const, subjectAltNames: [], ours: undefined };
    const dnsPeer = { ...peer, spiffeIds: [], subjectAltName: "DNS:api.example" };
    expect(
      describeTlsFailure({
        ...simple,
        reason: "identity_mismatch",
        peer: dnsPeer,
        hostname: "db.example",
        hostnameFromSni: true,
      }),
    ).toBe(
      "TLS to reviews (127.0.0.1:9443) failed: the server presented DNS:api.example, but service reviews expects the name db.example (trafficPolicy.tls.sni)",
    );
    expect(
      describeTlsFailure({
        ...simple,
        reason: "identity_mismatch",
        peer: dnsPeer,
        hostname: "reviews",
        hostnameFromSni: false,
      }),
    ).toContain(
      "expects the name reviews (the service name; set trafficPolicy.tls.sni or subjectAltNames",
    );
  });

  it("untrusted names the server's issuer and our bundle", () => {
    expect(describeTlsFailure({ ...base, reason: "untrusted", peer })).toBe(
      `TLS to reviews (127.0.0.1:9443) failed: the server's certificate (${RATINGS}, issued by O=other, CN=other CA) is not issued by our trust bundle (ca /etc/certs/ca.crt): is the server in another mesh or trust domain, or does our ca.crt lack its CA?; we are ${US}`,
    );
  });

  it("expired and not yet valid carry the dates", () => {
    expect(describeTlsFailure({ ...base, reason: "expired", peer })).toContain(
      `the server's certificate (${RATINGS}) expired on 2026-06-01T09:00:00Z (3 h ago): the server has not rotated it`,
    );
    const future = { ...peer, notBefore: NOW + 10 * 60_000 };
    expect(describeTlsFailure({ ...base, reason: "not_yet_valid", peer: future })).toContain(
      "is not valid until 2026-06-01T12:10:00Z (in 10 min): is the clock wrong here or on the server?",
    );
  });

  it("a server refusing our certificate: our CA, and the alert when there is one", () => {
    expect(
      describeTlsFailure({
        ...base,
        reason: "peer_refused_our_certificate",
        detail: "tlsv1 alert unknown ca",
      }),
    ).toBe(
      `TLS to reviews (127.0.0.1:9443) failed: the server does not trust our certificate: its trust bundle probably lacks our CA (issuer O=cluster.local, CN=remora CA) (TLS alert: unknown ca); we are ${US}`,
    );
  });

  it("plaintext and timeout", () => {
    expect(describeTlsFailure({ ...base, reason: "not_tls" })).toBe(
      "TLS to reviews (127.0.0.1:9443) failed: the endpoint answered in plaintext: is its port mTLS? set trafficPolicy.tls.mode DISABLE for a plaintext destination",
    );
    expect(describeTlsFailure({ ...base, reason: "timeout", timeoutMs: 250 })).toContain(
      "no TLS handshake within 250 ms (connectionPool.tcp.connectTimeout)",
    );
  });
});

describe("classifying what OpenSSL and the chain check say", () => {
  it("chain verdicts", () => {
    expect(reasonForChainError("CERT_HAS_EXPIRED")).toBe("expired");
    expect(reasonForChainError("CERT_NOT_YET_VALID")).toBe("not_yet_valid");
    expect(reasonForChainError("UNABLE_TO_VERIFY_LEAF_SIGNATURE")).toBe("untrusted");
    expect(reasonForChainError("SELF_SIGNED_CERT_IN_CHAIN")).toBe("untrusted");
    expect(reasonForChainError("SOMETHING_NEW")).toBe("other");
  });

  it("handshake errors", () => {
    const error = (message: string, code?: string) => Object.assign(new Error(message), { code });
    expect(
      reasonForHandshakeError(
        error("error:0A00010B:SSL routines::wrong version number", "ERR_SSL_WRONG_VERSION_NUMBER"),
      ),
    ).toBe("not_tls");
    expect(reasonForHandshakeError(error("packet length too long"))).toBe("not_tls");
    expect(
      reasonForHandshakeError(error("error:0A000418:SSL routines::tlsv1 alert unknown ca")),
    ).toBe("peer_refused_our_certificate");
    expect(reasonForHandshakeError(error("tlsv13 alert certificate required"))).toBe(
      "peer_refused_our_certificate",
    );
    expect(reasonForHandshakeError(error("sslv3 alert bad certificate"))).toBe(
      "peer_refused_our_certificate",
    );
    expect(reasonForHandshakeError(error("socket hang up", "ECONNRESET"))).toBe("other");
  });
});

describe("UpstreamTlsFailures: every failure counted, one line per service and reason per second", () => {
  it("suppresses repeats within the interval and reports how many on the next line", () => {
    let now = 0;
    const lines: string[] = [];
    const failures = new UpstreamTlsFailures({
      warn: (_fields, message) => lines.push(message),
      clock: () => now,
    });
    const facts = { ...base, reason: "not_tls" as const };
    for (let i = 0; i < 5; i++) failures.report("reviews.prod", facts);
    failures.report("reviews.prod", { ...facts, reason: "timeout", timeoutMs: 1 });
    failures.report("ratings.prod", facts);
    expect(lines).toHaveLength(3);
    now = 999;
    failures.report("reviews.prod", facts);
    expect(lines).toHaveLength(3);
    now = 1000;
    failures.report("reviews.prod", facts);
    expect(lines).toHaveLength(4);
    expect(lines[3]).toMatch(/ \(and 5 more like it since the last line\)$/);
    const counts: string[] = [];
    failures.forEach((service, reason, count) => {
      counts.push(`${service} ${reason} ${count}`);
    });
    expect(counts.sort()).toEqual([
      "ratings.prod not_tls 1",
      "reviews.prod not_tls 7",
      "reviews.prod timeout 1",
    ]);
  });
});
