/**
 * The access log: one JSON line per finished exchange with Envoy's default fields under Istio's
 * JSON key names (docs/access-log.md), written asynchronously through pino's destination
 * (sonic-boom) so a slow, blocked or full destination never stalls the proxy. Lines that do not
 * fit the bounded buffer are dropped and counted, never waited for.
 *
 * It sits in the ExchangeReporter chain and is reconfigured in place (`configure`), so a reload
 * can turn it on, off, or to another file without rebuilding listeners.
 */
import { constants, openSync } from "node:fs";
import { pino } from "pino";
import type { ExchangeRecord, ExchangeReporter, RecordDetail } from "./exchange.js";
import { type Logger, silentLogger } from "./log.js";

/** The `accessLog` config section, with `path` already resolved. */
export interface AccessLogSettings {
  readonly enabled: boolean;
  /** "stdout", or a file path (absolute, or relative to the working directory). */
  readonly path: string;
  /** Fraction of exchanges logged, 0 to 1. */
  readonly sample: number;
  readonly format: "json";
}

export interface AccessLogOptions {
  readonly logger?: Logger;
  /** The next reporter in the chain; always called, logged or not. */
  readonly next?: ExchangeReporter;
  /** Sampling's random source, uniform in [0, 1) (tests inject one). Default Math.random. */
  readonly random?: () => number;
  /** Milliseconds clock for the write-error back-off. Default performance.now. */
  readonly now?: () => number;
  /** Bytes held while the destination is not keeping up; lines beyond are dropped. Default 4 MiB. */
  readonly bufferBytes?: number;
}

/** What the admin API's /stats and the metrics show. */
export interface AccessLogStats {
  readonly enabled: boolean;
  readonly path: string | null;
  readonly sample: number;
  /** Lines produced (after sampling) since start, written or dropped. */
  readonly lines: number;
  /** Lines dropped because the destination was full, failing or gone. */
  readonly dropped: number;
  /** Write errors reported by the destination (ENOSPC, EBADF...). */
  readonly errors: number;
}

/** 4 MiB: ~10,000 lines, a few hundred milliseconds of a busy proxy's log (a disk's hiccup). */
const DEFAULT_BUFFER_BYTES = 4 * 1024 * 1024;
/**
 * Lines are gathered into chunks of this size (~600 lines) before a write: each write costs the
 * event loop a hand-off to libuv's pool (12-80 µs measured here), whatever its size.
 */
const CHUNK_BYTES = 256 * 1024;
/** A chunk never waits longer than this to fill: Envoy's default access-log flush interval. */
const FLUSH_INTERVAL_MS = 1000;
/** After a write error, lines are dropped for this long before the destination is tried again. */
const ERROR_BACKOFF_MS = 1000;
/** How long closing waits for buffered lines to be written before giving up on them. */
const CLOSE_GRACE_MS = 1000;

/** pino.destination in contentMode "buffer": it takes Buffers (its types only say string). */
type Destination = Omit<ReturnType<typeof pino.destination>, "write"> & {
  write(chunk: Buffer): boolean;
};

export class AccessLog implements ExchangeReporter, RecordDetail {
  /** True while enabled: sessions then time the upstream for `upstream_service_time`. */
  upstreamTiming = false;
  #sink: LineSink | null = null;
  #sample = 1;
  #settings: AccessLogSettings | null = null;
  /** Sinks replaced or disabled, still flushing. */
  readonly #closing = new Set<Promise<void>>();
  readonly #counts: LineCounts = { lines: 0, dropped: 0, errors: 0 };
  readonly #logger: Logger;
  readonly #next: ExchangeReporter | undefined;
  readonly #random: () => number;
  readonly #now: () => number;
  readonly #bufferBytes: number;

  constructor(options: AccessLogOptions = {}) {
    this.#logger = options.logger ?? silentLogger();
    this.#next = options.next;
    this.#random = options.random ?? Math.random;
    this.#now = options.now ?? (() => performance.now());
    this.#bufferBytes = options.bufferBytes ?? DEFAULT_BUFFER_BYTES;
  }

  get dropped(): number {
    return this.#counts.dropped;
  }

  stats(): AccessLogStats {
    const settings = this.#settings;
    return {
      enabled: this.#sink !== null,
      path: settings?.enabled ? settings.path : null,
      sample: this.#sample,
      ...this.#counts,
    };
  }

  /**
   * Apply settings now (start, or a reload). A new destination is opened before the old one is
   * let go, so a path that cannot be opened throws and leaves the running log as it was. The old
   * destination is flushed and closed in the background; `close()` waits for it.
   */
  configure(settings: AccessLogSettings): void {
    if (!settings.enabled) {
      this.#retire();
      this.#settings = settings;
      return;
    }
    if (this.#sink === null || this.#sink.path !== settings.path) {
      const sink = new LineSink(
        settings.path,
        this.#bufferBytes,
        this.#counts,
        this.#logger,
        this.#now,
      );
      this.#retire();
      this.#sink = sink;
    }
    this.#sample = settings.sample;
    this.#settings = settings;
    this.upstreamTiming = true;
  }

  report(record: ExchangeRecord): void {
    const sink = this.#sink;
    if (sink !== null && (this.#sample >= 1 || this.#random() < this.#sample)) {
      sink.write(accessLogLine(record));
    }
    this.#next?.report(record);
  }

  /** Stop logging; resolves once buffered lines are written (or given up after a grace period). */
  async close(): Promise<void> {
    this.#retire();
    await Promise.all(this.#closing);
  }

  #retire(): void {
    const sink = this.#sink;
    if (sink === null) return;
    this.#sink = null;
    this.upstreamTiming = false;
    const closed = sink.close(CLOSE_GRACE_MS).finally(() => this.#closing.delete(closed));
    this.#closing.add(closed);
  }
}

interface LineCounts {
  lines: number;
  dropped: number;
  errors: number;
}

/**
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

/** Opened non-blocking so a full pipe answers EAGAIN instead of parking a libuv thread (which would also keep the process from exiting). */
function openDestination(path: string): number {
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

// ---------------------------------------------------------------- the line

let isoMs = -1;
let isoText = "";

/** ISO 8601 with milliseconds; one Date per distinct millisecond, not per line. */
function startTime(ms: number): string {
  const whole = Math.floor(ms);
  if (whole !== isoMs) {
    isoMs = whole;
    isoText = new Date(whole).toISOString();
  }
  return isoText;
}

/** A JSON string, or null for "" (Envoy logs "-", its JSON format null, for a missing value). */
function quoted(text: string): string {
  if (text === "") return "null";
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || c > 0x7e) return JSON.stringify(text);
  }
  return `"${text}"`;
}

/**
 * One exchange as a JSON line. Keys, order and meanings follow Envoy's default access-log
 * format (Istio's JSON encoding of it), plus `listener`. Bytes are body bytes, as in Envoy;
 * durations are whole milliseconds, truncated, as in Envoy.
 */
export function accessLogLine(record: ExchangeRecord): string {
  const upstream = record.upstreamServiceMs;
  return (
    `{"start_time":"${startTime(record.startMs)}","method":${quoted(record.method)},` +
    `"path":${quoted(record.path)},"protocol":${quoted(record.protocol)},` +
    `"response_code":${record.status},"response_flags":"${record.flags}",` +
    `"bytes_received":${record.requestBytes - record.requestHeadBytes},` +
    `"bytes_sent":${record.responseBytes - record.responseHeadBytes},` +
    `"duration":${Math.trunc(record.durationMs)},` +
    `"upstream_service_time":${upstream < 0 ? "null" : Math.trunc(upstream)},` +
    `"x_forwarded_for":${quoted(record.forwardedFor)},"user_agent":${quoted(record.userAgent)},` +
    `"request_id":${quoted(record.requestId)},"authority":${quoted(record.authority)},` +
    `"upstream_host":${quoted(record.endpoint)},"upstream_cluster":${quoted(record.cluster)},` +
    `"listener":${quoted(record.listener)}}\n`
  );
}
