import { createHash } from "node:crypto";
import { FileSource } from "../discovery/file-source.js";
import { ServiceRegistry } from "../discovery/registry.js";
import { StaticSource } from "../discovery/static-source.js";
import { AccessLog } from "./access-log/access-log.js";
import { AdminServer } from "./admin.js";
import { Cluster, ClusterManager, type ClusterSettings } from "./cluster.js";
import { formatAddress, parseAddress } from "./config/address.js";
import { parseServicesText } from "./config/isolated.js";
import type { RemoraConfig, ServiceConfig } from "./config/schema.js";
import type { ExchangeRecord, ExchangeReporter } from "./exchange.js";
import { HttpListener } from "./listeners/http-listener.js";
import { TcpListener } from "./listeners/tcp-listener.js";
import { type Logger, silentLogger } from "./log.js";
import { HostRouter } from "./router.js";

export interface BoundListener {
  readonly name: string;
  readonly kind: "outbound" | "inbound" | "tcp";
  readonly address: string;
  readonly port: number;
}

export interface RuntimeOptions {
  readonly logger?: Logger;
  /** The proxy's own namespace: a bare `NAME` host resolves there. Default $POD_NAMESPACE or "default". */
  readonly namespace?: string;
  /** Extra reporter for finished exchanges (access logs, tests). */
  readonly reporter?: ExchangeReporter;
  /** Called when the admin API asks the process to exit (POST /quitquitquit). */
  readonly onQuit?: () => void;
}

/**
 * The loaded config's identity and the outcome of reloads: read by the admin API, the metrics
 * (`remora_config_reloads_total`, the config hash) and the dashboard. Only the reload path writes it.
 */
export interface ReloadStatus {
  /** Reloads applied and refused since start. */
  ok: number;
  failed: number;
  /** sha256 of the applied config (canonical JSON), first 16 hex digits. */
  hash: string;
  /** When the applied config was loaded (ms since the epoch). */
  appliedAtMs: number;
  /** The last reload attempt (ms since the epoch; 0 = none) and its error ("" when it applied). */
  lastAttemptMs: number;
  lastError: string;
}

/** A short, stable fingerprint of a validated config (key order as the schema emits it). */
export function configHash(config: RemoraConfig): string {
  return createHash("sha256").update(JSON.stringify(config)).digest("hex").slice(0, 16);
}

type Listener = (HttpListener | TcpListener) & { drain(): void; close(): void };

/** Totals across listeners by response flag, for the admin API until metrics land. */
class FlagCounter implements ExchangeReporter {
  readonly counts = new Map<string, number>();
  total = 0;
  #next: ExchangeReporter | undefined;
  constructor(next: ExchangeReporter | undefined) {
    this.#next = next;
  }
  report(record: ExchangeRecord): void {
    this.total++;
    if (record.flags !== "-")
      this.counts.set(record.flags, (this.counts.get(record.flags) ?? 0) + 1);
    this.#next?.report(record);
  }
}

/** Cluster settings from a service's traffic policy (DestinationRule + VirtualService). */
export function clusterSettings(service: ServiceConfig): ClusterSettings {
  const pool = service.trafficPolicy.connectionPool;
  return {
    policy: service.trafficPolicy.loadBalancer.policy,
    timeoutMs: service.timeout,
    pool: {
      connectTimeoutMs: pool.tcp.connectTimeout,
      maxConnections: pool.tcp.maxConnections,
      idleTimeoutMs: pool.http.idleTimeout,
      maxRequestsPerConnection: pool.http.maxRequestsPerConnection,
    },
  };
}

/**
 * One running proxy: discovery sources feeding the registry, clusters, listeners and the admin
 * API, built from a validated config.
 */
export class Runtime {
  readonly config: RemoraConfig;
  readonly registry = new ServiceRegistry();
  readonly clusters: ClusterManager;
  readonly listeners: BoundListener[] = [];
  readonly counters: FlagCounter;
  /** Configured from `accessLog` at start; a reload calls `accessLog.configure(config.accessLog)`. */
  readonly accessLog: AccessLog;
  /** Inbound listeners' local-app clusters, shown in the admin API with the services. */
  readonly appClusters: Cluster[] = [];
  adminPort = 0;
  readonly reloads: ReloadStatus;
  #logger: Logger;
  #options: RuntimeOptions;
  #defaults: ClusterSettings;
  #servers: Listener[] = [];
  #admin: AdminServer | undefined;
  #fileSource: FileSource | undefined;
  #started = false;
  #draining = false;

  /**
   * `serviceDefaults`: what the schema gives a service that names nothing but itself, for
   * services known only to discovery (config/load.ts serviceDefaults(), or LoadedConfig's).
   */
  constructor(config: RemoraConfig, serviceDefaults: ServiceConfig, options: RuntimeOptions = {}) {
    this.config = config;
    this.reloads = {
      ok: 0,
      failed: 0,
      hash: configHash(config),
      appliedAtMs: Date.now(),
      lastAttemptMs: 0,
      lastError: "",
    };
    this.#options = options;
    this.#logger = options.logger ?? silentLogger();
    this.accessLog = new AccessLog({ logger: this.#logger, next: options.reporter });
    this.counters = new FlagCounter(this.accessLog);
    this.#defaults = clusterSettings(serviceDefaults);
    this.clusters = new ClusterManager(this.registry, this.#defaults);
  }

  /** Ready: listeners bound and every discovery source has synced (the admin's /ready). */
  get ready(): boolean {
    return this.#started && !this.#draining && this.registry.isSynced();
  }

  get draining(): boolean {
    return this.#draining;
  }

  async start(): Promise<void> {
    const config = this.config;
    // First, so a path that cannot be opened fails the start before anything binds.
    this.accessLog.configure(config.accessLog);
    const configured = new Map<string, ClusterSettings & { name: string; namespace: string }>();
    for (const service of config.services) {
      configured.set(`${service.name}.${service.namespace}`, {
        ...clusterSettings(service),
        name: service.name,
        namespace: service.namespace,
      });
    }
    this.clusters.configure(configured);
    new StaticSource(this.registry, config.services).start();
    if (config.discovery !== undefined) {
      this.#fileSource = new FileSource(this.registry, config.discovery.file, {
        logger: this.#logger,
        parse: parseServicesText,
      });
      await this.#fileSource.start();
    }
    try {
      this.#admin = new AdminServer(this, this.#logger, this.#options.onQuit);
      this.adminPort = await this.#admin.listen(config.admin.address, config.admin.port);
      this.#logger.info(
        { address: config.admin.address, port: this.adminPort },
        "admin API listening",
      );
      for (const listener of config.listeners) await this.#startListener(listener);
    } catch (error) {
      await this.stop();
      throw error;
    }
    this.#started = true;
  }

  async #startListener(listener: RemoraConfig["listeners"][number]): Promise<void> {
    let server: Listener;
    const reporter = this.counters;
    if (listener.kind === "tcp") {
      server = new TcpListener({
        name: listener.name,
        address: listener.address,
        port: listener.port,
        service: listener.service,
        cluster: (key) => this.clusters.get(key),
        reporter,
        idleTimeoutMs: listener.timeouts.idle,
      });
    } else {
      let route: (authority: string) => Cluster | undefined;
      if (listener.kind === "outbound") {
        const router = new HostRouter(
          this.clusters,
          this.#options.namespace ?? process.env.POD_NAMESPACE ?? "default",
        );
        route = (authority) => router.resolve(authority);
      } else {
        const app = appCluster(listener.name, listener.app, this.#defaults);
        this.appClusters.push(app);
        route = () => app;
      }
      server = new HttpListener({
        name: listener.name,
        address: listener.address,
        port: listener.port,
        limits: { maxHeadBytes: listener.maxRequestHeadersKb * 1024, maxTargetBytes: 8 * 1024 },
        requestHeadersTimeoutMs: listener.timeouts.requestHeaders,
        idleTimeoutMs: listener.timeouts.idle,
        reporter,
        detail: this.accessLog,
        route,
      });
    }
    const bound = await server.listen();
    this.#servers.push(server);
    this.listeners.push({
      name: listener.name,
      kind: listener.kind,
      address: bound.address,
      port: bound.port,
    });
    this.#logger.info(
      { listener: listener.name, kind: listener.kind, address: bound.address, port: bound.port },
      "listener ready",
    );
  }

  /** Open downstream connections across listeners. */
  get connections(): number {
    let total = 0;
    for (const server of this.#servers) total += server.connections;
    return total;
  }

  /** Stop accepting and let in-flight exchanges finish with Connection: close. */
  drain(): void {
    if (this.#draining) return;
    this.#draining = true;
    this.#logger.info({ connections: this.connections }, "draining listeners");
    for (const server of this.#servers) server.drain();
  }

  /** Drain, wait up to `graceMs` for connections to finish, then close everything. */
  async shutdown(graceMs: number): Promise<void> {
    this.drain();
    const deadline = Date.now() + graceMs;
    while (this.connections > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await this.stop();
  }

  async stop(): Promise<void> {
    for (const server of this.#servers) server.close();
    this.#servers = [];
    this.#fileSource?.stop();
    this.clusters.close();
    for (const app of this.appClusters) app.close();
    await this.#admin?.close();
    await this.accessLog.close();
  }
}

/** The inbound listener's one destination: the local application. */
function appCluster(listenerName: string, app: string, defaults: ClusterSettings): Cluster {
  const { host, port } = parseAddress(app);
  const cluster = new Cluster(listenerName, "inbound", defaults, `inbound|${port}|${listenerName}`);
  const id = formatAddress(host, port);
  cluster.update({
    key: cluster.key,
    name: listenerName,
    namespace: "inbound",
    version: 1,
    endpoints: [{ id, host, port, weight: 1, labels: {}, ready: true }],
  });
  return cluster;
}
