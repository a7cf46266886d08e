import type { Socket } from "node:net";
import { Deadline } from "../deadline.js";
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
  /** Where the socket reads; its chunks go to other sockets through `reader.write`. */
  readonly reader: ReadBuffer;
  /** Requests sent on this connection so far; > 0 at acquire means the connection is reused. */
  requests = 0;
  owner: UpstreamOwner | null = null;
  #home: ConnectionHome;
  #closed = false;
  readonly #idleTimeoutMs: number;
  readonly #idle: Deadline;

  constructor(socket: Socket, reader: ReadBuffer, home: ConnectionHome, idleTimeoutMs: number) {
    this.socket = socket;
    this.reader = reader;
    this.#home = home;
    this.#idleTimeoutMs = idleTimeoutMs;
    this.#idle = new Deadline(this.#onIdleTimeout);
    socket.setNoDelay(true);
    reader.sink = this.#onData;
    socket.on("drain", this.#onDrain);
    socket.on("end", this.#onEnd);
    socket.on("error", this.#onError);
    socket.on("close", this.#onClose);
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The connection went back to the pool at `now`: the idle timeout starts. */
  idleFrom(now: number): void {
    this.#idle.set(now, this.#idleTimeoutMs);
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

  #onIdleTimeout = (): void => {
    // Only an idle connection closes; one in use was given a new deadline when released.
    if (this.owner === null) this.socket.destroy();
  };

  #finish(error: Error | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#idle.stop();
    const owner = this.owner;
    this.owner = null;
    this.#home.onConnectionClosed(this);
    owner?.onUpstreamClose(this, error);
  }
}
