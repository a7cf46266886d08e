import { type AddressInfo, createServer, type Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { AuthorizationTally, type Authorizer, type PolicySlot } from "../../authz/policy.js";
import { NO_OVERLOAD, type Overload, type OverloadSignals } from "../../overload/overload.js";
import {
  acceptPermissive,
  acceptStrict,
  type InboundTlsHandlers,
  type ServerIdentity,
  type VerifiedPeer,
} from "../../tls/inbound.js";
import type { Cluster } from "../cluster.js";
import type { ErrorCode } from "../errors.js";
import { type ExchangeReporter, NO_DETAIL, type RecordDetail } from "../exchange.js";
import type { HeadLimits } from "../http/head.js";
import { HttpSession, type SessionContext } from "../http-session.js";
import type { Logger } from "../log.js";
import { adoptAccepted, ReadBuffer } from "../read-buffer.js";
import { STREAM_HIGH_WATER } from "../upstream/pool.js";
import { ListenerSockets } from "./accept.js";

export interface HttpListenerOptions {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly limits: HeadLimits;
  readonly requestHeadersTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly reporter: ExchangeReporter;
  /** Optional record fields the reporters need (default: none). */
  readonly detail?: RecordDetail;
  /** outbound: authority → service; inbound: always the local app's cluster. */
  readonly route: (authority: string) => Cluster | undefined;
  /** The error when `route` finds nothing (ExternalName, outboundTrafficPolicy); absent: 404 NR. */
  readonly unrouted?: (authority: string) => ErrorCode;
  /** Inbound listeners: a client's x-forwarded-client-cert is removed (default false). */
  readonly inbound?: boolean;
  /** Debug logs (TLS handshake failures). */
  readonly logger?: Pick<Logger, "debug">;
  /** Inbound mTLS termination (tls/inbound.ts); absent = plaintext (DISABLE). */
  readonly tls?: { readonly mode: "STRICT" | "PERMISSIVE"; readonly identity: ServerIdentity };
  /** Inbound listeners: the authorization policies in effect (authz/), shared and swapped by reloads. */
  readonly policies?: PolicySlot;
  /** Overload protection (overload/): the connection cap and the heap's request actions. */
  readonly overload?: Overload;
}

/** A TCP listener speaking HTTP/1.1 (outbound and inbound kinds). */
export class HttpListener implements SessionContext {
  readonly listener: string;
  readonly limits: HeadLimits;
  readonly requestHeadersTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly proto = "http";
  readonly stripClientCert: boolean;
  readonly reporter: ExchangeReporter;
  readonly detail: RecordDetail;
  readonly route: (authority: string) => Cluster | undefined;
  readonly unrouted: ((authority: string) => ErrorCode) | undefined;
  draining = false;
  /** Downstream connections accepted since start (metrics). */
  accepted = 0;
  /** Connections closed at once by overload protection's connection cap (metrics). */
  rejected = 0;
  /** Accept errors the listening sockets reported, by code (metrics). */
  readonly acceptErrors = new Map<string, number>();
  readonly overload: OverloadSignals;
  readonly #gate: Overload;
  /** TLS connections closed at the handshake (plaintext on STRICT, no or untrusted certificate). */
  tlsHandshakeErrors = 0;
  /** The bound port (the configured one may be 0), once listening. */
  port = 0;
  /** Authorization decisions (metrics); undefined on listeners policies do not apply to. */
  readonly authorization: AuthorizationTally | undefined;
  #options: HttpListenerOptions;
  #sockets: ListenerSockets;
  #sessions = new Set<HttpSession>();
  #closed = false;

  constructor(options: HttpListenerOptions) {
    this.#options = options;
    this.listener = options.name;
    this.limits = options.limits;
    this.requestHeadersTimeoutMs = options.requestHeadersTimeoutMs;
    this.idleTimeoutMs = options.idleTimeoutMs;
    this.reporter = options.reporter;
    this.detail = options.detail ?? NO_DETAIL;
    this.route = options.route;
    this.unrouted = options.unrouted;
    this.stripClientCert = options.inbound === true;
    this.authorization = options.policies !== undefined ? new AuthorizationTally() : undefined;
    this.#gate = options.overload ?? NO_OVERLOAD;
    this.overload = this.#gate;
    // allowHalfOpen: a client that half-closes after its request still gets the response.
    // pauseOnConnect: the socket moves to one that reads into a ReadBuffer before reading starts.
    const serverOptions = {
      allowHalfOpen: true,
      noDelay: true,
      pauseOnConnect: true,
      highWaterMark: STREAM_HIGH_WATER,
    };
    this.#sockets = new ListenerSockets(
      () => createServer(serverOptions, this.#onConnection),
      this.#onAcceptError,
    );
  }

  get connections(): number {
    return this.#sessions.size;
  }

  async listen(): Promise<AddressInfo> {
    const address = await this.#sockets.listen(this.#options.address, this.#options.port);
    this.port = address.port;
    return address;
  }

  /** The policies in effect now; read per request, so a reload decides the next one. */
  get authorizer(): Authorizer | undefined {
    return this.#options.policies?.current;
  }

  onSessionClosed(session: HttpSession): void {
    this.#sessions.delete(session);
    this.#gate.release();
  }

  /** Stop accepting; idle connections close now, busy ones after their current exchange. */
  drain(): void {
    this.draining = true;
    this.#sockets.close();
    for (const session of this.#sessions) session.drain();
  }

  close(): void {
    // Connections still in their handshake are closed when it ends (see #tlsHandlers).
    this.#closed = true;
    this.#sockets.close();
    for (const session of this.#sessions) session.destroy();
  }

  #onConnection = (accepted: Socket): void => {
    // Paused (pauseOnConnect): a refused connection is closed before a byte is read.
    if (!this.#gate.admit(this.listener)) {
      this.rejected++;
      accepted.destroy();
      return;
    }
    this.accepted++;
    const tls = this.#options.tls;
    if (tls !== undefined) {
      // A silent client is closed after the request-headers timeout, as a silent HTTP one is.
      const timeoutMs = this.requestHeadersTimeoutMs;
      if (tls.mode === "STRICT") acceptStrict(accepted, tls.identity, this.#tlsHandlers, timeoutMs);
      else acceptPermissive(accepted, tls.identity, this.#tlsHandlers, timeoutMs);
      return;
    }
    const reader = new ReadBuffer();
    const socket = adoptAccepted(accepted, reader, ADOPT);
    if (socket !== undefined) this.#sessions.add(new HttpSession(socket, this, reader));
    else {
      accepted.resume();
      this.#sessions.add(new HttpSession(accepted, this, null));
    }
  };

  // TLS and PERMISSIVE's plaintext connections are read through 'data' events (reader null):
  // a TLSSocket owns its handle, and PERMISSIVE has read the first bytes before deciding.
  #tlsHandlers: InboundTlsHandlers = {
    secure: (socket: TLSSocket, peer: VerifiedPeer) => {
      if (this.draining || this.#closed) {
        socket.destroy();
        this.#gate.release();
      } else this.#sessions.add(new HttpSession(socket, this, null, peer));
    },
    plaintext: (socket: Socket) => {
      if (this.draining || this.#closed) {
        socket.destroy();
        this.#gate.release();
      } else {
        this.#sessions.add(new HttpSession(socket, this, null));
        // Paused to put the first bytes back; an added 'data' listener does not undo pause().
        socket.resume();
      }
    },
    failed: (reason: string) => {
      this.#gate.release();
      this.tlsHandshakeErrors++;
      this.#options.logger?.debug({ listener: this.listener, reason }, "tls handshake failed");
    },
  };

  #onAcceptError = (error: NodeJS.ErrnoException): void => {
    const code = error.code ?? "unknown";
    this.acceptErrors.set(code, (this.acceptErrors.get(code) ?? 0) + 1);
    this.#gate.acceptFailed(this.listener, code);
  };
}

const ADOPT = { allowHalfOpen: true, writableHighWaterMark: STREAM_HIGH_WATER };
