import { createHash } from "node:crypto";
import type { Socket } from "node:net";
import { type SecureContext, TLSSocket } from "node:tls";
import { spiffeIdsOf } from "./workload-identity.js";

/**
 * Inbound mTLS termination: wraps an accepted TCP socket as a server TLSSocket, verifies the
 * client's certificate against the trust bundle, and computes the connection's
 * `x-forwarded-client-cert` once. The HTTP session then reads the decrypted stream like any other.
 */

export type InboundTlsMode = "STRICT" | "PERMISSIVE" | "DISABLE";

/** ALPN offered as Istio's sidecars do; a client that offers none still connects. */
export const INBOUND_ALPN = ["istio-http/1.1", "istio", "http/1.1"];

/** What termination needs from the workload identity; read per connection (rotation). */
export interface ServerIdentity {
  readonly secureContext: SecureContext;
  readonly spiffeId: string | undefined;
}

/** What a verified client certificate says, computed once per connection. */
export interface VerifiedPeer {
  /**
   * Istio's `source.principal`: the peer's SPIFFE ID without `spiffe://`
   * (`cluster.local/ns/shop/sa/frontend`); "" when the certificate carries none.
   */
  readonly principal: string;
  /** The `/ns/<namespace>/` segment of the principal (`source.namespace`); "" when none. */
  readonly namespace: string;
  /** The server name the client sent (SNI); "" when none. */
  readonly sni: string;
  /** The connection's `x-forwarded-client-cert` value for the app. */
  readonly clientCert: string;
}

export interface InboundTlsHandlers {
  /** The handshake succeeded and the client's certificate chains to the trust bundle. */
  secure(socket: TLSSocket, peer: VerifiedPeer): void;
  /** PERMISSIVE only: the connection did not start with a TLS handshake record. */
  plaintext(socket: Socket): void;
  /** The connection is closed; `reason` in words, for a debug log. */
  failed(reason: string): void;
}

/** TLS record type 22 (handshake) and protocol version major 3 (SSL 3.0 through TLS 1.3). */
function looksLikeTls(chunk: Buffer): boolean {
  return chunk[0] === 0x16 && (chunk.length < 2 || chunk[1] === 0x03);
}

/**
 * PERMISSIVE: tell TLS from plaintext by the connection's first bytes, as Istio's TLS inspector
 * does. `accepted` must be paused (the listener accepts with pauseOnConnect). The bytes read are
 * put back (`unshift`): TLSSocket feeds a wrapped socket's buffered data to the handshake, and a
 * plaintext session's 'data' listener gets them first.
 */
export function acceptPermissive(
  accepted: Socket,
  identity: ServerIdentity,
  handlers: InboundTlsHandlers,
  timeoutMs: number,
): void {
  const onError = (error: Error) => handlers.failed(`before the first byte: ${error.message}`);
  const onTimeout = () => {
    handlers.failed("no data before the handshake timeout");
    accepted.destroy();
  };
  // allowHalfOpen: a client that ends without a byte would otherwise leave the socket open.
  const onEnd = () => {
    handlers.failed("closed before the first byte");
    accepted.destroy();
  };
  accepted.on("error", onError);
  accepted.once("end", onEnd);
  accepted.setTimeout(timeoutMs, onTimeout);
  accepted.once("data", (chunk: Buffer) => {
    accepted.pause();
    accepted.off("error", onError);
    accepted.off("end", onEnd);
    accepted.setTimeout(0);
    accepted.off("timeout", onTimeout);
    accepted.unshift(chunk);
    if (looksLikeTls(chunk)) acceptStrict(accepted, identity, handlers, timeoutMs);
    else handlers.plaintext(accepted);
  });
  accepted.resume();
}

/**
 * STRICT: mTLS only. Anything but a handshake with a certificate from the trust bundle closes.
 * `timeoutMs`: a connection that has not finished its handshake (PERMISSIVE: sent its first byte)
 * by then is closed, so a silent client cannot hold a socket before the HTTP session's own
 * request-headers timer starts.
 */
export function acceptStrict(
  accepted: Socket,
  identity: ServerIdentity,
  handlers: InboundTlsHandlers,
  timeoutMs: number,
): void {
  // secureContext is read here, per connection: a rotated certificate reaches new connections
  // and open ones keep theirs. (An SNICallback would only run for clients that send SNI.)
  const socket = new TLSSocket(accepted, {
    isServer: true,
    secureContext: identity.secureContext,
    requestCert: true,
    rejectUnauthorized: true,
    ALPNProtocols: INBOUND_ALPN,
  });
  let done = false;
  const fail = (reason: string) => {
    if (done) return;
    done = true;
    handlers.failed(reason);
    socket.destroy();
  };
  const onError = (error: Error) => fail(error.message);
  const onTimeout = () => fail("handshake not finished before the timeout");
  socket.on("error", onError);
  socket.setTimeout(timeoutMs, onTimeout);
  socket.once("close", () => fail("closed during the handshake"));
  socket.once("secure", () => {
    // With requestCert + rejectUnauthorized OpenSSL refuses a client without a certificate, but
    // the chain's verdict is left to node (its verify callback accepts everything): tls.Server
    // reads it from the handle in its 'secure' handler, and a socket wrapped outside a
    // tls.Server must do the same.
    const verifyError = (
      socket as unknown as { _handle: { verifyError(): Error | null } | null }
    )._handle?.verifyError();
    if (verifyError) return fail(`client certificate refused: ${verifyError.message}`);
    const peer = socket.getPeerX509Certificate();
    if (peer === undefined) return fail("no client certificate");
    done = true;
    socket.off("error", onError);
    socket.setTimeout(0);
    socket.off("timeout", onTimeout);
    const peerId = spiffeIdsOf(peer.subjectAltName)[0];
    const servername = socket.servername;
    handlers.secure(socket, {
      principal: peerId === undefined ? "" : peerId.slice(SPIFFE.length),
      namespace: peerId === undefined ? "" : namespaceOf(peerId),
      sni: typeof servername === "string" ? servername : "",
      clientCert: clientCertHeader(identity.spiffeId, peer.raw, peer.subjectAltName),
    });
  });
}

const SPIFFE = "spiffe://";

/** `spiffe://td/ns/shop/sa/x` → `shop`; "" when the ID has no `/ns/` segment. */
function namespaceOf(spiffeId: string): string {
  const start = spiffeId.indexOf("/ns/", SPIFFE.length);
  if (start < 0) return "";
  const end = spiffeId.indexOf("/", start + 4);
  return end < 0 ? spiffeId.slice(start + 4) : spiffeId.slice(start + 4, end);
}

/**
 * Envoy's `x-forwarded-client-cert` for one verified peer: `By=<own SPIFFE ID>;Hash=<sha256 hex
 * of the peer certificate's DER>;URI=<peer SPIFFE ID>`. Computed once per connection.
 */
export function clientCertHeader(
  ownId: string | undefined,
  peerDer: Buffer,
  peerSubjectAltName: string | undefined,
): string {
  const parts: string[] = [];
  if (ownId !== undefined) parts.push(`By=${ownId}`);
  parts.push(`Hash=${createHash("sha256").update(peerDer).digest("hex")}`);
  const peerId = spiffeIdsOf(peerSubjectAltName)[0];
  if (peerId !== undefined) parts.push(`URI=${peerId}`);
  return parts.join(";");
}
