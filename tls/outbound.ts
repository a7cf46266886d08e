/**
 * Outbound mTLS origination: the connector an upstream pool opens TLS connections through
 * (proxy/upstream/connector.ts). One connector per service (or subset) and TLS settings.
 *
 * Verification is done here rather than by node's `rejectUnauthorized`/`checkServerIdentity`, so
 * a failure is known by kind (chain, dates, identity) with the server's certificate in hand for
 * the message (outbound-failures.ts). The connection is handed to the pool only once it passed.
 *
 * - ISTIO_MUTUAL: presents this workload's certificate (read per connection: a rotated one
 *   reaches new connections), requires a chain to the workload's trust bundle and a SPIFFE
 *   identity: one of `subjectAltNames`, or, with none configured, any identity in our own trust
 *   domain (Istio's control plane would fill in the destination's service accounts; remora has
 *   none, and "same mesh" is the check that still means something). No DNS hostname check, as
 *   in Istio. ALPN `istio-http/1.1`, `istio`, `http/1.1`; SNI Istio's
 *   `outbound_.PORT_._.NAME.NAMESPACE.svc.cluster.local` unless `sni` is set (PORT: the Service
 *   port of a Kubernetes port cluster, else the endpoint's port).
 * - SIMPLE / MUTUAL: the server's chain against `caFile` (node's bundled CAs without one), then
 *   `subjectAltNames` if set (they replace the hostname check, as Envoy's SAN matchers do), else
 *   the standard hostname check against `sni`, or the service name without one. MUTUAL presents
 *   `certFile`/`keyFile`. SNI: `sni`, else the service name.
 *
 * TLS 1.3 moves the server's verdict on our certificate after our side of the handshake: a
 * server that refuses it sends its alert after we would already have written the request. So a
 * connection that presented a certificate is handed over only once the server sent its first
 * session ticket (OpenSSL, BoringSSL and node servers send it after they accepted the client's
 * certificate), or an alert arrived (a failure we can name), or, for a server that sends no
 * tickets, after a grace as long as the handshake took. Resumed sessions present no certificate
 * and skip the wait.
 *
 * Resumption: the pool keeps the server's last session ticket, stored only after that server
 * passed verification, and offers it on the next connect. A resumed connection is not checked
 * again: node does not hand back the peer certificate on resumption (and skips its own identity
 * check there too), and the ticket can only have come from a server this pool verified under the
 * same settings (pools are per endpoint and TLS settings).
 */
import { X509Certificate } from "node:crypto";
import { isIP } from "node:net";
import {
  type ConnectionOptions,
  checkServerIdentity,
  connect,
  createSecureContext,
  type PeerCertificate,
  type SecureContext,
  type TLSSocket,
} from "node:tls";
import { RemoraError } from "../proxy/errors.js";
import type { ReadBuffer } from "../proxy/read-buffer.js";
import type { ConnectDone, ConnectTarget, UpstreamConnector } from "../proxy/upstream/connector.js";
import { STREAM_HIGH_WATER } from "../proxy/upstream/pool.js";
import type { ClientTlsSettings } from "./client-tls-settings.js";
import { parseSpiffeId, uriSansOf } from "./identity.js";
import { INBOUND_ALPN } from "./inbound.js";
import {
  type PeerFacts,
  reasonForChainError,
  reasonForHandshakeError,
  type TlsFailureFacts,
  type TlsFailureReason,
  type UpstreamTlsFailures,
} from "./outbound-failures.js";

export const UPSTREAM_TLS_ERROR_CODE = "REMORA_ERR_UPSTREAM_TLS";

/** What ISTIO_MUTUAL needs of this workload's identity (WorkloadIdentity); read per connection. */
export interface ClientIdentity {
  readonly secureContext: SecureContext;
  readonly spiffeId: string | undefined;
  readonly certificate: { readonly issuer: string };
  readonly files: { readonly caFile: string };
}

/** SIMPLE/MUTUAL: the PEM texts of the configured files (read at config load). */
export interface ClientTlsFiles {
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

export interface OutboundTlsOptions {
  readonly settings: ClientTlsSettings;
  /**
   * The service's name and namespace (messages, SNI) and key (the metric's label); `port`, the
   * Service port of a Kubernetes port cluster, is the one Istio's SNI names (else the endpoint's).
   */
  readonly service: {
    readonly name: string;
    readonly namespace: string;
    readonly key: string;
    readonly port?: number;
  };
  /** ISTIO_MUTUAL: required. */
  readonly identity?: ClientIdentity;
  /** SIMPLE/MUTUAL: the files' texts. */
  readonly files?: ClientTlsFiles;
  readonly failures: UpstreamTlsFailures;
  /** Wall clock (certificate dates in messages); default Date.now. */
  readonly clock?: () => number;
}

/** Offered by SIMPLE/MUTUAL: remora speaks HTTP/1.1 upstream. */
const HTTP11_ALPN = ["http/1.1"];
/** Shortest wait for a session ticket from a server that may not send one (see above). */
const MIN_TICKET_GRACE_MS = 10;

/** An upstream connector for one service's (or subset's) TLS settings. */
export class OutboundTlsConnector implements UpstreamConnector {
  readonly settings: ClientTlsSettings;
  readonly #service: OutboundTlsOptions["service"];
  readonly #identity: ClientIdentity | undefined;
  /** SIMPLE/MUTUAL: built once from the files; ISTIO_MUTUAL reads the identity's per connection. */
  readonly #context: SecureContext | undefined;
  readonly #failures: UpstreamTlsFailures;
  readonly #clock: () => number;
  readonly #alpn: string[];
  /** The SNI sent; undefined for an IP-literal `sni` (RFC 6066 §3 forbids it). */
  readonly #servername: string | undefined;
  /** MUTUAL: the client certificate's subject and issuer, for messages. */
  readonly #ours: { subject: string; issuer: string } | undefined;
  /** SIMPLE/MUTUAL: the trust bundle in words, for "not issued by our trust bundle". */
  readonly #bundle: string;

  constructor(options: OutboundTlsOptions) {
    const settings = options.settings;
    this.settings = settings;
    this.#service = options.service;
    this.#failures = options.failures;
    this.#clock = options.clock ?? Date.now;
    if (settings.mode === "ISTIO_MUTUAL") {
      if (options.identity === undefined) {
        throw new Error(`${options.service.key}: ISTIO_MUTUAL needs this workload's identity`);
      }
      this.#identity = options.identity;
      this.#alpn = INBOUND_ALPN;
      this.#bundle = `ca ${options.identity.files.caFile}`;
    } else {
      const files = options.files ?? {};
      this.#context = createSecureContext({
        ca: files.ca,
        cert: settings.mode === "MUTUAL" ? files.cert : undefined,
        key: settings.mode === "MUTUAL" ? files.key : undefined,
      });
      this.#alpn = HTTP11_ALPN;
      this.#bundle =
        settings.caFile === undefined
          ? "node's bundled CA certificates: no trafficPolicy.tls.caFile set"
          : `trafficPolicy.tls.caFile ${settings.caFile}${caSubjects(files.ca)}`;
      if (settings.mode === "MUTUAL" && files.cert !== undefined) {
        const cert = new X509Certificate(files.cert);
        this.#ours = { subject: oneLine(cert.subject), issuer: oneLine(cert.issuer) };
      }
    }
    const sni = settings.sni ?? this.#defaultSni();
    this.#servername = isIP(sni) === 0 ? sni : undefined;
  }

  /** Istio's SNI for ISTIO_MUTUAL is per port, so it is built per connection; else fixed. */
  #defaultSni(): string {
    return this.settings.mode === "ISTIO_MUTUAL" ? "" : this.#service.name;
  }

  open(target: ConnectTarget, reader: ReadBuffer, timeoutMs: number, done: ConnectDone): void {
    const identity = this.#identity;
    const servername =
      identity !== undefined && this.settings.sni === undefined
        ? `outbound_.${this.#service.port ?? target.port}_._.${this.#service.name}.${this.#service.namespace}.svc.cluster.local`
        : this.#servername;
    const started = performance.now();
    const socket = connect({
      host: target.host,
      port: target.port,
      servername,
      // Read per connection: a rotated workload certificate reaches new connections.
      secureContext: identity?.secureContext ?? this.#context,
      // Verified in #verify, with the certificate at hand for the message.
      rejectUnauthorized: false,
      checkServerIdentity: acceptAny,
      ALPNProtocols: this.#alpn,
      session: target.tlsSession,
      onread: reader.onread,
      // tls.connect hands this to its net.Socket (both directions; reads go through onread).
      highWaterMark: STREAM_HIGH_WATER,
    } as ConnectionOptions);
    socket.resume();
    let tcpConnected = false;
    let settled = false;
    let verified = false;
    let waitingForTicket = false;
    let unverifiedSession: Buffer | undefined;
    let grace: NodeJS.Timeout | undefined;
    const address = formatEndpoint(target.host, target.port);
    // Every ticket the server sends replaces the last: the next connection resumes with it.
    // Kept only once the server passed verification, so a ticket from a refused server (TLS 1.2
    // sends it before 'secureConnect') is never offered again.
    socket.on("session", (session: Buffer) => {
      if (!verified) {
        unverifiedSession = session;
        return;
      }
      target.tlsSession = session;
      // Not from inside this event: it runs within OpenSSL's read, and a request written here
      // (the pool hands the connection straight to a waiting exchange) would never be sent.
      if (waitingForTicket) setImmediate(handOver);
    });

    const cleanUp = () => {
      settled = true;
      clearTimeout(grace);
      socket.setTimeout(0);
      socket.off("timeout", onTimeout);
      socket.off("error", onError);
      socket.off("connect", onConnect);
      socket.off("secureConnect", onSecure);
      socket.off("close", onClose);
    };
    const handOver = () => {
      if (settled) return;
      cleanUp();
      done.ready(socket);
    };
    const fail = (reason: TlsFailureReason, extra: Partial<TlsFailureFacts>) => {
      if (settled) return;
      cleanUp();
      socket.destroy();
      // A bad ticket must not fail the next connection too.
      if (reason !== "timeout") target.tlsSession = undefined;
      const facts = this.#facts(reason, address, extra);
      this.#failures.report(this.#service.key, facts);
      done.failed(new RemoraError(UPSTREAM_TLS_ERROR_CODE, describeShort(facts)));
    };
    const onConnect = () => {
      tcpConnected = true;
    };
    const onTimeout = () => {
      if (!tcpConnected) {
        if (settled) return;
        cleanUp();
        socket.destroy();
        done.failed(
          new RemoraError("REMORA_ERR_UPSTREAM_CONNECT", `connect timeout after ${timeoutMs} ms`),
        );
        return;
      }
      fail("timeout", { timeoutMs });
    };
    const onError = (error: Error) => {
      if (!tcpConnected) {
        // Refused, unreachable: the same connect failure as plain TCP, not a TLS problem.
        if (settled) return;
        cleanUp();
        socket.destroy();
        done.failed(
          new RemoraError("REMORA_ERR_UPSTREAM_CONNECT", error.message, { cause: error }),
        );
        return;
      }
      const reason = reasonForHandshakeError(error);
      fail(reason, { detail: handshakeDetail(error) });
    };
    // Closed before we handed the connection over. While waiting for the first ticket, that is
    // a server refusing our certificate: node servers check it in JavaScript after the handshake
    // and close without an alert (an OpenSSL-native server's alert arrives as 'error' instead).
    const onClose = () => {
      if (!tcpConnected) return onError(new Error("connection closed before it was established"));
      if (waitingForTicket) {
        return fail("peer_refused_our_certificate", {
          detail:
            "the server closed the connection right after the handshake, before accepting our certificate",
        });
      }
      fail("other", { detail: "the endpoint closed the connection during the TLS handshake" });
    };
    const onSecure = () => {
      let problem: PeerProblem | undefined;
      try {
        problem = this.#verify(socket);
      } catch (error) {
        // A certificate node parsed but we could not read: refuse it, never crash the proxy.
        problem = {
          reason: "other",
          facts: { detail: `server certificate unreadable: ${(error as Error).message}` },
        };
      }
      if (problem !== undefined) return fail(problem.reason, problem.facts);
      verified = true;
      if (unverifiedSession !== undefined) target.tlsSession = unverifiedSession;
      const presented = this.settings.mode !== "SIMPLE";
      if (!presented || socket.isSessionReused() || socket.getProtocol() !== "TLSv1.3") {
        return handOver();
      }
      waitingForTicket = true;
      const took = performance.now() - started;
      const left = timeoutMs > 0 ? timeoutMs - took : Number.POSITIVE_INFINITY;
      grace = setTimeout(handOver, Math.max(MIN_TICKET_GRACE_MS, Math.min(took, left)));
    };
    if (timeoutMs > 0) socket.setTimeout(timeoutMs, onTimeout);
    socket.on("error", onError);
    socket.once("connect", onConnect);
    socket.once("secureConnect", onSecure);
    socket.once("close", onClose);
  }

  /** The server's certificate against the settings: undefined when it passes. */
  #verify(socket: TLSSocket): PeerProblem | undefined {
    // A resumed session was made with a server this pool verified under these same settings (the
    // ticket is kept only after verification, and pools are per settings); node does not give
    // the peer certificate back on resumption, and skips its own identity check there too.
    if (socket.isSessionReused()) return undefined;
    const x509 = socket.getPeerX509Certificate();
    const peer = x509 === undefined ? undefined : peerFacts(x509);
    const chainError = socket.authorizationError as unknown as string | Error | null;
    if (chainError) {
      const code = typeof chainError === "string" ? chainError : String(chainError.message);
      return { reason: reasonForChainError(code), facts: { peer, detail: code } };
    }
    if (x509 === undefined || peer === undefined) {
      return { reason: "identity_mismatch", facts: {} };
    }
    const sans = this.settings.subjectAltNames;
    if (this.settings.mode === "ISTIO_MUTUAL") {
      const ok =
        sans.length > 0
          ? peer.spiffeIds.some((id) => sans.includes(id))
          : peer.spiffeIds.some((id) => trustDomainOf(id) === this.#trustDomain());
      return ok ? undefined : { reason: "identity_mismatch", facts: { peer } };
    }
    // What node's hostname check reads, from the certificate we already parsed (the legacy
    // getPeerCertificate() object came back without its SANs here on node 24).
    const cert = {
      subject: { CN: commonName(x509.subject) },
      subjectaltname: x509.subjectAltName,
    } as unknown as PeerCertificate;
    const ok =
      sans.length > 0
        ? sans.some((name) => matchesName(name, cert, peer))
        : checkServerIdentity(this.#hostname(), cert) === undefined;
    return ok ? undefined : { reason: "identity_mismatch", facts: { peer } };
  }

  #hostname(): string {
    return this.settings.sni ?? this.#service.name;
  }

  #trustDomain(): string | undefined {
    const own = this.#identity?.spiffeId;
    return own === undefined ? undefined : trustDomainOf(own);
  }

  #facts(
    reason: TlsFailureReason,
    address: string,
    extra: Partial<TlsFailureFacts>,
  ): TlsFailureFacts {
    const settings = this.settings;
    const identity = this.#identity;
    return {
      reason,
      service: this.#service.name,
      address,
      mode: settings.mode,
      subjectAltNames: settings.subjectAltNames,
      trustDomain: identity === undefined ? undefined : this.#trustDomain(),
      hostname: identity === undefined ? this.#hostname() : undefined,
      hostnameFromSni: settings.sni !== undefined,
      ours: identity !== undefined ? identity.spiffeId : this.#ours?.subject,
      ourIssuer: identity !== undefined ? oneLine(identity.certificate.issuer) : this.#ours?.issuer,
      trustBundle: this.#bundle,
      now: this.#clock(),
      ...extra,
    };
  }
}

/** Why the server's certificate was refused. */
interface PeerProblem {
  readonly reason: TlsFailureReason;
  readonly facts: Partial<TlsFailureFacts>;
}

function commonName(subject: string | undefined): string | undefined {
  const line = (subject ?? "").split("\n").find((part) => part.startsWith("CN="));
  return line?.slice(3);
}

function acceptAny(): undefined {
  return undefined;
}

/** The trust domain of a SPIFFE ID, or undefined when it is not one. */
function trustDomainOf(id: string): string | undefined {
  try {
    return parseSpiffeId(id).trustDomain;
  } catch {
    return undefined;
  }
}

/**
 * SIMPLE/MUTUAL subjectAltNames: a URI (`spiffe://...`, anything with `://`) against the URI
 * SANs, an IP against the IP SANs (node's check), a DNS name through node's hostname check
 * (wildcard certificates honoured), each an exact match as Envoy's `exact` SAN matcher.
 */
function matchesName(name: string, cert: PeerCertificate, peer: PeerFacts): boolean {
  if (name.includes("://")) return uriSansOf(peer.subjectAltName).includes(name);
  return checkServerIdentity(name, cert) === undefined;
}

function peerFacts(x509: X509Certificate): PeerFacts {
  const subjectAltName = x509.subjectAltName ?? "";
  return {
    spiffeIds: uriSansOf(subjectAltName).filter((uri) => uri.startsWith("spiffe://")),
    subjectAltName,
    subject: oneLine(x509.subject),
    issuer: oneLine(x509.issuer),
    notBefore: x509.validFromDate.getTime(),
    notAfter: x509.validToDate.getTime(),
  };
}

/** ` (CA subjects: CN=a | CN=b)` for a PEM bundle; "" when it cannot be read. */
function caSubjects(pem: string | undefined): string {
  if (pem === undefined) return "";
  const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  try {
    const subjects = blocks.map((block) => oneLine(new X509Certificate(block).subject));
    return subjects.length === 0 ? "" : `: ${subjects.join(" | ")}`;
  } catch {
    return "";
  }
}

/** OpenSSL's words without the `error:0A000086:SSL routines::` prefix. */
function handshakeDetail(error: Error): string {
  const message = error.message.replace(/^[^:]*error:[0-9A-F]+:[^:]*:[^:]*:/i, "").trim();
  return message === "" ? error.message : message;
}

/** The error's message (the client gets the table's body; this is for logs and the record). */
function describeShort(facts: TlsFailureFacts): string {
  return `upstream TLS ${facts.reason.replaceAll("_", " ")} (${facts.address})`;
}

function formatEndpoint(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

/** Node prints multi-valued names on several lines. */
function oneLine(name: string | undefined): string {
  return (name ?? "").split("\n").join(", ");
}
