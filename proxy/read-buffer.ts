import { connect, type NetConnectOpts, type OnReadOpts, Socket } from "node:net";

/**
 * Reading plain TCP sockets into buffers remora owns (net.Socket's `onread`), instead of Node's
 * default of a fresh 64 KiB allocation per read that is then shrunk, wrapped and pushed through
 * the Readable stream machinery. On the small-GET benchmark that default costs about a tenth of
 * the proxy's CPU (a blind byte pump: ~49k req/s with 'data' events, ~56k with `onread`).
 *
 * Quiet sockets (request heads, small bodies, idle keep-alive connections) all read into one
 * buffer shared by the whole process, so an idle connection holds no read memory at all. A read
 * that fills it means a body is streaming: that socket moves to a 64 KiB buffer of its own, and
 * back to the shared one after a short read. Only while its owner expects a body
 * (`mayStream`): bytes of a request head are copied anyway, and a connection that floods a head,
 * or is being drained after an error, must not hold 64 KiB for it.
 *
 * The contract for code handed a chunk:
 * - it is valid only until the callback returns: bytes kept for later are copied (`copyOf`);
 * - it goes to another socket through `write(socket, chunk)`, which copies a chunk of the shared
 *   buffer, and for a socket's own buffer marks it lent when the write could not finish at once
 *   (the socket still points at that memory, so the next read needs a new buffer).
 */
export class ReadBuffer {
  /** Receives each chunk; set by the socket's owner before reading starts. */
  sink: (chunk: Buffer) => void = discard;
  /**
   * Whether a body may be streaming now, so that large reads are worth a buffer of this
   * socket's own; asked only after a read that filled the shared buffer or, on its own buffer,
   * of more than 4 KiB. Set by the owner; default yes.
   */
  mayStream: () => boolean = always;
  /** This socket's own buffer while a body streams; null while it reads into the shared one. */
  #own: Buffer | null = null;
  #lastRead = 0;
  #lent = false;
  #discarding = false;

  /** `onread` options for a socket that reads through this buffer. */
  get onread(): OnReadOpts {
    return { buffer: this.#next, callback: this.#onRead };
  }

  /** Whether chunks currently land in the shared buffer. */
  get shared(): boolean {
    return this.#own === null;
  }

  /**
   * The owner drops every further byte (a connection closing after an error reads until the
   * client closes): reads go to one large buffer shared by all such sockets, and this socket's
   * own is released.
   */
  discard(): void {
    this.#discarding = true;
    this.#own = null;
  }

  /** Write (part of) the current chunk to `socket`, keeping the bytes safe until it is sent. */
  write(socket: Socket, chunk: Buffer): boolean {
    if (this.#own === null) return socket.write(copyOf(chunk));
    const ok = socket.write(chunk);
    if (socket.writableLength > 0) this.#lent = true;
    return ok;
  }

  #onRead = (nread: number, buffer: Uint8Array): boolean => {
    this.#lastRead = nread;
    this.sink((buffer as Buffer).subarray(0, nread));
    // Reading pauses through socket.pause(), never through this return value.
    return true;
  };

  /** Called by Node after every callback for where the next read goes. */
  #next = (): Buffer => {
    if (this.#discarding) return discardBuffer();
    const own = this.#own;
    const read = this.#lastRead;
    if (own === null) {
      if (read < SHARED.length || !this.mayStream()) return SHARED;
    } else if (read <= SHARED_READ_LIMIT || !this.mayStream()) {
      this.#own = null;
      return SHARED;
    } else if (!this.#lent) return own;
    this.#lent = false;
    this.#own = Buffer.allocUnsafeSlow(OWN_READ);
    return this.#own;
  };
}

/**
 * One read buffer for every quiet socket: reads run one at a time on this thread, and nothing
 * keeps a view of it past the read callback.
 */
const SHARED = Buffer.allocUnsafeSlow(16 * 1024);
/** The most one read of a quiet socket (a request head) hands over. */
export const READ_CHUNK_BYTES = SHARED.length;
/** A read this short ends a streaming phase. */
const SHARED_READ_LIMIT = 4 * 1024;
/** Node's own read size: one read per 64 KiB of a streaming body. */
const OWN_READ = 64 * 1024;
/** Where discarded bytes land, shared by every discarding socket: made on first use. */
let DISCARD: Buffer | null = null;

function discardBuffer(): Buffer {
  if (DISCARD === null) DISCARD = Buffer.allocUnsafeSlow(OWN_READ);
  return DISCARD;
}

function discard(): void {}

function always(): boolean {
  return true;
}

/** A copy of bytes that must outlive the read callback they came from. */
export function copyOf(bytes: Buffer): Buffer {
  const out = Buffer.allocUnsafe(bytes.length);
  bytes.copy(out, 0);
  return out;
}

/** Connect a client socket that reads through `reader`. */
export function connectReading(options: NetConnectOpts, reader: ReadBuffer): Socket {
  const socket = connect({ ...options, onread: reader.onread } as NetConnectOpts);
  // Without 'data' listeners the socket must be put in flowing mode for 'end' to be emitted.
  socket.resume();
  return socket;
}

export interface AdoptOptions {
  readonly allowHalfOpen: boolean;
  readonly writableHighWaterMark: number;
}

/**
 * Node offers `onread` only to sockets it creates for connect(); a server's sockets always read
 * the default way. A listener created with `pauseOnConnect` has not started reading yet, so its
 * socket's handle can move into a new net.Socket that reads through `reader`. Returns undefined
 * (keep the accepted socket and its 'data' events) when this Node does not expose the handle.
 */
export function adoptAccepted(
  accepted: Socket,
  reader: ReadBuffer,
  options: AdoptOptions,
): Socket | undefined {
  const holder = accepted as unknown as { _handle: object | null };
  const handle = holder._handle;
  if (handle === null || typeof handle !== "object") return undefined;
  holder._handle = null;
  // The emptied socket closes without touching the handle; the server counts it as gone.
  accepted.destroy();
  const socket = new Socket({
    handle,
    onread: reader.onread,
    allowHalfOpen: options.allowHalfOpen,
    writableHighWaterMark: options.writableHighWaterMark,
  } as ConstructorParameters<typeof Socket>[0]);
  socket.resume();
  return socket;
}
