import type { Socket } from "node:net";
import type { RemoraError } from "../errors.js";
import type { ReadBuffer } from "../read-buffer.js";

/**
 * How a pool opens a connection (undici's `connector`: the pool never sees TLS itself). A pool
 * without a connector opens plain TCP itself, on its own unchanged path; with one (upstream TLS,
 * tls/outbound.ts) it asks the connector and gets back a socket that is ready for HTTP bytes.
 *
 * What a pool may rely on:
 * - exactly one of `ready` / `failed` is called, at most once, and never synchronously;
 * - `ready`'s socket reads through `reader` (ReadBuffer's `onread` contract), has no 'error',
 *   'timeout' or 'data' listeners of the connector's left that would act on it, and its timeout is off;
 * - `failed` gets a RemoraError whose `code` says what the client is told
 *   (REMORA_ERR_UPSTREAM_CONNECT for TCP, REMORA_ERR_UPSTREAM_TLS for the handshake or the peer
 *   check); the connector has already logged and counted a TLS failure; the socket is destroyed.
 * - `timeoutMs` (connectionPool.tcp.connectTimeout) bounds TCP connect and handshake together.
 */
export interface UpstreamConnector {
  open(target: ConnectTarget, reader: ReadBuffer, timeoutMs: number, done: ConnectDone): void;
}

/** One endpoint, with the TLS session state its pool keeps between connections. */
export interface ConnectTarget {
  readonly host: string;
  readonly port: number;
  /**
   * The last TLS session (ticket) this endpoint's server gave, offered on the next connect so the
   * handshake resumes instead of redoing the key exchange and certificate checks. Read and
   * written only by the connector; a pool starts with undefined and never shares it.
   */
  tlsSession: Buffer | undefined;
}

export interface ConnectDone {
  ready(socket: Socket): void;
  failed(error: RemoraError): void;
}
