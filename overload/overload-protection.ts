import { closeSync, openSync } from "node:fs";
import { getHeapStatistics } from "node:v8";
import type { Logger } from "../proxy/log.js";
import { upstreamDescriptorErrors } from "./descriptor-errors.js";
import {
  type DescriptorLimit,
  defaultMaxConnections,
  readDescriptorLimit,
} from "./descriptor-limit.js";
import { HeapPressure } from "./heap-pressure.js";
import type { Overload, OverloadSettings } from "./overload.js";
import { RateLimitedLog } from "./rate-limited-log.js";

export interface OverloadProtectionOptions {
  readonly logger: Pick<Logger, "info" | "warn">;
  /** Bytes the heap holds now (default: V8's used heap plus external memory, i.e. Buffers). */
  readonly readHeap?: () => number;
  /** Milliseconds, for durations in logs and the rate limit (default Date.now). */
  readonly now?: () => number;
  /** The descriptor limit (default: read from /proc/self/limits). */
  readonly descriptors?: DescriptorLimit;
  /** Try to open one descriptor: the error code if that fails, else undefined. */
  readonly probeDescriptor?: () => string | undefined;
}

/** How often the heap and descriptors are sampled and held-back log counts written. */
export const SAMPLE_INTERVAL_MS = 1000;

/** The states the monitor reports (`remora_overload_active{action}`), Envoy's action names. */
export const OVERLOAD_ACTIONS = [
  "stop_accepting_requests",
  "disable_http_keepalive",
  "reject_incoming_connections",
] as const;

/**
 * The overload monitor (contract: overload.ts). Connection admission is counted per connection;
 * the heap and the descriptor probe are sampled by a 1 s timer (`tick`), which flips the
 * booleans sessions read. Each state change is logged once, entering (warn) and leaving (info).
 */
export class OverloadProtection implements Overload {
  rejectRequests = false;
  disableKeepAlive = false;
  /** The connection cap in effect and whether it was configured or derived. */
  maxConnections = 0;
  maxConnectionsSource: "config" | "descriptor limit" = "descriptor limit";
  readonly descriptors: DescriptorLimit;
  /** Downstream connections admitted and not yet released. */
  open = 0;
  /** Connections refused by the cap, since start. */
  rejectedConnections = 0;
  /** True from a refusal until a sample finds no new refusal and room under the cap. */
  atConnectionLimit = false;
  /** The last heap sample (bytes; 0 until sampled, and not sampled while maxHeapMb is unset). */
  heapBytes = 0;
  /** Heap episodes entered since start. */
  heapEpisodes = 0;
  /** The descriptor probe failed at the last sample; episodes since start. */
  descriptorsExhausted = false;
  descriptorEpisodes = 0;
  readonly #logger: Pick<Logger, "info" | "warn">;
  readonly #readHeap: () => number;
  readonly #now: () => number;
  readonly #probe: () => string | undefined;
  readonly #heap = new HeapPressure(0);
  readonly #refused: RateLimitedLog;
  readonly #acceptErrors: RateLimitedLog;
  #refusedSinceSample = 0;
  #refusedInEpisode = 0;
  #since = { heap: 0, connections: 0, descriptors: 0 };
  #upstreamLogged = { EMFILE: 0, ENFILE: 0 };
  #timer: NodeJS.Timeout | undefined;

  constructor(settings: OverloadSettings, options: OverloadProtectionOptions) {
    this.#logger = options.logger;
    this.#readHeap = options.readHeap ?? heapInUse;
    this.#now = options.now ?? Date.now;
    this.#probe = options.probeDescriptor ?? probeDescriptor;
    this.descriptors = options.descriptors ?? readDescriptorLimit();
    const rate = { now: this.#now };
    this.#refused = new RateLimitedLog(
      this.#logger,
      "downstream connections refused: overload.maxDownstreamConnections reached",
      rate,
    );
    this.#acceptErrors = new RateLimitedLog(this.#logger, "downstream accept failed", rate);
    this.#upstreamLogged = { ...upstreamDescriptorErrors };
    this.configure(settings);
  }

  get heapThresholdBytes(): number {
    return this.#heap.thresholdBytes;
  }

  /** Apply `overload:` (at start and on reload); the heap state is re-decided by the next sample. */
  configure(settings: OverloadSettings): void {
    const configured = settings.maxDownstreamConnections;
    this.maxConnections = configured ?? defaultMaxConnections(this.descriptors.limit);
    this.maxConnectionsSource = configured === undefined ? "descriptor limit" : "config";
    this.#heap.setThreshold((settings.maxHeapMb ?? 0) * 1024 * 1024);
  }

  /** Sample every second (unref'd: never keeps the process alive); samples once now. */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#logger.info(
      {
        maxDownstreamConnections: this.maxConnections,
        from: this.maxConnectionsSource,
        descriptorLimit: this.descriptors.limit,
        descriptorLimitFrom: this.descriptors.source,
        maxHeapMb: this.#heap.thresholdBytes / 1048576 || null,
      },
      "overload protection",
    );
    this.tick();
    this.#timer = setInterval(() => this.tick(), SAMPLE_INTERVAL_MS);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  admit(listener: string): boolean {
    if (this.open < this.maxConnections) {
      this.open++;
      return true;
    }
    this.rejectedConnections++;
    this.#refusedSinceSample++;
    this.#refusedInEpisode++;
    if (!this.atConnectionLimit) {
      this.atConnectionLimit = true;
      this.#since.connections = this.#now();
      this.#logger.warn(
        { listener, maxDownstreamConnections: this.maxConnections },
        "overload: downstream connection limit reached; new connections are closed",
      );
    }
    this.#refused.note(listener, { listener, maxDownstreamConnections: this.maxConnections });
    return false;
  }

  release(): void {
    this.open--;
  }

  acceptFailed(listener: string, code: string): void {
    this.#acceptErrors.note(`${listener} ${code}`, { listener, code });
  }

  /** One sample: heap, connection-limit state, descriptors, held-back log counts. */
  tick(): void {
    this.#sampleHeap();
    if (
      this.atConnectionLimit &&
      this.#refusedSinceSample === 0 &&
      this.open < this.maxConnections
    ) {
      this.atConnectionLimit = false;
      this.#logger.info(
        { refused: this.#refusedInEpisode, forMs: this.#now() - this.#since.connections },
        "overload: downstream connections below the limit again; accepting",
      );
      this.#refusedInEpisode = 0;
    }
    this.#refusedSinceSample = 0;
    this.#sampleDescriptors();
    this.#refused.flush();
    this.#acceptErrors.flush();
  }

  #sampleHeap(): void {
    if (this.#heap.thresholdBytes <= 0 && !this.#heap.active) return;
    this.heapBytes = this.#readHeap();
    const change = this.#heap.sample(this.heapBytes);
    if (change === undefined) return;
    const active = change === "entered";
    this.rejectRequests = active;
    this.disableKeepAlive = active;
    const fields = {
      heapUsedMb: round(this.heapBytes / 1048576),
      maxHeapMb: this.#heap.thresholdBytes / 1048576 || null,
    };
    if (active) {
      this.heapEpisodes++;
      this.#since.heap = this.#now();
      this.#logger.warn(
        fields,
        "overload: heap above overload.maxHeapMb; new requests get 503 OM and keep-alive is off",
      );
    } else {
      this.#logger.info(
        { ...fields, forMs: this.#now() - this.#since.heap },
        "overload: heap back under 95% of overload.maxHeapMb; accepting requests",
      );
    }
  }

  #sampleDescriptors(): void {
    const code = this.#probe();
    const exhausted = code === "EMFILE" || code === "ENFILE";
    if (exhausted && !this.descriptorsExhausted) {
      this.descriptorsExhausted = true;
      this.descriptorEpisodes++;
      this.#since.descriptors = this.#now();
      this.#logger.warn(
        { code, descriptorLimit: this.descriptors.limit, openDownstream: this.open },
        "file descriptors exhausted: new connections are closed unseen by the runtime and upstream connects fail; lower overload.maxDownstreamConnections or raise the limit",
      );
    } else if (!exhausted && this.descriptorsExhausted) {
      this.descriptorsExhausted = false;
      this.#logger.info(
        { forMs: this.#now() - this.#since.descriptors },
        "file descriptors available again",
      );
    }
    for (const key of ["EMFILE", "ENFILE"] as const) {
      const count = upstreamDescriptorErrors[key] - this.#upstreamLogged[key];
      if (count === 0) continue;
      this.#upstreamLogged[key] = upstreamDescriptorErrors[key];
      this.#logger.warn({ code: key, count }, "upstream connects failed: no file descriptor left");
    }
  }
}

/** V8's used heap plus memory outside it held by JS objects (Buffers): what remora allocated. */
function heapInUse(): number {
  const stats = getHeapStatistics();
  return stats.used_heap_size + stats.external_memory;
}

/** Open and close one descriptor: the error code when none is left (EMFILE, ENFILE). */
function probeDescriptor(): string | undefined {
  if (process.platform === "win32") return undefined;
  try {
    closeSync(openSync("/dev/null", "r"));
    return undefined;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code;
  }
}

function round(value: number): number {
  return Math.round(value * 10) / 10;
}
