import { type AddressInfo, createServer, type Socket } from "node:net";
import type { Cluster } from "../cluster.js";
import { type ExchangeReporter, NO_DETAIL, type RecordDetail } from "../exchange.js";
import type { HeadLimits } from "../http/head.js";
import { HttpSession, type SessionContext } from "../http-session.js";
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
}

/** A TCP listener speaking HTTP/1.1 (outbound and inbound kinds). */
export class HttpListener implements SessionContext {
  readonly listener: string;
  readonly limits: HeadLimits;
  readonly requestHeadersTimeoutMs: number;
  readonly idleTimeoutMs: number;
  readonly proto = "http";
  readonly reporter: ExchangeReporter;
  readonly detail: RecordDetail;
  readonly route: (authority: string) => Cluster | undefined;
  draining = false;
  /** Downstream connections accepted since start (metrics). */
  accepted = 0;
  #options: HttpListenerOptions;
  #sockets: ListenerSockets;
  #sessions = new Set<HttpSession>();

  constructor(options: HttpListenerOptions) {
    this.#options = options;
    this.listener = options.name;
    this.limits = options.limits;
    this.requestHeadersTimeoutMs = options.requestHeadersTimeoutMs;
    this.idleTimeoutMs = options.idleTimeoutMs;
    this.reporter = options.reporter;
    this.detail = options.detail ?? NO_DETAIL;
    this.route = options.route;
    // allowHalfOpen: a client that half-closes after its request still gets the response.
    // pauseOnConnect: the socket moves to one that reads into a ReadBuffer before reading starts.
    const serverOptions = {
      allowHalfOpen: true,
      noDelay: true,
      pauseOnConnect: true,
      highWaterMark: STREAM_HIGH_WATER,
    };
    this.#sockets = new ListenerSockets(() => createServer(serverOptions, this.#onConnection));
  }

  get connections(): number {
    return this.#sessions.size;
  }

  listen(): Promise<AddressInfo> {
    return this.#sockets.listen(this.#options.address, this.#options.port);
  }

  onSessionClosed(session: HttpSession): void {
    this.#sessions.delete(session);
  }

  /** Stop accepting; idle connections close now, busy ones after their current exchange. */
  drain(): void {
    this.draining = true;
    this.#sockets.close();
    for (const session of this.#sessions) session.drain();
  }

  close(): void {
    this.#sockets.close();
    for (const session of this.#sessions) session.destroy();
  }

  #onConnection = (accepted: Socket): void => {
    this.accepted++;
    const reader = new ReadBuffer();
    const socket = adoptAccepted(accepted, reader, ADOPT);
    if (socket !== undefined) this.#sessions.add(new HttpSession(socket, this, reader));
    else {
      accepted.resume();
      this.#sessions.add(new HttpSession(accepted, this, null));
    }
  };
}

const ADOPT = { allowHalfOpen: true, writableHighWaterMark: STREAM_HIGH_WATER };
