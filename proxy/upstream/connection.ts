import type { Socket } from "node:net";
import type { ReadBuffer } from "../read-buffer.js";

/**
 * Whoever is using an upstream connection right now. Socket events are wired once per
 * connection and dispatched to the current owner, so handing a pooled connection to the
 * next request allocates no listeners.
 */
export interface UpstreamOwner {
  /** `chunk` is valid only during the call (see ReadBuffer). */
  onUpstreamData(conn: UpstreamConnection, chunk: Buffer): void;
  onUpstreamDrain(conn: UpstreamConnection): void;
  /** The connection ended or failed while owned; `error` is undefined for a clean FIN. */
  onUpstreamClose(conn: UpstreamConnection, error: Error | undefined): void;
}

/** Callbacks for the pool that created the connection. */
export interface ConnectionHome {
  onConnectionClosed(conn: UpstreamConnection): void;
}

/** One keep-alive TCP connection to one endpoint. */
export class UpstreamConnection {
  readonly socket: Socket;
  /** Where the socket reads; writers of its chunks report to it (ReadBuffer.noteWrite). */
  readonly reader: ReadBuffer;
  /** Requests sent on this connection so far; > 0 at acquire means the connection is reused. */
  requests = 0;
  owner: UpstreamOwner | null = null;
  #home: ConnectionHome;
  #closed = false;

  constructor(socket: Socket, reader: ReadBuffer, home: ConnectionHome, idleTimeoutMs: number) {
    this.socket = socket;
    this.reader = reader;
    this.#home = home;
    socket.setNoDelay(true);
    // One inactivity timer for the connection's whole life: it only matters while idle in the
    // pool (an owner keeps it busy or ignores it), so it is never re-armed per request.
    if (idleTimeoutMs > 0) socket.setTimeout(idleTimeoutMs);
    reader.sink = this.#onData;
    socket.on("drain", this.#onDrain);
    socket.on("end", this.#onEnd);
    socket.on("error", this.#onError);
    socket.on("close", this.#onClose);
    socket.on("timeout", this.#onTimeout);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Close now, discarding anything in flight. */
  destroy(): void {
    if (!this.#closed) this.socket.destroy();
  }

  #onData = (chunk: Buffer): void => {
    if (this.owner !== null) this.owner.onUpstreamData(this, chunk);
    // Bytes on an idle connection are a protocol error: the next request would read them.
    else this.socket.destroy();
  };

  #onDrain = (): void => {
    this.owner?.onUpstreamDrain(this);
  };

  #onEnd = (): void => {
    this.#finish(undefined);
    this.socket.destroy();
  };

  #onError = (error: Error): void => {
    this.#finish(error);
  };

  #onClose = (): void => {
    this.#finish(undefined);
  };

  #onTimeout = (): void => {
    if (this.owner === null) this.socket.destroy();
  };

  #finish(error: Error | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    const owner = this.owner;
    this.owner = null;
    this.#home.onConnectionClosed(this);
    owner?.onUpstreamClose(this, error);
  }
}
