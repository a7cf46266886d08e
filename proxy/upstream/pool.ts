import type { LookupFunction, NetConnectOpts } from "node:net";
import { noteUpstreamConnectError } from "../../overload/descriptor-errors.js";
import { RemoraError } from "../errors.js";
import { connectReading, ReadBuffer } from "../read-buffer.js";
import { type ConnectionHome, UpstreamConnection } from "./connection.js";
import type { ConnectTarget, UpstreamConnector } from "./connector.js";

/**
 * Bytes a socket may queue before write() reports backpressure. Node's 16 KiB default makes a
 * streamed body stop and start on every 64 KiB read; 256 KiB keeps the pipe full while still
 * bounding what one connection can hold.
 */
export const STREAM_HIGH_WATER = 256 * 1024;

export interface PoolSettings {
  /** TCP connect timeout (DestinationRule connectionPool.tcp.connectTimeout). */
  readonly connectTimeoutMs: number;
  /** Close a pooled connection idle this long (connectionPool.http.idleTimeout). */
  readonly idleTimeoutMs: number;
  /** Open plus connecting connections allowed to this endpoint (connectionPool.tcp.maxConnections). */
  readonly maxConnections: number;
  /** Requests per connection before it is retired; 0 = unlimited. */
  readonly maxRequestsPerConnection: number;
  /** DNS lookup for host names (default dns.lookup); passthrough destinations refuse loopback. */
  readonly lookup?: LookupFunction;
}

/** Told when a connection it asked for is ready or could not be made. */
export interface ConnectWaiter {
  /** Returns false when the waiter no longer wants it; the pool then keeps it idle. */
  onUpstreamConnected(conn: UpstreamConnection): boolean;
  onUpstreamConnectFailed(error: RemoraError): void;
}

export type AcquireResult = UpstreamConnection | "connecting" | "overflow";

/**
 * Keep-alive connections to one endpoint with one set of TLS settings (Cluster keeps one pool per
 * endpoint and TLS settings, so a connection is never reused under other settings).
 */
export class UpstreamPool implements ConnectionHome, ConnectTarget {
  readonly host: string;
  readonly port: number;
  /** ConnectTarget: the TLS session the connector resumes next (unused by plain TCP). */
  tlsSession: Buffer | undefined = undefined;
  #settings: PoolSettings;
  /** Opens connections other than plain TCP (upstream TLS); undefined = plain TCP, inline. */
  readonly #connector: UpstreamConnector | undefined;
  /** Idle connections, most recently used last (LIFO keeps few warm; the rest time out). */
  #idle: UpstreamConnection[] = [];
  #open = 0;
  #connecting = 0;
  #closing = false;

  constructor(host: string, port: number, settings: PoolSettings, connector?: UpstreamConnector) {
    this.host = host;
    this.port = port;
    this.#settings = settings;
    this.#connector = connector;
  }

  get stats(): { open: number; idle: number; connecting: number } {
    return { open: this.#open, idle: this.#idle.length, connecting: this.#connecting };
  }

  /**
   * An idle connection now, or "connecting" (the waiter hears back later), or "overflow" when
   * the connection limit is reached (the caller answers 503 UO, Envoy's circuit breaker).
   */
  acquire(waiter: ConnectWaiter): AcquireResult {
    const idle = this.#idle;
    while (idle.length > 0) {
      const conn = idle.pop()!;
      if (!conn.closed && !conn.socket.destroyed) return conn;
    }
    if (this.#open + this.#connecting >= this.#settings.maxConnections) return "overflow";
    this.#connect(waiter);
    return "connecting";
  }

  /** Always a new connection (a retry after a stale pooled one), within the limit. */
  connectFresh(waiter: ConnectWaiter): "connecting" | "overflow" {
    if (this.#open + this.#connecting >= this.#settings.maxConnections) return "overflow";
    this.#connect(waiter);
    return "connecting";
  }

  /** Give a connection back after a complete exchange at `now`; `reusable` false closes it. */
  release(conn: UpstreamConnection, reusable: boolean, now = performance.now()): void {
    conn.owner = null;
    const max = this.#settings.maxRequestsPerConnection;
    if (!reusable || this.#closing || conn.closed || (max > 0 && conn.requests >= max)) {
      conn.destroy();
      return;
    }
    conn.idleFrom(now);
    this.#idle.push(conn);
  }

  /** Stop pooling: idle connections close now, busy ones when released. */
  close(): void {
    this.#closing = true;
    for (const conn of this.#idle.splice(0)) conn.destroy();
  }

  onConnectionClosed(conn: UpstreamConnection): void {
    this.#open--;
    const at = this.#idle.indexOf(conn);
    if (at !== -1) this.#idle.splice(at, 1);
  }

  #connect(waiter: ConnectWaiter): void {
    this.#connecting++;
    const reader = new ReadBuffer();
    if (this.#connector !== undefined) {
      this.#connectThrough(this.#connector, reader, waiter);
      return;
    }
    const socket = connectReading(
      {
        host: this.host,
        port: this.port,
        writableHighWaterMark: STREAM_HIGH_WATER,
        lookup: this.#settings.lookup,
        // Node 20's typings omit the stream options that net.Socket accepts and applies.
      } as NetConnectOpts,
      reader,
    );
    const timeoutMs = this.#settings.connectTimeoutMs;
    let settled = false;
    const fail = (error: RemoraError): void => {
      if (settled) return;
      settled = true;
      this.#connecting--;
      socket.destroy();
      waiter.onUpstreamConnectFailed(error);
    };
    if (timeoutMs > 0) socket.setTimeout(timeoutMs);
    socket.once("timeout", () => {
      fail(new RemoraError("REMORA_ERR_UPSTREAM_CONNECT", `connect timeout after ${timeoutMs} ms`));
    });
    socket.once("error", (error) => {
      noteUpstreamConnectError(error);
      fail(new RemoraError("REMORA_ERR_UPSTREAM_CONNECT", error.message, { cause: error }));
    });
    socket.once("connect", () => {
      if (settled) return;
      settled = true;
      this.#connecting--;
      this.#open++;
      socket.removeAllListeners("timeout");
      socket.removeAllListeners("error");
      socket.setTimeout(0);
      const conn = new UpstreamConnection(socket, reader, this, this.#settings.idleTimeoutMs);
      if (!waiter.onUpstreamConnected(conn)) this.release(conn, true);
    });
  }

  /** A connection the connector opens (TLS): same accounting as the plain path above. */
  #connectThrough(connector: UpstreamConnector, reader: ReadBuffer, waiter: ConnectWaiter): void {
    connector.open(this, reader, this.#settings.connectTimeoutMs, {
      ready: (socket) => {
        this.#connecting--;
        this.#open++;
        const conn = new UpstreamConnection(socket, reader, this, this.#settings.idleTimeoutMs);
        if (!waiter.onUpstreamConnected(conn)) this.release(conn, true);
      },
      failed: (error) => {
        this.#connecting--;
        waiter.onUpstreamConnectFailed(error);
      },
    });
  }
}
