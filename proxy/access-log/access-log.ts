/**
 * The access log: one JSON line per finished exchange with Envoy's default fields under Istio's
 * JSON key names (docs/access-log.md), written asynchronously through pino's destination so a
 * slow, blocked or full destination never stalls the proxy (line-sink.ts). Lines that do not fit
 * the bounded buffer are dropped and counted, never waited for.
 *
 * It sits in the ExchangeReporter chain and is reconfigured in place (`configure`), so a reload
 * can turn it on, off, or to another file without rebuilding listeners.
 */
import type { ExchangeRecord, ExchangeReporter, RecordDetail } from "../exchange.js";
import { type Logger, silentLogger } from "../log.js";
import { accessLogLine } from "./line.js";
import { type LineCounts, LineSink } from "./line-sink.js";

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
/** How long closing waits for buffered lines to be written before giving up on them. */
const CLOSE_GRACE_MS = 1000;

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
   * let go, so a path that cannot be opened throws a ConfigError (`accessLog.path`) and leaves
   * the running log as it was. The old destination is flushed and closed in the background;
   * `close()` waits for it.
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
    this.upstreamTiming = settings.sample > 0;
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
