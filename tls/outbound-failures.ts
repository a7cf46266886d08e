/**
 * Why an upstream TLS connection failed, in words an operator can act on, counted and logged at
 * a bounded rate. Opaque mTLS failures ("upstream connect error or disconnect/reset before
 * headers. reset reason: connection failure, transport failure reason: TLS error: 268435581")
 * are the mesh's most common debugging pain; every message here names both identities, what
 * was expected and where that expectation comes from in the config.
 */
import type { ClientTlsMode } from "./client-tls-settings.js";
import { isoDate, relative } from "./workload-identity.js";

/** The `reason` label of `remora_upstream_tls_errors_total`: a small, fixed set. */
export const TLS_FAILURE_REASONS = [
  "identity_mismatch",
  "untrusted",
  "expired",
  "not_yet_valid",
  "peer_refused_our_certificate",
  "not_tls",
  "timeout",
  "other",
] as const;

export type TlsFailureReason = (typeof TLS_FAILURE_REASONS)[number];

/** The server's certificate as the message shows it. */
export interface PeerFacts {
  /** SPIFFE IDs (URI SANs starting with spiffe://). */
  readonly spiffeIds: readonly string[];
  /** Node's subjectAltName text (`DNS:a, URI:b`), or "" when the certificate has none. */
  readonly subjectAltName: string;
  /** One line, `CN=x, O=y`. */
  readonly subject: string;
  readonly issuer: string;
  /** Epoch ms. */
  readonly notBefore: number;
  readonly notAfter: number;
}

/** Everything the message is built from; only `reason` and the first four are always known. */
export interface TlsFailureFacts {
  readonly reason: TlsFailureReason;
  /** The service's name as the config names it (`reviews`). */
  readonly service: string;
  /** `host:port` of the endpoint. */
  readonly address: string;
  readonly mode: Exclude<ClientTlsMode, "DISABLE">;
  /** What the server had to carry, as configured (subjectAltNames), if any were. */
  readonly subjectAltNames: readonly string[];
  /** ISTIO_MUTUAL without subjectAltNames: the trust domain any server identity must be in. */
  readonly trustDomain?: string;
  /** SIMPLE/MUTUAL without subjectAltNames: the name the certificate is checked against. */
  readonly hostname?: string;
  /** Whether `hostname` came from trafficPolicy.tls.sni (else: the service name). */
  readonly hostnameFromSni?: boolean;
  /** Our identity: the SPIFFE ID (ISTIO_MUTUAL) or the client certificate's subject (MUTUAL). */
  readonly ours?: string;
  /** The issuer of our certificate (for "the server does not trust us"). */
  readonly ourIssuer?: string;
  /** The trust bundle the server was checked against, in words (file, CA subjects). */
  readonly trustBundle?: string;
  readonly peer?: PeerFacts;
  /** OpenSSL's or node's words, for the reasons that have them. */
  readonly detail?: string;
  /** For `timeout`. */
  readonly timeoutMs?: number;
  /** Wall clock at the failure (epoch ms), for "expired 3 h ago". */
  readonly now: number;
}

/** Chain verdicts (node's `authorizationError`, OpenSSL's X509_V_ERR_* names) by reason. */
const CHAIN_REASONS: Readonly<Record<string, TlsFailureReason>> = {
  CERT_HAS_EXPIRED: "expired",
  CERT_NOT_YET_VALID: "not_yet_valid",
  UNABLE_TO_GET_ISSUER_CERT: "untrusted",
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY: "untrusted",
  UNABLE_TO_VERIFY_LEAF_SIGNATURE: "untrusted",
  SELF_SIGNED_CERT_IN_CHAIN: "untrusted",
  DEPTH_ZERO_SELF_SIGNED_CERT: "untrusted",
  CERT_SIGNATURE_FAILURE: "untrusted",
  CERT_UNTRUSTED: "untrusted",
  CERT_REJECTED: "untrusted",
};

/** The reason for a chain verdict that is not "ok". */
export function reasonForChainError(code: string): TlsFailureReason {
  return CHAIN_REASONS[code] ?? "other";
}

/**
 * TLS alerts a server sends when it refuses the client's certificate (RFC 8446 §6.2), as
 * OpenSSL words them in the error it raises on our side.
 */
const REFUSED_US =
  /alert (unknown ca|bad certificate|certificate required|certificate unknown|certificate expired|unsupported certificate|certificate revoked|access denied|handshake failure)/i;
/**
 * What OpenSSL says when the bytes that came back are not a TLS record: an HTTP/1.1 reply to our
 * ClientHello reads as a record with version "HT" or a huge length.
 */
const PLAINTEXT =
  /wrong version number|packet length too long|http request|unknown protocol|record layer failure/i;

/** The reason for an error raised during the handshake (after TCP connected). */
export function reasonForHandshakeError(error: Error): TlsFailureReason {
  const text = `${(error as NodeJS.ErrnoException).code ?? ""} ${error.message}`;
  if (PLAINTEXT.test(text)) return "not_tls";
  if (REFUSED_US.test(text)) return "peer_refused_our_certificate";
  return "other";
}

/** The alert's name in an OpenSSL message (`tlsv13 alert certificate required` → that). */
function alertOf(detail: string | undefined): string | undefined {
  const match = detail === undefined ? null : /alert ([a-z ]+)/i.exec(detail);
  return match === null ? undefined : match[1]!.trim().toLowerCase();
}

/** The server's certificate in a few words: its identity, else its names, else its subject. */
function describePeer(peer: PeerFacts): string {
  if (peer.spiffeIds.length > 0) return peer.spiffeIds.join(" and ");
  if (peer.subjectAltName !== "") return peer.subjectAltName;
  return `a certificate for ${peer.subject || "an empty subject"}`;
}

/** What the server should have been, and which config key says so. */
function describeExpected(facts: TlsFailureFacts): string {
  const sans = facts.subjectAltNames;
  if (sans.length > 0) {
    const list = sans.length === 1 ? sans[0]! : `one of ${sans.join(", ")}`;
    return `${list} (trafficPolicy.tls.subjectAltNames)`;
  }
  if (facts.mode === "ISTIO_MUTUAL") {
    return `a SPIFFE identity in trust domain ${facts.trustDomain ?? "?"} (no trafficPolicy.tls.subjectAltNames set)`;
  }
  return facts.hostnameFromSni
    ? `the name ${facts.hostname} (trafficPolicy.tls.sni)`
    : `the name ${facts.hostname} (the service name; set trafficPolicy.tls.sni or subjectAltNames if the certificate is for another name)`;
}

/**
 * The log line: `TLS to SERVICE (ADDRESS) failed: <why>; we are <our identity>`. Pure, so each
 * case is tested word for word.
 */
export function describeTlsFailure(facts: TlsFailureFacts): string {
  const head = `TLS to ${facts.service} (${facts.address}) failed: `;
  const we = facts.ours === undefined ? "" : `; we are ${facts.ours}`;
  const peer = facts.peer;
  switch (facts.reason) {
    case "identity_mismatch": {
      const presented =
        peer === undefined
          ? "no certificate"
          : peer.spiffeIds.length === 0 && facts.mode === "ISTIO_MUTUAL"
            ? `a certificate without a SPIFFE identity (${peer.subjectAltName || `subject ${peer.subject}`})`
            : describePeer(peer);
      return `${head}the server presented ${presented}, but service ${facts.service} expects ${describeExpected(facts)}${we}`;
    }
    case "untrusted": {
      const what =
        peer === undefined
          ? "the server's certificate"
          : `the server's certificate (${describePeer(peer)}, issued by ${peer.issuer})`;
      const bundle = facts.trustBundle === undefined ? "" : ` (${facts.trustBundle})`;
      const hint =
        facts.mode === "ISTIO_MUTUAL"
          ? ": is the server in another mesh or trust domain, or does our ca.crt lack its CA?"
          : ": set trafficPolicy.tls.caFile to the CA that issued it";
      return `${head}${what} is not issued by our trust bundle${bundle}${hint}${we}`;
    }
    case "expired": {
      const when =
        peer === undefined
          ? ""
          : ` on ${isoDate(peer.notAfter)} (${relative(facts.now - peer.notAfter)} ago)`;
      const what = peer === undefined ? "" : ` (${describePeer(peer)})`;
      return `${head}the server's certificate${what} expired${when}: the server has not rotated it${we}`;
    }
    case "not_yet_valid": {
      const when =
        peer === undefined
          ? ""
          : ` until ${isoDate(peer.notBefore)} (in ${relative(peer.notBefore - facts.now)})`;
      const what = peer === undefined ? "" : ` (${describePeer(peer)})`;
      return `${head}the server's certificate${what} is not valid${when}: is the clock wrong here or on the server?${we}`;
    }
    case "peer_refused_our_certificate": {
      const issuer = facts.ourIssuer === undefined ? "" : ` (issuer ${facts.ourIssuer})`;
      const alert = alertOf(facts.detail);
      const said =
        alert !== undefined
          ? ` (TLS alert: ${alert})`
          : facts.detail === undefined
            ? ""
            : ` (${facts.detail})`;
      return `${head}the server does not trust our certificate: its trust bundle probably lacks our CA${issuer}${said}${we}`;
    }
    case "not_tls":
      return `${head}the endpoint answered in plaintext: is its port mTLS? set trafficPolicy.tls.mode DISABLE for a plaintext destination`;
    case "timeout":
      return `${head}no TLS handshake within ${facts.timeoutMs} ms (connectionPool.tcp.connectTimeout): the endpoint accepted the TCP connection but did not answer the handshake${we}`;
    default:
      return `${head}${facts.detail ?? "the TLS handshake failed"}${we}`;
  }
}

/** One service's failures by reason (the metric), in TLS_FAILURE_REASONS order. */
export type FailureCounts = Float64Array;

export interface UpstreamTlsFailuresOptions {
  /** Where the lines go (pino's `warn`). */
  readonly warn: (fields: Record<string, unknown>, message: string) => void;
  /** Monotonic ms; default performance.now. */
  readonly clock?: () => number;
  /** At most one line per service and reason per this many ms (default 1000). */
  readonly intervalMs?: number;
}

interface LogWindow {
  /** When the last line for this service and reason was written. */
  loggedAt: number;
  /** Failures since then that were not logged. */
  suppressed: number;
}

/**
 * Counts every upstream TLS failure (`remora_upstream_tls_errors_total{service,reason}`) and logs
 * them at most once per service and reason per interval: a broken destination under load fails
 * thousands of handshakes a second, and one line with a count says the same. The next line
 * written carries the number left out before it.
 */
export class UpstreamTlsFailures {
  readonly #counts = new Map<string, FailureCounts>();
  readonly #windows = new Map<string, LogWindow>();
  readonly #warn: UpstreamTlsFailuresOptions["warn"];
  readonly #clock: () => number;
  readonly #intervalMs: number;

  constructor(options: UpstreamTlsFailuresOptions) {
    this.#warn = options.warn;
    this.#clock = options.clock ?? (() => performance.now());
    this.#intervalMs = options.intervalMs ?? 1000;
  }

  /** `serviceKey`: the metric's `service` label (`name.namespace`). */
  report(serviceKey: string, facts: TlsFailureFacts): void {
    let counts = this.#counts.get(serviceKey);
    if (counts === undefined) {
      counts = new Float64Array(TLS_FAILURE_REASONS.length);
      this.#counts.set(serviceKey, counts);
    }
    counts[TLS_FAILURE_REASONS.indexOf(facts.reason)]!++;
    const key = `${serviceKey} ${facts.reason}`;
    const now = this.#clock();
    const window = this.#windows.get(key);
    if (window !== undefined && now - window.loggedAt < this.#intervalMs) {
      window.suppressed++;
      return;
    }
    const suppressed = window?.suppressed ?? 0;
    this.#windows.set(key, { loggedAt: now, suppressed: 0 });
    const more = suppressed === 0 ? "" : ` (and ${suppressed} more like it since the last line)`;
    this.#warn(
      {
        service: serviceKey,
        endpoint: facts.address,
        reason: facts.reason,
        mode: facts.mode,
        peer: facts.peer?.spiffeIds[0] ?? facts.peer?.subject,
        ours: facts.ours,
        suppressed,
      },
      `${describeTlsFailure(facts)}${more}`,
    );
  }

  /** Every (service, reason, count) with a count above 0, for the metric. */
  forEach(visit: (service: string, reason: TlsFailureReason, count: number) => void): void {
    for (const [service, counts] of this.#counts) {
      counts.forEach((count, index) => {
        if (count > 0) visit(service, TLS_FAILURE_REASONS[index]!, count);
      });
    }
  }
}
