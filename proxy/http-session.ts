import { randomBytes } from "node:crypto";
import type { Socket } from "node:net";
import {
  type AuthorizationTally,
  type Authorizer,
  connectionFacts,
  type RequestFacts,
} from "../authz/policy.js";
import type { Endpoint } from "../discovery/endpoint.js";
import { type AttemptResult, ResultKind } from "../health/health.js";
import { isIdempotent, type RetryAttempt, RetryVerdict } from "../health/retry-policy.js";
import { type Balancer, QUEUE_FULL, QUEUED, type SlotWaiter } from "../lb/balancer.js";
import { cookieHash, NO_KEY } from "../lb/hash-key.js";
import type { OverloadSignals } from "../overload/overload.js";
import type { VerifiedPeer } from "../tls/inbound.js";
import { CONNECT_FAILED, ExchangeAttempts, RESET, TIMEOUT } from "./attempts.js";
import type { Cluster } from "./cluster.js";
import { Deadline } from "./deadline.js";
import { codeForParseStatus, ERRORS, type ErrorCode, type RemoraError } from "./errors.js";
import {
  clearRecord,
  type ExchangeRecord,
  type ExchangeReporter,
  emptyRecord,
  type RecordDetail,
} from "./exchange.js";
import {
  FRAMING_CHUNKED,
  FRAMING_CLOSE,
  FRAMING_LENGTH,
  FRAMING_NONE,
  noteRequestFields,
  type SerializedRequestHead,
  serializeInterimHead,
  serializeRequestHead,
  serializeResponseHead,
} from "./forward-headers.js";
import { HEAD_STORE_FROM, recycleHeadStore, takeHeadStore } from "./head-store.js";
import type { HostSet, StickyCookie } from "./host-set.js";
import { ChunkedDecoder, type ChunkSink } from "./http/chunked.js";
import { HttpParseError } from "./http/errors.js";
import { mayHoldHeadEnd } from "./http/fields.js";
import type { HeadLimits, RequestHead, ResponseHead } from "./http/head.js";
import { parseRequestHead } from "./http/request-parser.js";
import { parseResponseHead } from "./http/response-parser.js";
import { localReply, localReplyBodyBytes } from "./local-reply.js";
import { authorizeRequest, newRouteResult, type RouteResult, routeRequest } from "./pipeline.js";
import { copyOf, READ_CHUNK_BYTES, type ReadBuffer } from "./read-buffer.js";
import { BLACKHOLE_CLUSTER } from "./routing/outside-mesh.js";
import { STALLED_CLIENT, StreamIdleTimer, stalledSide } from "./stream-idle.js";
import type { UpstreamConnection, UpstreamOwner } from "./upstream/connection.js";
import type { ConnectWaiter, UpstreamPool } from "./upstream/pool.js";

/** What an HTTP listener gives each of its sessions; shared, read-only on the hot path. */
export interface SessionContext {
  readonly listener: string;
  /** Chooses the cluster for a request (outbound: by authority; inbound: the app). */
  route(authority: string): Cluster | undefined;
  /**
   * The error for a request `route` found no cluster for: a Kubernetes ExternalName service, or
   * the outboundTrafficPolicy's verdict (proxy/routing/passthrough.ts); undefined: 404 NR.
   */
  readonly unrouted?: ((authority: string) => ErrorCode) | undefined;
  readonly limits: HeadLimits;
  readonly requestHeadersTimeoutMs: number;
  readonly idleTimeoutMs: number;
  /** X-Forwarded-Proto of a plaintext connection ("http"); a TLS one says "https". */
  readonly proto: string;
  /** Inbound listeners remove a client's x-forwarded-client-cert (and set a verified peer's). */
  readonly stripClientCert: boolean;
  readonly reporter: ExchangeReporter;
  /** Which optional record fields the reporters need measured (read per exchange). */
  readonly detail: RecordDetail;
  /** Set while the listener drains: every exchange ends with Connection: close. */
  readonly draining: boolean;
  /** Overload protection's request actions (overload/overload.ts): two booleans a timer flips. */
  readonly overload: OverloadSignals;
  /**
   * Inbound listeners: the authorization policies in effect, read per request (a reload swaps
   * them); undefined when there are none (or on outbound listeners): no work at all then.
   */
  readonly authorizer: Authorizer | undefined;
  /** Counts the authorizer's decisions; set whenever `authorizer` can be. */
  readonly authorization: AuthorizationTally | undefined;
  /** The listener's bound port (authorization's destination.port). */
  readonly port: number;
  onSessionClosed(session: HttpSession): void;
}

// Session states.
const READ_HEAD = 0;
/** Head parsed and routed; waiting for an upstream connection. */
const CONNECTING = 1;
/** Upstream attached: request body and/or response in flight. */
const ACTIVE = 2;
/** After a 101: opaque bytes both ways. */
const TUNNEL = 3;
const CLOSED = 4;

// Request body framing.
const BODY_NONE = 0;
const BODY_LENGTH = 1;
const BODY_CHUNKED = 2;

// Response reading modes (how the upstream delimits the body) beyond the framing constants.
const RES_HEAD = -1;
/** Close-delimited upstream body re-framed as chunked for an HTTP/1.1 client. */
const RES_RECHUNK = 10;
/** Chunked upstream body decoded for an HTTP/1.0 client (which then sees a close-delimited body). */
const RES_DECHUNK = 11;

// Why the client socket is paused (bit set).
const PAUSE_BACKPRESSURE = 1;
const PAUSE_PIPELINE = 2;

/** Bytes of request body held while no upstream is attached before reading pauses. */
const QUEUE_HIGH_WATER = 64 * 1024;

/** Body bytes up to this size are copied into the same buffer as the response head. */
const COALESCE_LIMIT = 16 * 1024;
/** How long a closing connection keeps draining client input before it is destroyed. */
const LINGER_MS = 2000;

const CONTINUE_100 = Buffer.from("HTTP/1.1 100 Continue\r\n\r\n", "latin1");
const LAST_CHUNK = Buffer.from("0\r\n\r\n", "latin1");
const CRLF = Buffer.from("\r\n", "latin1");

/**
 * One downstream HTTP/1.1 connection: parses requests strictly, forwards each to an upstream
 * connection from the chosen endpoint's pool, and relays the response, streaming both bodies
 * with backpressure. Requests on a connection are handled one at a time; pipelined requests
 * wait in the read buffer and are answered in order.
 *
 * Socket listeners are installed once per connection; per-request work allocates the parsed
 * head, the serialised upstream head and little else. Both sockets normally read into buffers
 * that are reused (see ReadBuffer): a chunk is copied only when bytes of it must wait.
 */
export class HttpSession implements UpstreamOwner, ConnectWaiter, ChunkSink, SlotWaiter {
  readonly #socket: Socket;
  /** The client socket's read buffer, or null when it reads with 'data' events. */
  readonly #reader: ReadBuffer | null;
  readonly #ctx: SessionContext;
  readonly #clientAddress: string;
  /** Per connection: X-Forwarded-Proto and x-forwarded-client-cert (see RequestHeadOptions). */
  readonly #proto: string;
  readonly #clientCert: string | undefined;
  /** The verified client certificate's identity (mTLS connections). */
  readonly #peer: VerifiedPeer | undefined;
  /** What authorization reads, made on the first request policies check (authz/policy.ts). */
  #facts: RequestFacts | null = null;
  #state = READ_HEAD;
  /** Unparsed client bytes (a partial head, or pipelined requests). */
  #pending: Buffer | null = null;
  /** `#pending` is a view of the current read chunk and must be copied before it returns. */
  #pendingBorrowed = false;
  /**
   * A head store from proxy/head-store.ts while `#pending` (an unparsed head past
   * HEAD_STORE_FROM bytes) is its start; null otherwise.
   */
  #store: Buffer | null = null;
  #paused = 0;
  #driving = false;
  /** Bytes of `#pending` already parsed without finding a complete head. */
  #scanned = 0;
  /**
   * The one timeout running, chosen by phase: downstream idle between requests, request headers
   * while a head arrives, the route's request timeout during an exchange (see #onDeadline).
   */
  readonly #deadline: Deadline;
  /** The header timeout runs for the head being received (set once per head, never extended). */
  #headTimed = false;

  // --- the current exchange ---
  #head: RequestHead | null = null;
  #cluster: Cluster | null = null;
  /** The host set the route chose, and the balancer that counted this request (kept across reloads). */
  #hosts: HostSet | null = null;
  #balancer: Balancer | null = null;
  /** Queued in the balancer for a slot (first-come) since #queuedAt. */
  #waiting = false;
  #queuedAt = 0;
  /** A generated sticky cookie's Set-Cookie line for this exchange's response, or "". */
  #setCookie = "";
  /** What balancers may look at, filled per request (never reallocated). */
  readonly #pick: MutablePickContext;
  #endpoint: Endpoint | null = null;
  #pool: UpstreamPool | null = null;
  #conn: UpstreamConnection | null = null;
  #route: RouteResult = newRouteResult();
  #upstreamHead: SerializedRequestHead = {
    text: "",
    requestId: "",
    userAgent: "",
    forwardedFor: "",
  };
  #bodyMode = BODY_NONE;
  #bodyRemaining = 0;
  #requestDecoder: ChunkedDecoder | null = null;
  #requestDone = true;
  /** Body bytes received while no upstream is attached. */
  #queue: Buffer[] = [];
  #queued = 0;
  #bodySent = 0;
  /** The request head went to an upstream (some attempt may have processed it). */
  #headSent = false;
  /** This attempt is the one resend on a fresh connection after a stale pooled one died. */
  #resent = false;
  /** Retries, tried endpoints, the replay copy of the body: what outlives one attempt. */
  readonly #attempts = new ExchangeAttempts();
  /** The current attempt's per-try timeout (created on first use). */
  #tryDeadline: Deadline | null = null;
  /** The current attempt's streamIdleTimeout (created on first use; see stream-idle.ts). */
  #streamIdle: StreamIdleTimer | null = null;
  /** A retry waiting out its backoff. */
  #backoff: NodeJS.Timeout | null = null;
  /** Holding a place in the cluster's pending-request limit while a connection is made. */
  #pendingHeld = false;
  /** What the client gets if the exchange fails now (the last attempt's failure). */
  #failure: ErrorCode = "REMORA_ERR_UPSTREAM_CONNECT";
  /** Facts for the retry decision, filled in place. */
  readonly #retryFacts: Mutable<RetryAttempt> = {
    result: RESET,
    attemptsMade: 0,
    method: "",
    requestBodySent: false,
    replayable: true,
    responseStarted: false,
  };
  #sent100 = false;
  #closeAfter = false;

  #resMode = RES_HEAD;
  #resPending: Buffer | null = null;
  #resRemaining = 0;
  #responseDecoder: ChunkedDecoder | null = null;
  #resHeadSent = false;
  /** A response head not yet written, to be sent together with the first body bytes. */
  #heldHead: string | null = null;
  #upstreamReusable = true;
  #upstreamPaused = false;
  #record: ExchangeRecord;
  #started = 0;
  /** When the request head went upstream, while upstream timing is on; else 0. */
  #upstreamSentAt = 0;
  /** Destroys the socket if the client has not closed LINGER_MS after our FIN. */
  #lingering: NodeJS.Timeout | undefined = undefined;

  /** `peer`: the verified client certificate's identity, for an mTLS connection. */
  constructor(socket: Socket, ctx: SessionContext, reader: ReadBuffer | null, peer?: VerifiedPeer) {
    this.#socket = socket;
    this.#reader = reader;
    this.#ctx = ctx;
    this.#peer = peer;
    this.#proto = peer === undefined ? ctx.proto : "https";
    this.#clientCert = ctx.stripClientCert ? (peer?.clientCert ?? "") : undefined;
    this.#clientAddress = socket.remoteAddress ?? "unknown";
    this.#pick = {
      headers: undefined,
      sourceAddress: this.#clientAddress,
      path: undefined,
      exclude: undefined,
      hashKey: undefined,
    };
    this.#record = emptyRecord(ctx.listener);
    this.#deadline = new Deadline(this.#onDeadline);
    this.#awaitRequest(performance.now());
    if (reader !== null) {
      reader.sink = this.#onData;
      reader.mayStream = this.#mayStream;
    } else socket.on("data", this.#onData);
    socket.on("drain", this.#onDrain);
    socket.on("end", this.#onEnd);
    socket.on("error", this.#onError);
    socket.on("close", this.#onClose);
  }

  /** Finish the exchange in flight (if any) with Connection: close; close now if idle. */
  drain(): void {
    if (this.#state === READ_HEAD && this.#pending === null) this.#close();
    else this.#closeAfter = true;
  }

  destroy(): void {
    this.#socket.destroy();
  }

  // ---------------------------------------------------------------- client socket events

  /** A request body or a tunnel may be streaming in; heads and discarded bytes never need to. */
  #mayStream = (): boolean =>
    this.#state === TUNNEL ||
    (!this.#requestDone && (this.#state === CONNECTING || this.#state === ACTIVE));

  #onData = (chunk: Buffer): void => {
    this.#dispatch(chunk);
    if (this.#pendingBorrowed) {
      this.#pendingBorrowed = false;
      if (this.#pending !== null) this.#pending = copyOf(this.#pending);
    }
    // Only a head that did not arrive whole needs its timeout.
    if (this.#state === READ_HEAD && this.#pending !== null && !this.#headTimed) {
      this.#timeHead(performance.now());
    }
  };

  #dispatch(chunk: Buffer): void {
    switch (this.#state) {
      case READ_HEAD:
        this.#append(chunk);
        this.#drive();
        return;
      case CONNECTING:
      case ACTIVE: {
        let used = 0;
        if (!this.#requestDone) {
          used = this.#consumeBody(chunk, 0, chunk.length);
          if (this.#isClosed()) return;
        }
        if (used < chunk.length) {
          // Pipelined bytes: hold them (bounded) until this exchange is done.
          this.#append(used === 0 ? chunk : chunk.subarray(used));
          if (this.#pending!.length > this.#ctx.limits.maxHeadBytes) this.#pause(PAUSE_PIPELINE);
        }
        return;
      }
      case TUNNEL:
        if (this.#conn !== null) this.#writeUpstream(chunk);
        return;
    }
  }

  #onDrain = (): void => {
    if (this.#upstreamPaused) {
      this.#streamIdle?.touch();
      this.#upstreamPaused = false;
      this.#conn?.socket.resume();
    }
  };

  #onEnd = (): void => {
    // The client half-closed. A complete request still gets its response; then we close.
    if (this.#state === TUNNEL) {
      this.#conn?.socket.end();
      return;
    }
    if (this.#state === READ_HEAD) {
      this.#close();
      return;
    }
    // A request still queued for a slot is dropped (HAProxy's abortonclose): a client that
    // closes while it waits has almost always given up, and its place should go to the next.
    if (!this.#requestDone || this.#waiting) {
      this.#abort("DC");
      return;
    }
    this.#closeAfter = true;
  };

  #onError = (): void => {
    // 'close' follows; the exchange is reset there.
  };

  #onClose = (): void => {
    if (this.#state === TUNNEL) {
      // A tunnel ends when either side closes; that is its normal end, not a reset.
      this.#conn?.destroy();
      this.#conn = null;
      this.#state = CLOSED;
      this.#finishStats(true);
      this.#report(performance.now());
    } else if (this.#state !== CLOSED && this.#state !== READ_HEAD) this.#abort("DC");
    this.#state = CLOSED;
    this.#pending = null;
    this.#recycleStore();
    this.#deadline.stop();
    this.#streamIdle?.stop();
    // A pending timer would keep the closed socket (and its buffers) for LINGER_MS.
    clearTimeout(this.#lingering);
    this.#ctx.onSessionClosed(this);
  };

  #onDeadline = (): void => {
    switch (this.#state) {
      case READ_HEAD:
        // Downstream idle timeout, or a head that took too long (slowloris).
        if (this.#pending === null) this.#close();
        else this.#reject("REMORA_ERR_HEADER_TIMEOUT");
        return;
      case CONNECTING:
      case ACTIVE:
        // The whole request's timeout bounds every attempt: no retry after it.
        this.#endAttemptNow(TIMEOUT);
        this.#failUpstream("REMORA_ERR_UPSTREAM_TIMEOUT");
        return;
    }
  };

  /** Between requests: the downstream idle timeout runs. */
  #awaitRequest(now: number): void {
    this.#deadline.set(now, this.#ctx.idleTimeoutMs);
  }

  /** A head has started arriving: it must be complete within the request-headers timeout. */
  #timeHead(now: number): void {
    this.#headTimed = true;
    this.#deadline.set(now, this.#ctx.requestHeadersTimeoutMs);
  }

  // ---------------------------------------------------------------- request heads

  /** Hold client bytes not yet used; a chunk being read is only borrowed until #onData returns. */
  #append(chunk: Buffer): void {
    const pending = this.#pending;
    if (pending === null) {
      this.#pending = chunk;
      this.#pendingBorrowed = this.#reader !== null;
      return;
    }
    this.#pendingBorrowed = false;
    const length = pending.length + chunk.length;
    let store = this.#store;
    if (store === null && this.#state === READ_HEAD && length > HEAD_STORE_FROM) {
      const size = this.#ctx.limits.maxHeadBytes + READ_CHUNK_BYTES;
      if (length <= size) {
        store = this.#store = takeHeadStore(size);
        pending.copy(store, 0);
      }
    }
    if (store !== null && length <= store.length) {
      chunk.copy(store, pending.length);
      this.#pending = store.subarray(0, length);
      return;
    }
    this.#pending = Buffer.concat([pending, chunk]);
    this.#recycleStore();
  }

  /** The head store (if any) holds nothing needed any more. */
  #recycleStore(): void {
    const store = this.#store;
    if (store === null) return;
    this.#store = null;
    recycleHeadStore(store);
  }

  /** Parse and start every complete request head in the buffer, one exchange at a time. */
  #drive(): void {
    if (this.#driving) return;
    this.#driving = true;
    const limits = this.#ctx.limits;
    while (this.#state === READ_HEAD && this.#pending !== null) {
      const buf = this.#pending;
      // The parser keeps no state, so re-running it on every byte of a head that trickles in
      // would be quadratic: wait until the head can be complete or a limit can be decided.
      const scanned = this.#scanned;
      if (
        scanned > 0 &&
        !mayHoldHeadEnd(buf, Math.max(0, scanned - 3), buf.length) &&
        buf.length < limits.maxHeadBytes &&
        !(scanned <= limits.maxTargetBytes && buf.length > limits.maxTargetBytes)
      ) {
        break;
      }
      let head: RequestHead | null;
      try {
        head = parseRequestHead(buf, 0, buf.length, limits);
      } catch (error) {
        if (!(error instanceof HttpParseError)) throw error;
        this.#reject(codeForParseStatus(error.status));
        break;
      }
      if (head === null) {
        this.#scanned = buf.length;
        break;
      }
      this.#scanned = 0;
      // The head may point into its store: leave that one to the garbage collector.
      this.#store = null;
      this.#pending = head.headLength < buf.length ? buf.subarray(head.headLength) : null;
      this.#startExchange(head);
    }
    this.#driving = false;
  }

  /** A request that cannot be parsed: answer, forward nothing, and close (RFC 9112 §2.2). */
  #reject(code: ErrorCode): void {
    this.#pending = null;
    this.#recycleStore();
    this.#scanned = 0;
    this.#started = performance.now();
    const record = this.#record;
    clearRecord(record);
    record.startMs = performance.timeOrigin + this.#started;
    record.status = ERRORS[code].status;
    record.flags = ERRORS[code].flag;
    const reply = localReply(code, false);
    record.responseBytes = reply.length;
    record.responseHeadBytes = reply.length - localReplyBodyBytes(code);
    this.#socket.end(reply);
    this.#state = CLOSED;
    this.#linger();
    this.#report(this.#started);
  }

  // ---------------------------------------------------------------- the exchange

  #startExchange(head: RequestHead): void {
    this.#head = head;
    this.#state = CONNECTING;
    this.#headTimed = false;
    const started = performance.now();
    this.#started = started;
    const record = this.#record;
    record.startMs = performance.timeOrigin + started;
    record.method = head.method;
    record.protocol = head.minor === 1 ? "HTTP/1.1" : "HTTP/1.0";
    record.flags = "-";
    record.status = 0;
    record.requestBytes = record.requestHeadBytes = head.headLength;
    record.responseBytes = record.responseHeadBytes = 0;
    record.upstreamServiceMs = -1;
    record.queueMs = -1;
    this.#upstreamSentAt = 0;
    record.cluster = "";
    record.endpoint = "";
    this.#closeAfter = head.close || this.#ctx.draining || this.#ctx.overload.disableKeepAlive;
    if (head.chunked) {
      this.#bodyMode = BODY_CHUNKED;
      this.#requestDone = false;
      if (this.#requestDecoder === null) this.#requestDecoder = new ChunkedDecoder();
      else this.#requestDecoder.reset();
    } else if (head.contentLength > 0) {
      this.#bodyMode = BODY_LENGTH;
      this.#bodyRemaining = head.contentLength;
      this.#requestDone = false;
    } else {
      this.#bodyMode = BODY_NONE;
      this.#requestDone = true;
    }

    const route = this.#route;
    routeRequest(head, this.#ctx, route);
    if (this.#ctx.overload.rejectRequests) route.error = "REMORA_ERR_OVERLOADED";
    const authorizer = this.#ctx.authorizer;
    if (authorizer !== undefined && route.error === undefined) {
      authorizeRequest(head, authorizer, this.#facts ?? this.#connectionFacts(), this.#ctx, route);
      if (route.error !== undefined) record.cluster = route.cluster!.key;
    }
    record.authority = route.authority;
    record.path = route.path;
    let slot: ReturnType<HostSet["acquire"]>;
    if (route.error === undefined) {
      const pick = this.#pick;
      pick.headers = head.headers;
      pick.path = route.path;
      pick.exclude = undefined;
      const sticky = route.hosts!.stickyCookie;
      if (sticky !== undefined) this.#stick(sticky, head.headers);
      slot = route.hosts!.acquire(pick, this);
      if (slot === undefined) route.error = "REMORA_ERR_NO_HEALTHY_ENDPOINT";
      else if (slot === QUEUE_FULL) {
        route.error = "REMORA_ERR_QUEUE_FULL";
        record.cluster = route.cluster!.key;
      }
    }
    if (route.error !== undefined) {
      const noted = this.#upstreamHead;
      noteRequestFields(head, noted);
      record.requestId = noted.requestId;
      record.userAgent = noted.userAgent;
      record.forwardedFor = noted.forwardedFor;
      if (route.error === "REMORA_ERR_REGISTRY_ONLY") record.cluster = BLACKHOLE_CLUSTER;
      route.cluster = undefined;
      route.hosts = undefined;
      this.#localReply(route.error);
      return;
    }
    const cluster = route.cluster!;
    const hosts = route.hosts!;
    route.cluster = undefined;
    route.hosts = undefined;
    this.#cluster = cluster;
    this.#hosts = hosts;
    this.#balancer = hosts.balancer;
    record.cluster = cluster.key;
    cluster.stats.requests++;
    cluster.stats.active++;
    this.#attempts.begin(
      !this.#requestDone &&
        (isIdempotent(head.method) || cluster.retryPolicy.settings.retryNonIdempotent),
    );
    if (slot === QUEUED) {
      this.#waiting = true;
      this.#queuedAt = started;
    } else this.#useEndpoint(slot as Endpoint);
    this.#deadline.set(started, cluster.settings.timeoutMs);

    const expectHandled = head.expectContinue;
    const upgrade = head.upgrade !== undefined && !isH2c(head.upgrade) ? head.upgrade : undefined;
    serializeRequestHead(
      head,
      {
        path: route.path,
        host: route.rewriteHost ? route.authority : undefined,
        clientAddress: this.#clientAddress,
        proto: this.#proto,
        expectHandled,
        upgrade,
        clientCert: this.#clientCert,
      },
      this.#upstreamHead,
    );
    const upstreamHead = this.#upstreamHead;
    record.requestId = upstreamHead.requestId;
    record.userAgent = upstreamHead.userAgent;
    record.forwardedFor = upstreamHead.forwardedFor;

    // Body bytes that arrived with the head go to the queue until an upstream is attached.
    const pending = this.#pending;
    if (pending !== null && !this.#requestDone) {
      this.#pending = null;
      const used = this.#consumeBody(pending, 0, pending.length);
      if (this.#isClosed()) return;
      if (used < pending.length) this.#pending = pending.subarray(used);
    }

    if (expectHandled && head.minor === 1 && !this.#requestDone) {
      // Answer 100 ourselves, as Envoy does, and keep Expect away from the upstream.
      this.#sent100 = true;
      this.#socket.write(CONTINUE_100);
    }
    if (this.#endpoint !== null) this.#acquire(false);
  }

  /** The connection's facts for authorization, once (the listener has policies). */
  #connectionFacts(): RequestFacts {
    const peer = this.#peer;
    const facts = connectionFacts(
      peer?.principal ?? "",
      peer?.namespace ?? "",
      this.#clientAddress,
      this.#socket.localAddress ?? "",
      this.#ctx.port,
      peer?.sni ?? "",
    );
    this.#facts = facts;
    return facts;
  }

  /**
   * A request without the sticky cookie gets one: its value is the hash key for this request's
   * pick, and Set-Cookie carries it back so the client's next requests land on the same endpoint.
   */
  #stick(sticky: StickyCookie, headers: readonly string[]): void {
    if (cookieHash(headers, sticky.name) !== NO_KEY) return;
    const value = randomBytes(8).toString("hex");
    this.#pick.hashKey = value;
    this.#setCookie = `set-cookie: ${sticky.name}=${value}${sticky.attributes}\r\n`;
  }

  /** The balancer gave this exchange `endpoint` (a slot counted against it). */
  #useEndpoint(endpoint: Endpoint): void {
    const cluster = this.#cluster!;
    this.#endpoint = endpoint;
    this.#pool = cluster.pool(endpoint, this.#hosts!.subset);
    this.#record.endpoint = endpoint.id;
    const perTry = cluster.retryPolicy.settings.perTryTimeoutMs;
    if (perTry > 0) {
      if (this.#tryDeadline === null) this.#tryDeadline = new Deadline(this.#onTryTimeout);
      this.#tryDeadline.set(performance.now(), perTry);
    }
  }

  /** The attempt took longer than `perTryTimeout` without a response head. */
  #onTryTimeout = (): void => {
    if (this.#state !== CONNECTING && this.#state !== ACTIVE) return;
    if (this.#resHeadSent || this.#endpoint === null) return;
    // Still connecting: nothing reached the upstream, so it is a connect failure (safe to retry
    // for any method); after the head went out it is a timeout.
    if (this.#conn === null) {
      this.#leavePending();
      this.#attemptFailed(CONNECT_FAILED, "REMORA_ERR_UPSTREAM_TIMEOUT");
    } else this.#attemptFailed(TIMEOUT, "REMORA_ERR_UPSTREAM_TIMEOUT");
  };

  /** No byte moved for `streamIdleTimeout`: the attempt ends on whoever stopped (stream-idle.ts). */
  #onStreamIdle = (): void => {
    if (this.#state !== ACTIVE || this.#endpoint === null) return;
    const upstreamNotReading = (this.#paused & PAUSE_BACKPRESSURE) !== 0;
    if (
      stalledSide(this.#upstreamPaused, !this.#requestDone, upstreamNotReading) === STALLED_CLIENT
    ) {
      this.#endAttemptNow(undefined);
      this.#failUpstream("REMORA_ERR_STREAM_IDLE_TIMEOUT");
    } else if (!this.#resHeadSent) {
      this.#attemptFailed(TIMEOUT, "REMORA_ERR_UPSTREAM_IDLE");
    } else {
      this.#endAttemptNow(TIMEOUT);
      this.#failUpstream("REMORA_ERR_UPSTREAM_IDLE");
    }
  };

  /** SlotWaiter: a queued exchange got its slot (first-come). */
  onSlot(endpoint: Endpoint): void {
    if (!this.#waiting || this.#state !== CONNECTING) {
      // Not ours to use any more (cannot happen while cancel() is honoured): give it back.
      this.#balancer?.onEnd?.(endpoint, true);
      return;
    }
    this.#waiting = false;
    const waited = performance.now() - this.#queuedAt;
    this.#record.queueMs = waited;
    this.#hosts!.queueWait.observe(waited);
    this.#useEndpoint(endpoint);
    this.#acquire(false);
  }

  /** SlotWaiter: waited `queueTimeout` without a slot. */
  onQueueTimeout(): void {
    if (!this.#waiting) return;
    this.#waiting = false;
    const waited = performance.now() - this.#queuedAt;
    this.#record.queueMs = waited;
    this.#hosts!.queueWait.observe(waited);
    this.#failUpstream("REMORA_ERR_QUEUE_TIMEOUT");
  }

  /**
   * A connection for the current attempt: an idle one at once, or a new one (the request then
   * counts against the cluster's pending-request limit until it connects), or 503 UO at a limit.
   */
  #acquire(fresh: boolean): void {
    const pool = this.#pool!;
    const pending = this.#cluster!.pendingLimit;
    if (!pending.tryEnter()) {
      this.#cluster!.stats.pendingOverflows++;
      this.#overflow("REMORA_ERR_PENDING_OVERFLOW");
      return;
    }
    const result = fresh ? pool.connectFresh(this) : pool.acquire(this);
    if (result === "connecting") {
      this.#pendingHeld = true;
      return;
    }
    pending.leave();
    if (result === "overflow") this.#overflow("REMORA_ERR_OVERFLOW");
    else this.#attach(result);
  }

  #leavePending(): void {
    if (!this.#pendingHeld) return;
    this.#pendingHeld = false;
    this.#cluster?.pendingLimit.leave();
  }

  /** A limit of remora's own refused the attempt: not a result about the endpoint. */
  #overflow(code: ErrorCode): void {
    const endpoint = this.#endpoint;
    if (endpoint !== null) {
      this.#endpoint = null;
      this.#endAttempt(endpoint, undefined);
    }
    this.#failUpstream(code);
  }

  onUpstreamConnected(conn: UpstreamConnection): boolean {
    if (this.#state !== CONNECTING || this.#conn !== null || this.#endpoint === null) return false;
    this.#leavePending();
    this.#attach(conn);
    return true;
  }

  onUpstreamConnectFailed(error: RemoraError): void {
    if (this.#state !== CONNECTING || this.#endpoint === null) return;
    this.#leavePending();
    if (error.code === "REMORA_ERR_OVERFLOW") this.#overflow("REMORA_ERR_OVERFLOW");
    // A failed TLS handshake or peer check is a connect failure (retried, reported) with its own code.
    else if (error.code === "REMORA_ERR_UPSTREAM_TLS") {
      this.#attemptFailed(CONNECT_FAILED, "REMORA_ERR_UPSTREAM_TLS");
    } else this.#attemptFailed(CONNECT_FAILED, "REMORA_ERR_UPSTREAM_CONNECT");
  }

  /**
   * The current attempt failed before a response head reached the client: report it once, then
   * retry on another endpoint if the policy, the request's safety and the budget allow it, or
   * answer `code` (with URX when the retries were spent).
   */
  #attemptFailed(result: AttemptResult, code: ErrorCode): void {
    const conn = this.#conn;
    this.#conn = null;
    conn?.destroy();
    const endpoint = this.#endpoint!;
    this.#endpoint = null;
    this.#endAttempt(endpoint, result);
    this.#failure = code;
    if (this.#mayRetry(result)) this.#retry(endpoint, result);
    else this.#failUpstream(code);
  }

  /**
   * A response head the retry policy may want to retry (retriable-status-codes, 5xx...): true
   * when the exchange goes on with another attempt and this response is dropped; false to
   * forward it (with URX or UO when that is why it was not retried).
   */
  #retryResponse(status: number): boolean {
    const http = this.#attempts.http;
    http.status = status;
    if (!this.#mayRetry(http)) return false;
    const conn = this.#conn;
    this.#conn = null;
    conn?.destroy();
    const endpoint = this.#endpoint!;
    this.#endpoint = null;
    this.#endAttempt(endpoint, http);
    this.#retry(endpoint, http);
    return true;
  }

  /**
   * Whether another attempt may follow `result`: the policy (retryOn, attempts left, a request
   * safe to send again) and the cluster's retry budget. Takes a budget slot when it says yes;
   * adds URX (retries spent) or UO (budget) to the record when that is why it says no.
   */
  #mayRetry(result: AttemptResult): boolean {
    const cluster = this.#cluster!;
    const attempts = this.#attempts;
    const facts = this.#retryFacts;
    facts.result = result;
    facts.attemptsMade = attempts.retries;
    facts.method = this.#head!.method;
    facts.requestBodySent = this.#headSent;
    facts.replayable = attempts.replayable && (this.#requestDone || this.#bodySent === 0);
    facts.responseStarted = this.#resHeadSent;
    const verdict = cluster.retryPolicy.decide(facts);
    if (verdict !== RetryVerdict.RETRY) {
      if (verdict === RetryVerdict.NO_RETRY_LIMIT) this.#addFlag("URX");
      return false;
    }
    // The attempt that failed was perhaps a retry itself: its budget slot is free now.
    this.#releaseBudget();
    // A failed connect reached no upstream: its retry cannot multiply any backend's load, so
    // only maxRetries bounds it (see RetryBudget#tryAcquire).
    const budgeted = result.kind !== ResultKind.CONNECT_FAILED;
    if (!cluster.retryBudget.tryAcquire(cluster.stats.active, budgeted)) {
      cluster.stats.retriesRefused++;
      this.#addFlag("UO");
      return false;
    }
    attempts.holdsBudget = true;
    return true;
  }

  /**
   * Another attempt, avoiding `failed`, after the backoff: the body (kept) queued again. A
   * failed connect is retried at once: the backoff spaces out load on upstreams that are
   * struggling, and a refused connect put none on any (measured: with the backoff, the failover
   * benchmark's p99 rose from 4 to 22 ms while a dead endpoint stayed in rotation).
   */
  #retry(failed: Endpoint, result: AttemptResult): void {
    const cluster = this.#cluster!;
    const attempts = this.#attempts;
    attempts.noteTried(failed.id);
    attempts.retries++;
    cluster.stats.retries++;
    // Back to the state before the first attempt: the body (kept for replay) queued again.
    this.#state = CONNECTING;
    this.#resMode = RES_HEAD;
    this.#resPending = null;
    this.#upstreamSentAt = 0;
    if (this.#headSent) {
      const body = attempts.replayBody();
      this.#queue = body.chunks;
      this.#queued = body.bytes;
      this.#bodySent = 0;
      this.#headSent = false;
    }
    this.#resume(PAUSE_BACKPRESSURE);
    const wait =
      result.kind === ResultKind.CONNECT_FAILED
        ? 0
        : cluster.retryPolicy.backoffMs(attempts.retries, Math.random);
    if (wait <= 0) this.#pickAgain();
    else this.#backoff = setTimeout(this.#onBackoff, wait);
  }

  #onBackoff = (): void => {
    this.#backoff = null;
    if (this.#state === CONNECTING) this.#pickAgain();
  };

  /** The next attempt's endpoint: one not tried yet if any is eligible (or a queued slot). */
  #pickAgain(): void {
    const pick = this.#pick;
    pick.exclude = this.#attempts.tried ?? undefined;
    const hosts = this.#hosts!;
    const slot = hosts.acquire(pick, this);
    this.#balancer = hosts.balancer;
    if (slot === undefined || slot === QUEUE_FULL) {
      this.#releaseBudget();
      this.#failUpstream(slot === undefined ? "REMORA_ERR_NO_HEALTHY_ENDPOINT" : this.#failure);
      return;
    }
    if (slot === QUEUED) {
      this.#waiting = true;
      this.#queuedAt = performance.now();
      return;
    }
    this.#useEndpoint(slot);
    this.#acquire(false);
  }

  /**
   * The one report of an attempt's end: to the balancer (its slot, its count) and, with a
   * result about the endpoint, to the cluster's health (outlier detection). `result` undefined:
   * the attempt ended for a reason that says nothing about the endpoint (the client left, a
   * limit of remora's own).
   */
  #endAttempt(endpoint: Endpoint, result: AttemptResult | undefined): void {
    this.#tryDeadline?.clear();
    this.#streamIdle?.clear();
    this.#leavePending();
    const ok = result !== undefined && result.kind === ResultKind.HTTP && result.status < 500;
    this.#balancer!.onEnd?.(endpoint, ok);
    if (result !== undefined) this.#cluster!.reportResult(endpoint, result);
  }

  #releaseBudget(): void {
    if (!this.#attempts.holdsBudget) return;
    this.#attempts.holdsBudget = false;
    this.#cluster?.retryBudget.release();
  }

  #addFlag(flag: string): void {
    const flags = this.#record.flags;
    this.#record.flags = flags === "-" ? flag : `${flags},${flag}`;
  }

  /** Send the head and any queued body on a connection that is now ours. */
  #attach(conn: UpstreamConnection): void {
    this.#conn = conn;
    conn.owner = this;
    conn.requests++;
    this.#state = ACTIVE;
    this.#resMode = RES_HEAD;
    this.#resHeadSent = false;
    this.#upstreamReusable = true;
    if (this.#ctx.detail.upstreamTiming) this.#upstreamSentAt = performance.now();
    const socket = conn.socket;
    const queue = this.#queue;
    let ok: boolean;
    if (queue.length === 0) ok = socket.write(this.#upstreamHead.text, "latin1");
    else {
      socket.cork();
      ok = socket.write(this.#upstreamHead.text, "latin1");
      for (let i = 0; i < queue.length; i++) ok = socket.write(queue[i]!);
      socket.uncork();
      this.#bodySent += this.#queued;
      this.#queue = [];
      this.#queued = 0;
    }
    this.#headSent = true;
    const idleMs = this.#cluster!.settings.streamIdleTimeoutMs;
    if (idleMs > 0) {
      if (this.#streamIdle === null) this.#streamIdle = new StreamIdleTimer(this.#onStreamIdle);
      this.#streamIdle.start(idleMs);
    }
    if (!ok) this.#pause(PAUSE_BACKPRESSURE);
    else this.#resume(PAUSE_BACKPRESSURE);
  }

  /** Feed request body bytes; returns the index just past the bytes that belong to it. */
  #consumeBody(buf: Buffer, start: number, end: number): number {
    let stop: number;
    if (this.#bodyMode === BODY_LENGTH) {
      stop = Math.min(end, start + this.#bodyRemaining);
      this.#bodyRemaining -= stop - start;
      if (this.#bodyRemaining === 0) this.#requestDone = true;
    } else {
      const decoder = this.#requestDecoder!;
      try {
        stop = decoder.feed(buf, start, end, null);
      } catch (error) {
        if (!(error instanceof HttpParseError)) throw error;
        // Bad chunk framing: nothing more may reach the upstream (no smuggled second request).
        this.#abortRequest(codeForParseStatus(error.status));
        return end;
      }
      if (decoder.done) this.#requestDone = true;
    }
    if (stop > start)
      this.#sendBody(start === 0 && stop === buf.length ? buf : buf.subarray(start, stop));
    return stop;
  }

  #sendBody(bytes: Buffer): void {
    this.#record.requestBytes += bytes.length;
    if (this.#state === ACTIVE && this.#conn !== null) {
      this.#streamIdle?.touch();
      this.#bodySent += bytes.length;
      this.#attempts.keep(bytes, this.#reader === null);
      this.#writeUpstream(bytes);
    } else if (this.#state === CONNECTING) {
      const owned = this.#reader !== null ? copyOf(bytes) : bytes;
      this.#queue.push(owned);
      this.#attempts.keep(owned, true);
      this.#queued += bytes.length;
      if (this.#queued > QUEUE_HIGH_WATER) this.#pause(PAUSE_BACKPRESSURE);
    }
    // Otherwise the exchange already has a local reply and the body is discarded.
  }

  /** Client bytes (possibly a view of the read buffer) to the attached upstream. */
  #writeUpstream(bytes: Buffer): void {
    const socket = this.#conn!.socket;
    const ok = this.#reader !== null ? this.#reader.write(socket, bytes) : socket.write(bytes);
    if (!ok) this.#pause(PAUSE_BACKPRESSURE);
  }

  // ---------------------------------------------------------------- upstream events

  onUpstreamData(conn: UpstreamConnection, chunk: Buffer): void {
    if (conn !== this.#conn) return;
    this.#streamIdle?.touch();
    if (this.#state === TUNNEL) {
      this.#writeClient(chunk);
      return;
    }
    if (this.#resMode !== RES_HEAD) {
      this.#consumeResponse(chunk, 0, chunk.length);
      return;
    }
    let buf = chunk;
    if (this.#resPending !== null) {
      buf = Buffer.concat([this.#resPending, chunk]);
      this.#resPending = null;
    }
    let pos = 0;
    for (;;) {
      let head: ResponseHead | null;
      try {
        head = parseResponseHead(buf, pos, buf.length, this.#ctx.limits);
      } catch (error) {
        if (!(error instanceof HttpParseError)) throw error;
        this.#endAttemptNow(RESET);
        this.#failUpstream("REMORA_ERR_UPSTREAM_PROTOCOL");
        return;
      }
      if (head === null) {
        // Kept across reads, so copied out of the connection's read buffer.
        if (pos < buf.length)
          this.#resPending = buf === chunk ? copyOf(buf.subarray(pos)) : buf.subarray(pos);
        return;
      }
      pos += head.headLength;
      if (head.status >= 200) {
        // A status the retry policy retries (a 503, say) is dropped for another attempt.
        const http = this.#attempts.http;
        http.status = head.status;
        if (this.#cluster!.retryPolicy.retriable(http) && this.#retryResponse(head.status)) return;
        // The head is held back so it leaves in one write with the body bytes that came
        // with it (see #writeClient).
        this.#startResponse(head);
        if (pos < buf.length && this.#resMode !== RES_HEAD) {
          this.#consumeResponse(buf, pos, buf.length);
        }
        if (this.#heldHead !== null) this.#flushHead();
        return;
      }
      if (head.status === 101) {
        this.#startTunnel(head, buf, pos);
        return;
      }
      // Interim responses: our own 100 already went out; others go to HTTP/1.1 clients only.
      if (!(head.status === 100 && this.#sent100) && this.#head!.minor === 1) {
        const interim = serializeInterimHead(head);
        this.#record.responseHeadBytes += interim.length;
        this.#writeClientText(interim);
      }
      if (pos >= buf.length) return;
    }
  }

  onUpstreamDrain(conn: UpstreamConnection): void {
    if (conn !== this.#conn) return;
    this.#streamIdle?.touch();
    this.#resume(PAUSE_BACKPRESSURE);
  }

  onUpstreamClose(conn: UpstreamConnection, _error: Error | undefined): void {
    if (conn !== this.#conn) return;
    this.#conn = null;
    this.#upstreamReusable = false;
    switch (this.#state) {
      case TUNNEL:
        this.#socket.end();
        this.#state = CLOSED;
        this.#report(performance.now());
        return;
      case ACTIVE:
        break;
      default:
        return;
    }
    if (this.#resMode === RES_HEAD) {
      if (this.#canResendOnFreshConnection(conn)) {
        // The same attempt, once more on a new connection: not a retry and not a failure of
        // the endpoint (the classic race with an upstream closing an idle keep-alive socket).
        this.#resent = true;
        this.#state = CONNECTING;
        this.#resPending = null;
        this.#resume(PAUSE_BACKPRESSURE);
        const body = this.#attempts.replayBody();
        this.#queue = body.chunks;
        this.#queued = body.bytes;
        this.#bodySent = 0;
        this.#headSent = false;
        this.#acquire(true);
        return;
      }
      this.#attemptFailed(RESET, "REMORA_ERR_UPSTREAM_RESET");
      return;
    }
    if (this.#resMode === FRAMING_CLOSE) {
      this.#completeResponse();
      return;
    }
    if (this.#resMode === RES_RECHUNK) {
      this.#writeClient(LAST_CHUNK);
      this.#completeResponse();
      return;
    }
    // The body was cut short: the client must see a reset, not a truncated "complete" body.
    this.#record.flags = "UC";
    this.#endAttemptNow(RESET);
    this.#abort("UC");
  }

  /**
   * A request that died on a reused connection before any response byte is sent once more on a
   * fresh connection when that cannot duplicate a side effect: nothing of its body had been sent,
   * or it is idempotent and its whole body is kept for replay.
   */
  #canResendOnFreshConnection(conn: UpstreamConnection): boolean {
    if (this.#resent || conn.requests <= 1 || this.#resPending !== null) return false;
    if (this.#bodySent === 0) return true;
    return this.#attempts.replayable && this.#requestDone && isIdempotent(this.#head!.method);
  }

  /** End the current attempt (if any) with `result`, outside the retry paths. */
  #endAttemptNow(result: AttemptResult | undefined): void {
    const endpoint = this.#endpoint;
    if (endpoint === null) return;
    this.#endpoint = null;
    this.#endAttempt(endpoint, result);
  }

  // ---------------------------------------------------------------- responses

  #startResponse(head: ResponseHead): void {
    const request = this.#head!;
    const noBody = request.method === "HEAD" || head.status === 204 || head.status === 304;
    let mode: number;
    let framing: number;
    if (noBody) {
      mode = framing = FRAMING_NONE;
    } else if (head.chunked) {
      if (request.minor === 1) mode = framing = FRAMING_CHUNKED;
      else {
        mode = RES_DECHUNK;
        framing = FRAMING_CLOSE;
      }
    } else if (head.contentLength >= 0) {
      mode = framing = FRAMING_LENGTH;
      this.#resRemaining = head.contentLength;
    } else if (request.minor === 1) {
      mode = RES_RECHUNK;
      framing = FRAMING_CHUNKED;
    } else {
      mode = framing = FRAMING_CLOSE;
    }
    if (mode === FRAMING_CHUNKED || mode === RES_DECHUNK) {
      if (this.#responseDecoder === null) this.#responseDecoder = new ChunkedDecoder();
      else this.#responseDecoder.reset();
    }
    if (head.close || mode === FRAMING_CLOSE || mode === RES_RECHUNK)
      this.#upstreamReusable = false;
    // A response before the request body is complete: the rest of that body has nowhere to go,
    // so both connections close after this response.
    if (!this.#requestDone || framing === FRAMING_CLOSE || this.#ctx.draining)
      this.#closeAfter = true;
    else if (this.#ctx.overload.disableKeepAlive) this.#closeAfter = true;
    this.#resMode = mode;
    const record = this.#record;
    record.status = head.status;
    if (this.#upstreamSentAt !== 0) record.upstreamServiceMs = this.#upstreamTime();
    const connection = this.#closeAfter ? "close" : request.minor === 0 ? "keep-alive" : "";
    this.#resHeadSent = true;
    const held = serializeResponseHead(head, framing, connection, this.#setCookie);
    record.responseHeadBytes += held.length;
    this.#heldHead = held;
    if (mode === FRAMING_NONE || (mode === FRAMING_LENGTH && this.#resRemaining === 0)) {
      this.#completeResponse();
    }
  }

  #consumeResponse(buf: Buffer, start: number, end: number): void {
    switch (this.#resMode) {
      case FRAMING_LENGTH: {
        const stop = Math.min(end, start + this.#resRemaining);
        this.#resRemaining -= stop - start;
        this.#writeClient(start === 0 && stop === buf.length ? buf : buf.subarray(start, stop));
        if (stop < end) this.#upstreamReusable = false;
        if (this.#resRemaining === 0) this.#completeResponse();
        return;
      }
      case FRAMING_CHUNKED:
      case RES_DECHUNK: {
        const decoder = this.#responseDecoder!;
        const pass = this.#resMode === FRAMING_CHUNKED;
        let stop: number;
        try {
          stop = decoder.feed(buf, start, end, pass ? null : this);
        } catch (error) {
          if (!(error instanceof HttpParseError)) throw error;
          this.#record.flags = "UPE";
          this.#endAttemptNow(RESET);
          this.#abort("UPE");
          return;
        }
        if (pass && stop > start) {
          this.#writeClient(start === 0 && stop === buf.length ? buf : buf.subarray(start, stop));
        }
        if (stop < end) this.#upstreamReusable = false;
        if (decoder.done) this.#completeResponse();
        return;
      }
      case RES_RECHUNK: {
        const size = end - start;
        if (size === 0) return;
        this.#socket.cork();
        this.#writeClientText(`${size.toString(16)}\r\n`);
        this.#writeClient(start === 0 && end === buf.length ? buf : buf.subarray(start, end));
        this.#writeClient(CRLF);
        this.#socket.uncork();
        return;
      }
      case FRAMING_CLOSE:
        this.#writeClient(start === 0 && end === buf.length ? buf : buf.subarray(start, end));
        return;
      default:
        // Bytes after a bodiless response: the upstream broke framing; never reuse it.
        this.#upstreamReusable = false;
    }
  }

  /** Decoded chunk payload for an HTTP/1.0 client. */
  onChunkData(buf: Buffer, start: number, end: number): void {
    this.#writeClient(buf.subarray(start, end));
  }

  /** Response bytes to the client; `bytes` may be a view of the upstream's read buffer. */
  #writeClient(bytes: Buffer): void {
    const held = this.#heldHead;
    const conn = this.#conn;
    let ok: boolean;
    if (held !== null && bytes.length <= COALESCE_LIMIT) {
      // One small buffer and one write() beat a corked writev through Node's stream layer.
      this.#heldHead = null;
      const out = Buffer.allocUnsafe(held.length + bytes.length);
      out.write(held, 0, "latin1");
      bytes.copy(out, held.length);
      this.#record.responseBytes += out.length;
      ok = this.#socket.write(out);
    } else {
      if (held !== null) this.#flushHead();
      this.#record.responseBytes += bytes.length;
      ok = conn !== null ? conn.reader.write(this.#socket, bytes) : this.#socket.write(bytes);
    }
    if (!ok && conn !== null && !this.#upstreamPaused) {
      this.#upstreamPaused = true;
      conn.socket.pause();
    }
  }

  #flushHead(): void {
    const held = this.#heldHead!;
    this.#heldHead = null;
    this.#writeClientText(held);
  }

  #writeClientText(text: string): void {
    if (this.#heldHead !== null) this.#flushHead();
    this.#record.responseBytes += text.length;
    if (!this.#socket.write(text, "latin1") && this.#conn !== null && !this.#upstreamPaused) {
      this.#upstreamPaused = true;
      this.#conn.socket.pause();
    }
  }

  #completeResponse(): void {
    if (this.#heldHead !== null) this.#flushHead();
    const now = performance.now();
    const conn = this.#conn;
    if (conn !== null) {
      this.#conn = null;
      if (this.#upstreamPaused) {
        this.#upstreamPaused = false;
        conn.socket.resume();
      }
      this.#pool!.release(conn, this.#upstreamReusable && this.#requestDone, now);
    }
    this.#endExchange(true, now);
  }

  #startTunnel(head: ResponseHead, buf: Buffer, pos: number): void {
    if (this.#head!.upgrade === undefined || isH2c(this.#head!.upgrade)) {
      this.#endAttemptNow(RESET);
      this.#failUpstream("REMORA_ERR_UPSTREAM_PROTOCOL");
      return;
    }
    this.#state = TUNNEL;
    this.#record.status = 101;
    if (this.#upstreamSentAt !== 0) this.#record.upstreamServiceMs = this.#upstreamTime();
    this.#upstreamReusable = false;
    this.#deadline.clear();
    this.#streamIdle?.clear();
    const switched = serializeResponseHead(head, FRAMING_NONE, "upgrade");
    this.#record.responseHeadBytes += switched.length;
    this.#writeClientText(switched);
    if (pos < buf.length) this.#writeClient(buf.subarray(pos));
    const pending = this.#pending;
    this.#pending = null;
    this.#resume(PAUSE_PIPELINE);
    if (pending !== null && this.#conn !== null) this.#conn.socket.write(pending);
  }

  // ---------------------------------------------------------------- endings

  /** Reply from the proxy itself (no route, no endpoint...) and finish the exchange. */
  #localReply(code: ErrorCode): void {
    const { status, flag } = ERRORS[code];
    this.#record.status = status;
    // The reply's own flag first, then what led to it ("UF,URX"), as Envoy lists them.
    this.#record.flags = this.#record.flags === "-" ? flag : `${flag},${this.#record.flags}`;
    if (!this.#requestDone) this.#closeAfter = true;
    this.#resHeadSent = true;
    const reply = localReply(code, !this.#closeAfter);
    this.#record.responseBytes += reply.length;
    this.#record.responseHeadBytes += reply.length - localReplyBodyBytes(code);
    this.#socket.write(reply);
    this.#endExchange(false);
  }

  /** The upstream side failed: a local reply if the client has seen nothing yet, else a reset. */
  #failUpstream(code: ErrorCode): void {
    const conn = this.#conn;
    this.#conn = null;
    conn?.destroy();
    if (this.#resHeadSent) {
      this.#record.flags = ERRORS[code].flag;
      this.#abort(ERRORS[code].flag);
      return;
    }
    this.#localReply(code);
  }

  /** Malformed request body: answer 400 if nothing was answered yet, and close both sides. */
  #abortRequest(code: ErrorCode): void {
    this.#requestDone = false;
    this.#closeAfter = true;
    const conn = this.#conn;
    this.#conn = null;
    conn?.destroy();
    if (this.#state === READ_HEAD) {
      this.#reject(code);
      return;
    }
    if (this.#resHeadSent) this.#abort("DPE");
    else this.#localReply(code);
  }

  /** Reset both connections without a response (the client sees the connection close). */
  #abort(flag: string): void {
    if (this.#record.flags === "-") this.#record.flags = flag;
    const conn = this.#conn;
    this.#conn = null;
    conn?.destroy();
    const wasActive =
      this.#state === ACTIVE || this.#state === CONNECTING || this.#state === TUNNEL;
    this.#state = CLOSED;
    this.#socket.destroy();
    if (wasActive) this.#finishStats(false);
    this.#deadline.clear();
    this.#report(performance.now());
  }

  #endExchange(upstreamAnswered: boolean, now = performance.now()): void {
    this.#finishStats(upstreamAnswered);
    this.#report(now);
    this.#head = null;
    this.#cluster = null;
    this.#hosts = null;
    this.#balancer = null;
    this.#endpoint = null;
    this.#pool = null;
    this.#pick.headers = undefined;
    this.#pick.exclude = undefined;
    this.#pick.hashKey = undefined;
    this.#setCookie = "";
    this.#queue = [];
    this.#queued = 0;
    this.#bodySent = 0;
    this.#headSent = false;
    this.#resent = false;
    this.#sent100 = false;
    this.#resPending = null;
    this.#resMode = RES_HEAD;
    this.#resHeadSent = false;
    this.#heldHead = null;
    if (this.#closeAfter) {
      this.#close();
      return;
    }
    this.#state = READ_HEAD;
    this.#resume(PAUSE_BACKPRESSURE | PAUSE_PIPELINE);
    if (this.#pending !== null) {
      this.#timeHead(now);
      // Answer the next pipelined request; deferred when called from inside #drive.
      if (!this.#driving) this.#drive();
    } else this.#awaitRequest(now);
  }

  #finishStats(ok: boolean): void {
    const cluster = this.#cluster;
    if (cluster === null) return;
    cluster.stats.active--;
    const status = this.#record.status;
    const index = status >= 100 && status < 600 ? Math.floor(status / 100) : 0;
    cluster.stats.byClass[index]!++;
    if (this.#waiting) {
      // The client left (or the request timed out) while queued: it leaves the queue.
      this.#waiting = false;
      this.#balancer!.cancel?.(this);
    }
    // The last attempt ends with the response the client got; a reset says nothing about the
    // endpoint here (failures of the endpoint were reported where they happened).
    if (this.#endpoint !== null) {
      const http = this.#attempts.http;
      http.status = status;
      this.#endAttemptNow(ok ? http : undefined);
    }
    this.#releaseBudget();
    this.#leavePending();
    if (this.#backoff !== null) {
      clearTimeout(this.#backoff);
      this.#backoff = null;
    }
    this.#cluster = null;
  }

  #report(now: number): void {
    const record = this.#record;
    record.durationMs = now - this.#started;
    this.#ctx.reporter.report(record);
  }

  /** The upstream's final head arrived: ms since the request went to it. */
  #upstreamTime(): number {
    const ms = performance.now() - this.#upstreamSentAt;
    this.#upstreamSentAt = 0;
    return ms;
  }

  /** A method, not an inline test, so TypeScript does not keep a narrowing across calls. */
  #isClosed(): boolean {
    return this.#state === CLOSED;
  }

  #close(): void {
    this.#state = CLOSED;
    this.#pending = null;
    this.#recycleStore();
    this.#socket.end();
    this.#linger();
  }

  /**
   * After our FIN, keep reading (and discarding) for a while before closing the socket: closing
   * with unread input sends an RST that can destroy the response still in flight to the
   * client (RFC 9112 §9.6). The client normally closes first; this bounds a client that won't.
   */
  #linger(): void {
    this.#paused = 0;
    this.#reader?.discard();
    this.#socket.resume();
    clearTimeout(this.#lingering);
    this.#lingering = setTimeout(destroySocket, LINGER_MS, this.#socket).unref();
  }

  #pause(reason: number): void {
    if (this.#paused === 0) this.#socket.pause();
    this.#paused |= reason;
  }

  #resume(reasons: number): void {
    if (this.#paused === 0) return;
    this.#paused &= ~reasons;
    if (this.#paused === 0) this.#socket.resume();
  }
}

function destroySocket(socket: Socket): void {
  socket.destroy();
}

/** An interface's fields, writable (objects the session refills in place). */
type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** PickContext as the session fills it in place for each request. */
interface MutablePickContext {
  headers: readonly string[] | undefined;
  sourceAddress: string;
  path: string | undefined;
  exclude: ReadonlySet<string> | undefined;
  hashKey: string | undefined;
}

/**
 * Upgrade to h2c is never forwarded: proxying it lets a client tunnel past the proxy's
 * routing and policy (the "h2c smuggling" pattern); Envoy strips it too.
 */
function isH2c(upgrade: string): boolean {
  return upgrade.length >= 3 && upgrade.slice(0, 3).toLowerCase() === "h2c";
}
