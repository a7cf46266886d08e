import { connect, type NetConnectOpts, type OnReadOpts, Socket } from "node:net";

/**
 * Reading plain TCP sockets into buffers remora owns (net.Socket's `onread`), instead of Node's
 * default of a fresh 64 KiB allocation per read that is then shrunk, wrapped and pushed through
 * the Readable stream machinery. On the small-GET benchmark that default costs about a tenth of
 * the proxy's CPU (a blind byte pump: ~49k req/s with 'data' events, ~56k with `onread`).
 *
 * The contract for code handed a chunk:
 * - it is valid only until the callback returns: bytes kept for later are copied (`copyOf`);
 * - after writing any part of it to a socket, call `noteWrite(socket)`: when the write could not
 *   finish at once, the socket still points at this memory, so the next read needs a new buffer.
 *
 * Sizes adapt per connection: a read that fills the buffer moves to 64 KiB (a body is streaming),
 * a short read moves back to 4 KiB, so the many idle keep-alive connections of a busy sidecar hold
 * 4 KiB each rather than 64.
 */
export class ReadBuffer {
  /** Receives each chunk; set by the socket's owner before reading starts. */
  sink: (chunk: Buffer) => void = discard;
  #buffer = Buffer.allocUnsafeSlow(SMALL_READ);
  #lastRead = 0;
  #lent = false;

  /** `onread` options for a socket that reads through this buffer. */
  get onread(): OnReadOpts {
    return { buffer: this.#next, callback: this.#onRead };
  }

  /** Bytes of the current chunk were written to `socket`; keep them safe if it still holds them. */
  noteWrite(socket: Socket): void {
    if (socket.writableLength > 0) this.#lent = true;
  }

  #onRead = (nread: number, buffer: Uint8Array): boolean => {
    this.#lastRead = nread;
    this.sink((buffer as Buffer).subarray(0, nread));
    // Reading pauses through socket.pause(), never through this return value.
    return true;
  };

  /** Called by Node after every callback for where the next read goes. */
  #next = (): Buffer => {
    const size = this.#buffer.length;
    let want = size;
    if (this.#lastRead === size) want = LARGE_READ;
    else if (this.#lastRead <= SMALL_READ) want = SMALL_READ;
    if (this.#lent || want !== size) {
      this.#buffer = Buffer.allocUnsafeSlow(want);
      this.#lent = false;
    }
    return this.#buffer;
  };
}

const SMALL_READ = 4 * 1024;
/** Node's own read size: one read per 64 KiB of a streaming body. */
const LARGE_READ = 64 * 1024;

function discard(): void {}

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
