/**
 * One open access-log destination: a file or stdout, written asynchronously through pino's
 * destination (sonic-boom) with a bounded buffer. Nothing here ever waits for the destination.
 */
import { constants, openSync } from "node:fs";
import { pino } from "pino";
import { ConfigError } from "../config/errors.js";
import type { Logger } from "../log.js";

/**
 * Lines are gathered into chunks of this size (~600 lines) before a write: each write costs the
 * event loop a hand-off to libuv's pool (12-80 µs measured here), whatever its size.
 */
const CHUNK_BYTES = 256 * 1024;
/** A chunk never waits longer than this to fill: Envoy's default access-log flush interval. */
const FLUSH_INTERVAL_MS = 1000;
/** After a write error, lines are dropped for this long before the destination is tried again. */
const ERROR_BACKOFF_MS = 1000;

/** pino.destination in contentMode "buffer": it takes Buffers (its types only say string). */
type Destination = Omit<ReturnType<typeof pino.destination>, "write"> & {
  write(chunk: Buffer): boolean;
};

export interface LineCounts {
  lines: number;
  dropped: number;
  errors: number;
}

export /**
 * One open destination. Lines are UTF-8 encoded into a 256 KiB chunk, and whole chunks go to a
 * pino destination (sonic-boom, async, buffer mode) that holds at most `bufferBytes` while the
 * file or pipe is not keeping up; a chunk that does not fit is dropped and its lines counted.
 * Chunking costs one encode per line; handing each line to sonic-boom as a string cost twice
 * as much CPU per line here (it measures and re-copies the growing string on every write).
 */
class LineSink {
  readonly path: string;
  readonly #dest: Destination;
  readonly #counts: LineCounts;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #timer: NodeJS.Timeout;
  #chunk = Buffer.allocUnsafe(CHUNK_BYTES);
  #used = 0;
  #chunkLines = 0;
  /** Lines in the chunk being handed to the destination (its 'drop' event counts them). */
  #handing = 0;
  /** While a write error is fresh: the time until which lines are dropped; else 0. */
  #backoffUntil = 0;
  /** The destination is gone for good (EPIPE): every line is dropped. */
  #broken = false;
  #closing = false;
  #lastError: unknown = null;

  /** Opens `path` now, so a bad path fails the caller (start or reload) with the reason. */
  constructor(
    path: string,
    bufferBytes: number,
    counts: LineCounts,
    logger: Logger,
    now: () => number,
  ) {
    this.path = path;
    this.#counts = counts;
    this.#logger = logger;
    this.#now = now;
    this.#dest = pino.destination({
      dest: openDestination(path),
      sync: false,
      contentMode: "buffer",
      maxLength: bufferBytes,
      maxWrite: CHUNK_BYTES,
      // A full pipe (EAGAIN) is retried every 100 ms while chunks queue up to maxLength; once
      // closing, it is not, so no retry timer outlives the file descriptor.
      retryEAGAIN: () => !this.#closing,
    }) as unknown as Destination;
    this.#dest.on("drop", this.#onDrop);
    this.#dest.on("error", this.#onError);
    // pino.destination flushes synchronously when the process exits. sonic-boom's flushSync
    // loops forever on a full disk or pipe (it sleeps and retries), which would turn a stuck
    // destination into a process that cannot exit. Lines still buffered at an exit that did not
    // go through close() are lost instead (at most FLUSH_INTERVAL_MS of them, as in Envoy).
    // pino replaces methods on its destination the same way when it meets EPIPE (tools.js).
    this.#dest.flushSync = noop;
    this.#timer = setInterval(this.#flush, FLUSH_INTERVAL_MS);
    this.#timer.unref();
  }

  write(line: string): void {
    this.#counts.lines++;
    if (this.#backoffUntil !== 0) {
      if (this.#now() < this.#backoffUntil) {
        this.#counts.dropped++;
        return;
      }
      this.#backoffUntil = 0;
    }
    if (this.#broken) {
      this.#counts.dropped++;
      return;
    }
    // At most 3 UTF-8 bytes per UTF-16 unit, so the check never lets a line straddle chunks.
    const worst = line.length * 3;
    if (this.#used + worst > CHUNK_BYTES) {
      this.#handOver();
      if (worst > CHUNK_BYTES) {
        // A line longer than a chunk (a huge User-Agent...) goes on its own.
        this.#handing = 1;
        this.#dest.write(Buffer.from(line, "utf8"));
        return;
      }
    }
    this.#used += this.#chunk.write(line, this.#used, "utf8");
    this.#chunkLines++;
  }

  close(graceMs: number): Promise<void> {
    clearInterval(this.#timer);
    if (!this.#broken) this.#handOver();
    this.#closing = true;
    const dest = this.#dest;
    return new Promise((resolve) => {
      // 'close' follows a clean end(); a destination that cannot take its last lines is
      // destroyed after the grace period (its remaining lines are lost).
      const timer = setTimeout(() => {
        dest.destroy();
        resolve();
      }, graceMs);
      dest.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
      try {
        dest.end();
      } catch {
        // Already destroyed (EPIPE): nothing to flush.
        clearTimeout(timer);
        resolve();
      }
    });
  }

  /** The chunk so far to the destination; a fresh chunk, since the destination keeps this one. */
  #handOver(): void {
    if (this.#used === 0) return;
    const full = this.#chunk.subarray(0, this.#used);
    this.#handing = this.#chunkLines;
    this.#chunk = Buffer.allocUnsafe(CHUNK_BYTES);
    this.#used = 0;
    this.#chunkLines = 0;
    this.#dest.write(full);
  }

  #flush = (): void => {
    if (this.#broken || (this.#backoffUntil !== 0 && this.#now() < this.#backoffUntil)) return;
    this.#handOver();
  };

  #onDrop = (): void => {
    this.#counts.dropped += this.#handing;
  };

  #onError = (error: NodeJS.ErrnoException): void => {
    // pino's own EPIPE filter re-emits other errors once, so the first may arrive twice.
    if (error === this.#lastError) return;
    this.#lastError = error;
    this.#counts.errors++;
    if (this.#closing) return;
    if (error.code === "EPIPE") this.#broken = true;
    else this.#backoffUntil = this.#now() + ERROR_BACKOFF_MS;
    this.#logger.warn(
      { path: this.path, code: error.code, error: error.message },
      "access log write failed; dropping lines",
    );
  };
}

/**
 * Opened non-blocking so a full pipe answers EAGAIN instead of parking a libuv thread (which
 * would also keep the process from exiting). Opened synchronously: at start or on a reload only.
 */
function openDestination(path: string): number {
  try {
    return openNonBlocking(path);
  } catch (error) {
    throw new ConfigError("access log", [
      { path: "accessLog.path", message: `cannot open ${path}: ${(error as Error).message}` },
    ]);
  }
}

function openNonBlocking(path: string): number {
  const flags = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK;
  if (path !== "stdout") return openSync(path, flags, 0o644);
  // A fresh open of our stdout (pipe, tty, file) gets its own non-blocking file description
  // without changing the one the parent shares; a socket cannot be reopened: use fd 1 as is.
  try {
    return openSync("/dev/stdout", flags & ~constants.O_CREAT);
  } catch {
    return 1;
  }
}

function noop(): void {}
