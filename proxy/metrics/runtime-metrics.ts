/**
 * One Runtime's metrics: its own prom-client registry (contract.ts), Istio's standard metrics,
 * remora's own, prom-client's process metrics, the exchange reporter that feeds them and the
 * metrics listener. Runtime creates it only when `metrics.enabled` is true.
 */
import { collectDefaultMetrics, Registry } from "prom-client";
import type { ExchangeReporter } from "../exchange.js";
import type { ListenerCounts, MetricsSubject } from "./contract.js";
import { ExchangeMetrics } from "./exchanges.js";
import { renderRegistries } from "./family.js";
import { IstioMetrics } from "./istio.js";
import { RemoraMetrics } from "./remora.js";
import { MetricsServer } from "./server.js";
import { resolveWorkload, type Workload, type WorkloadConfig } from "./workload.js";

export interface RuntimeMetricsOptions {
  /** The config's `workload:`; unset fields come from `env` (the downward API). */
  readonly workload?: WorkloadConfig;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** The reporter after ours in the chain (access log, tests). */
  readonly next?: ExchangeReporter | undefined;
}

let processRegistry: Registry | undefined;

/**
 * prom-client's default metrics (`process_*`, `nodejs_*`; no prefix, so they never clash with
 * `istio_*` or `remora_*`) in a registry of their own, one per process: they describe the
 * process, and each collector installs an event-loop monitor and a GC observer that are never
 * removed, so runtimes (several in one test process) share one.
 */
export function processMetrics(): Registry {
  if (processRegistry === undefined) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

export class RuntimeMetrics {
  readonly registry = new Registry();
  readonly workload: Workload;
  /** The ExchangeReporter for Runtime's chain and the TCP listeners' observer. */
  readonly exchanges: ExchangeMetrics;
  readonly #remora: RemoraMetrics;
  #server: MetricsServer | undefined;

  constructor(subject: MetricsSubject, options: RuntimeMetricsOptions = {}) {
    this.workload = resolveWorkload(options.workload, options.env);
    const istio = new IstioMetrics(subject, this.workload, () => this.exchanges.flushOpenTcp());
    this.#remora = new RemoraMetrics(subject, this.workload, () => this.exchanges.prune());
    this.exchanges = new ExchangeMetrics(istio, this.#remora, options.next);
    istio.register(this.registry);
    this.#remora.register(this.registry);
  }

  /** A listener is bound (or about to be): count its connections and, if HTTP, its exchanges. */
  addListener(name: string, kind: "outbound" | "inbound" | "tcp", counts: ListenerCounts): void {
    this.exchanges.addListener(name, kind);
    this.#remora.addListener(name, counts);
  }

  /** A listener is gone (config reload): its series stop being read. */
  removeListener(name: string): void {
    this.exchanges.removeListener(name);
    this.#remora.removeListener(name);
  }

  /** The scrape (Prometheus text format 0.0.4) as the Buffers written, for the socket. */
  expositionChunks(): Promise<Buffer[]> {
    return renderRegistries([this.registry, processMetrics()]);
  }

  /** The scrape text as a string (tests, the dashboard). */
  async exposition(): Promise<string> {
    return Buffer.concat(await this.expositionChunks()).toString("utf8");
  }

  /** Start the metrics listener; resolves with the bound port. */
  listen(address: string, port: number): Promise<number> {
    this.#server ??= new MetricsServer(this);
    return this.#server.listen(address, port);
  }

  async close(): Promise<void> {
    this.#remora.close();
    await this.#server?.close();
  }
}
