import { createHash } from "node:crypto";
import { compilePolicies } from "../authz/compile.js";
import type { PolicySlot } from "../authz/policy.js";
import {
  FileSource,
  readServicesFile,
  type ServicesFileContents,
} from "../discovery/file-source.js";
import type { KubernetesSource } from "../discovery/kubernetes/source.js";
import { ServiceRegistry } from "../discovery/registry.js";
import { StaticSource } from "../discovery/static-source.js";
import { DEFAULT_RETRY_SETTINGS } from "../health/retry-policy.js";
import type { LoadBalancerSettings } from "../lb/balancer.js";
import { balancerModule, loadBalancerModule } from "../lb/module.js";
import { OverloadProtection } from "../overload/overload-protection.js";
import type { DevIdentity } from "../tls/dev-identity.js";
import { WorkloadIdentity } from "../tls/workload-identity.js";
import { AccessLog } from "./access-log/access-log.js";
import { AdminServer } from "./admin.js";
import { APP_PROBERS_ENV, parseAppProbers } from "./app-probes.js";
import { Cluster, ClusterManager, type ClusterSettings } from "./cluster.js";
import { formatAddress, parseAddress } from "./config/address.js";
import { type LoadedConfig, loadConfig, parseServicesText } from "./config/isolated.js";
import type { KubernetesDiscoveryConfig } from "./config/kubernetes-schema.js";
import type { ListenerConfig, RemoraConfig, ServiceConfig } from "./config/schema.js";
import type { TlsFlags } from "./config/tls-flags.js";
import { ConfigReloader, type ReloadTrigger } from "./config-reloader.js";
import type { ErrorCode } from "./errors.js";
import type { ExchangeRecord, ExchangeReporter } from "./exchange.js";
import { activeCheckers, loadActiveCheckers } from "./health-checks.js";
import { HttpListener, type HttpListenerOptions } from "./listeners/http-listener.js";
import { TcpListener } from "./listeners/tcp-listener.js";
import { type Logger, silentLogger } from "./log.js";
import { RuntimeMetrics } from "./metrics/runtime-metrics.js";
import { ProbeServer } from "./probes.js";
import {
  applyReload,
  type DiscoveredTrafficPolicy,
  type ReloadOutcome,
  type ReloadTarget,
} from "./reload.js";
import { HostRouter } from "./router.js";
import { OutboundPassthrough } from "./routing/passthrough.js";
import { TrafficWindow } from "./traffic-window.js";
import {
  clientTlsSettings,
  type TlsFileVersions,
  UpstreamTlsConnectors,
} from "./upstream/tls-connectors.js";

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
  /**
   * The file the config came from: watched and reloaded on change, SIGHUP and POST /reload.
   * `text` is what the running config was validated from (LoadedConfig.text); `flags`, the
   * command line's `--dev-mtls` / `--state-dir`, apply to every reload as they did at start.
   */
  readonly configFile?: {
    readonly path: string;
    readonly text?: string;
    readonly flags?: TlsFlags;
  };
  /** How long a listener removed or rebound by a reload may drain before it closes (default 5s). */
  readonly drainMs?: number;
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

/** A bound listener: its config, its sockets, what the admin API lists, its app cluster. */
interface RunningListener {
  readonly config: ListenerConfig;
  readonly server: Listener;
  readonly bound: BoundListener;
  readonly app: Cluster | undefined;
}

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

/**
 * Cluster settings from a service's traffic policy (DestinationRule + VirtualService).
 * `modules`: versions of loaded user balancer modules by path (Runtime#prepareServices).
 */
export function clusterSettings(
  service: ServiceConfig,
  modules: Readonly<Record<string, string>> = {},
  tlsVersions: TlsFileVersions = {},
): ClusterSettings {
  const pool = service.trafficPolicy.connectionPool;
  const lb = service.trafficPolicy.loadBalancer;
  const tls = clientTlsSettings(service.trafficPolicy.tls, tlsVersions);
  const subsets = service.subsets.map((subset) => ({
    name: subset.name,
    labels: subset.labels,
    lb: subset.trafficPolicy?.loadBalancer ?? lb,
    tls:
      subset.trafficPolicy?.tls === undefined
        ? tls
        : clientTlsSettings(subset.trafficPolicy.tls, tlsVersions),
  }));
  const used: Record<string, string> = {};
  for (const settings of [lb, ...subsets.map((s) => s.lb)]) {
    if (settings.module !== undefined) {
      used[settings.module.path] = modules[settings.module.path] ?? "";
    }
  }
  const retries = service.retries;
  const http = pool.http;
  return {
    lb,
    timeoutMs: service.timeout,
    streamIdleTimeoutMs: pool.http.streamIdleTimeout,
    retry: {
      ...DEFAULT_RETRY_SETTINGS,
      attempts: retries.attempts,
      retryOn: retries.retryOn,
      retriableStatusCodes: retries.retriableStatusCodes,
      perTryTimeoutMs: retries.perTryTimeout,
      retryNonIdempotent: retries.retryNonIdempotent,
      maxRetries: http.maxRetries,
      budgetPercent: http.retryBudget.percent,
      minRetryConcurrency: http.retryBudget.minRetryConcurrency,
    },
    maxPendingRequests: http.http1MaxPendingRequests,
    outlier: service.trafficPolicy.outlierDetection,
    healthCheck: service.trafficPolicy.healthCheck,
    pool: {
      connectTimeoutMs: pool.tcp.connectTimeout,
      maxConnections: pool.tcp.maxConnections,
      idleTimeoutMs: pool.http.idleTimeout,
      maxRequestsPerConnection: pool.http.maxRequestsPerConnection,
    },
    tls,
    subsets,
    routes: service.routes,
    modules: used,
  };
}

/** Every user balancer module the services name, with the settings that use it. */
function moduleUses(services: readonly ServiceConfig[]): Map<string, LoadBalancerSettings> {
  const uses = new Map<string, LoadBalancerSettings>();
  for (const service of services) {
    const lb = service.trafficPolicy.loadBalancer;
    for (const settings of [lb, ...service.subsets.map((s) => s.trafficPolicy?.loadBalancer)]) {
      if (settings?.module !== undefined) uses.set(settings.module.path, settings);
    }
  }
  return uses;
}

/**
 * One running proxy: discovery sources feeding the registry, clusters, listeners and the admin
 * API, built from a validated config.
 */
export class Runtime {
  readonly registry = new ServiceRegistry();
  readonly clusters: ClusterManager;
  readonly listeners: BoundListener[] = [];
  readonly counters: FlagCounter;
  /** The last minute of traffic per service and endpoint (dashboard, `remora status`). */
  readonly traffic: TrafficWindow;
  /** Configured from `accessLog` at start; a reload calls `accessLog.configure(config.accessLog)`. */
  readonly accessLog: AccessLog;
  /** Inbound listeners' local-app clusters, shown in the admin API with the services. */
  readonly appClusters: Cluster[] = [];
  adminPort = 0;
  /** The probe listener's bound port; undefined when `probes.port` is null. */
  probesPort: number | undefined;
  readonly reloads: ReloadStatus;
  #config: RemoraConfig;
  /** Prometheus metrics; undefined when `metrics.enabled` is false. */
  readonly metrics: RuntimeMetrics | undefined;
  /** The metrics listener's bound port; null when there is none (`metrics.port: null`). */
  metricsPort: number | null = null;
  /** This workload's certificate (config `tls`), once started; undefined without `tls`. */
  identity: WorkloadIdentity | undefined;
  /** Dev mode's CA and renewal timer (config `tls.dev`); its files feed `identity`. */
  #devIdentity: DevIdentity | undefined;
  /** `authorizationPolicies`, compiled; shared by inbound listeners, swapped by a reload. */
  readonly policies: PolicySlot;
  /** `overload`: the global connection cap and the heap actions, shared by every listener. */
  readonly overload: OverloadProtection;
  #logger: Logger;
  #options: RuntimeOptions;
  #defaults: ClusterSettings;
  readonly #serviceDefaults: ServiceConfig;
  /** Versions of the user balancer modules the applied config names, by path. */
  #moduleVersions: Record<string, string> = {};
  /** What the last #prepareServices found; applied with the services (a reload may still fail). */
  #loadedVersions: Record<string, string> = {};
  /** Versions of the trafficPolicy.tls files the applied config names, and the last loaded. */
  #tlsVersions: TlsFileVersions = {};
  #loadedTlsVersions: TlsFileVersions = {};
  /** Upstream TLS: the files services name, failure counts and log, the clusters' connectors. */
  readonly upstreamTls: UpstreamTlsConnectors;
  #servers: Listener[] = [];
  #admin: AdminServer | undefined;
  #fileSource: FileSource | undefined;
  /** Services and EndpointSlices from the API (`discovery.kubernetes`); a restart applies changes. */
  kubernetes: KubernetesSource | undefined;
  #static: StaticSource | undefined;
  /** Serving listeners by name; #servers also holds retired ones until they have drained. */
  #running = new Map<string, RunningListener>();
  /** Listeners a reload retired, until they have drained (their close-check timers). */
  #retiring = new Map<NodeJS.Timeout, RunningListener>();
  #probes: ProbeServer | undefined;
  #reloader: ConfigReloader | undefined;
  #reloading: Promise<unknown> = Promise.resolve();
  #router: HostRouter | undefined;
  /** `outboundTrafficPolicy` (a restart applies changes); undefined when unset: 404 NR. */
  #passthrough: OutboundPassthrough | undefined;
  #started = false;
  #draining = false;

  /**
   * `serviceDefaults`: what the schema gives a service that names nothing but itself, for
   * services known only to discovery (config/load.ts serviceDefaults(), or LoadedConfig's).
   */
  constructor(config: RemoraConfig, serviceDefaults: ServiceConfig, options: RuntimeOptions = {}) {
    this.#config = config;
    this.reloads = {
      ok: 0,
      failed: 0,
      hash: configHash(config),
      appliedAtMs: Date.now(),
      lastAttemptMs: 0,
      lastError: "",
    };
    this.#options = options;
    this.policies = { current: compilePolicies(config.authorizationPolicies) };
    this.#logger = options.logger ?? silentLogger();
    this.overload = new OverloadProtection(config.overload, { logger: this.#logger });
    this.upstreamTls = new UpstreamTlsConnectors(this.#logger, () => this.identity);
    this.metrics = config.metrics.enabled
      ? new RuntimeMetrics(this, { workload: config.workload, next: options.reporter })
      : undefined;
    this.traffic = new TrafficWindow({ next: this.metrics?.exchanges ?? options.reporter });
    this.accessLog = new AccessLog({ logger: this.#logger, next: this.traffic });
    this.counters = new FlagCounter(this.accessLog);
    this.#defaults = clusterSettings(serviceDefaults);
    this.#serviceDefaults = serviceDefaults;
    this.clusters = new ClusterManager(this.registry, this.#defaults, {
      modules: balancerModule,
      logger: this.#logger,
      checkers: activeCheckers,
      connectors: this.upstreamTls.factory,
    });
  }

  /** The applied config: the loaded one, then each reload's (see reload.ts). */
  get config(): RemoraConfig {
    return this.#config;
  }

  /** Ready: listeners bound and every discovery source has synced (the admin's /ready). */
  get ready(): boolean {
    return this.#started && !this.#draining && this.registry.isSynced();
  }

  get draining(): boolean {
    return this.#draining;
  }

  /**
   * Load the code `services` need: the active-check module when one asks for checks, and the
   * balancer modules they name (re-imported when changed on disk). True when a module's version
   * differs from the running config's. Rejects with the module's error.
   */
  async #prepareServices(
    configured: readonly ServiceConfig[],
    discovered: DiscoveredTrafficPolicy,
  ): Promise<boolean> {
    // The discovered Services' policy may name modules and files too.
    const services = [...configured, ...policyService(this.#serviceDefaults, discovered)];
    if (services.some((service) => service.trafficPolicy.healthCheck !== undefined)) {
      await loadActiveCheckers();
    }
    const versions: Record<string, string> = {};
    for (const [path, settings] of moduleUses(services)) {
      versions[path] = await loadBalancerModule(path, settings);
    }
    const tls = await this.upstreamTls.load(services);
    const changed = [
      ...Object.entries(versions).map(([path, version]) => this.#moduleVersions[path] !== version),
      ...Object.entries(tls).map(([path, version]) => this.#tlsVersions[path] !== version),
    ].some(Boolean);
    this.#loadedVersions = versions;
    this.#loadedTlsVersions = tls;
    return changed;
  }

  async start(): Promise<void> {
    const config = this.config;
    // First, so a path that cannot be opened fails the start before anything binds.
    this.accessLog.configure(config.accessLog);
    this.overload.start();
    if (config.tls !== undefined) {
      if (config.tls.dev !== undefined) {
        // Dev mode only: the dev CA needs node-forge, which a sidecar's run path never loads.
        const { DevIdentity } = await import("../tls/dev-identity.js");
        this.#devIdentity = new DevIdentity(config.tls.dev, { logger: this.#logger });
        await this.#devIdentity.start();
      }
      // Before anything binds: unusable certificate files fail the start with their reason.
      const identity = new WorkloadIdentity(config.tls, { logger: this.#logger });
      await identity.start();
      this.identity = identity;
    }
    await this.#prepareServices(config.services, config.discovery?.kubernetes?.trafficPolicy);
    this.#moduleVersions = this.#loadedVersions;
    this.#tlsVersions = this.#loadedTlsVersions;
    this.clusters.configure(
      configuredClusters(config.services, this.#moduleVersions, this.#tlsVersions),
      this.#discoveredSettings(config.discovery?.kubernetes?.trafficPolicy),
    );
    this.#static = new StaticSource(this.registry, config.services);
    this.#static.start();
    if (config.discovery?.file !== undefined) {
      this.#fileSource = new FileSource(this.registry, config.discovery.file, {
        logger: this.#logger,
        parse: parseServicesText,
      });
      await this.#fileSource.start();
    }
    if (config.discovery?.kubernetes !== undefined)
      await this.#startKubernetes(config.discovery.kubernetes);
    try {
      this.#admin = new AdminServer(this, this.#logger, this.#options.onQuit);
      this.adminPort = await this.#admin.listen(config.admin.address, config.admin.port);
      this.#logger.info(
        { address: config.admin.address, port: this.adminPort },
        "admin API listening",
      );
      if (config.probes.port !== null) {
        // The app's HTTP probes the injector moved here arrive by env, as Istio passes them.
        const appProbers = parseAppProbers(process.env[APP_PROBERS_ENV], APP_PROBERS_ENV);
        this.#probes = new ProbeServer(this, appProbers);
        this.probesPort = await this.#probes.listen(config.probes.address, config.probes.port);
        this.#logger.info(
          { address: config.probes.address, port: this.probesPort, appProbes: appProbers.size },
          "probes listening",
        );
      }
      if (this.metrics !== undefined && config.metrics.port !== null) {
        const { address, port } = config.metrics;
        this.metricsPort = await this.metrics.listen(address, port);
        this.#logger.info({ address, port: this.metricsPort }, "metrics listening");
      }
      for (const listener of config.listeners) {
        this.#serveListener(await this.#bindListener(listener));
      }
    } catch (error) {
      await this.stop();
      throw error;
    }
    this.#started = true;
    const file = this.#options.configFile;
    if (file !== undefined) {
      const flags = file.flags;
      this.#reloader = new ConfigReloader(this, file.path, {
        logger: this.#logger,
        load: flags === undefined ? undefined : (path) => loadConfig(path, flags),
      });
      this.#reloader.start(file.text);
    }
  }

  /**
   * Apply a validated config (see reload.ts for what applies live and in which order); never
   * rejects. Reloads run one at a time.
   */
  reload(loaded: LoadedConfig): Promise<ReloadOutcome> {
    const attempt = this.#reloading.then(() => applyReload(this.#reloadTarget, loaded.config));
    this.#reloading = attempt.catch(() => {});
    return attempt;
  }

  /** Re-read the config file (SIGHUP, POST /reload); without one (quick mode), nothing to do. */
  reloadConfigFile(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    if (this.#reloader !== undefined) return this.#reloader.reload(trigger);
    const why = this.#started
      ? "nothing to reload: started without a config file"
      : "not reloading: still starting";
    this.#logger.info({ trigger }, why);
    return Promise.resolve({ result: "skipped", hash: this.reloads.hash, error: why });
  }

  /** The running proxy as reload.ts sees it. */
  readonly #reloadTarget: ReloadTarget<RunningListener> = (() => {
    const runtime = this;
    return {
      get config() {
        return runtime.#config;
      },
      get reloads() {
        return runtime.reloads;
      },
      get logger() {
        return runtime.#logger;
      },
      get draining() {
        return runtime.#draining;
      },
      boundPort: (name) => runtime.#running.get(name)?.bound.port,
      bindListener: (config) => runtime.#bindListener(config),
      discardListener: (listener) => {
        listener.server.close();
        listener.app?.close();
      },
      serveListener: (listener) => runtime.#serveListener(listener),
      retireListener: (name) => runtime.#retireListener(name),
      readDiscovery: (path) => readServicesFile(path, parseServicesText),
      configureAccessLog: (settings) => runtime.accessLog.configure(settings),
      prepareServices: (services, discovered) => runtime.#prepareServices(services, discovered),
      compilePolicies: (policies) => compilePolicies(policies),
      applyPolicies: (authorizer) => {
        runtime.policies.current = authorizer;
      },
      applyServices: (services, discovered) => {
        runtime.#static?.update(services);
        runtime.#moduleVersions = runtime.#loadedVersions;
        runtime.#tlsVersions = runtime.#loadedTlsVersions;
        runtime.clusters.configure(
          configuredClusters(services, runtime.#moduleVersions, runtime.#tlsVersions),
          runtime.#discoveredSettings(discovered),
        );
      },
      switchDiscovery: (path, contents) => runtime.#switchDiscovery(path, contents),
      setConfig: (config) => {
        runtime.#config = config;
        runtime.overload.configure(config.overload);
        const order = config.listeners.map((l) => l.name);
        runtime.listeners.sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
      },
    };
  })();

  /** Cluster settings of `discovery.kubernetes.trafficPolicy`; undefined (the defaults) when unset. */
  #discoveredSettings(policy: DiscoveredTrafficPolicy): ClusterSettings | undefined {
    const [service] = policyService(this.#serviceDefaults, policy);
    return service && clusterSettings(service, this.#moduleVersions, this.#tlsVersions);
  }

  /** Bind a listener's sockets; it serves connections from then on. */
  async #bindListener(listener: ListenerConfig): Promise<RunningListener> {
    let server: Listener;
    let inbound: Cluster | undefined;
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
        observer: this.metrics?.exchanges,
        overload: this.overload,
      });
    } else {
      let route: (authority: string) => Cluster | undefined;
      let unrouted: ((authority: string) => ErrorCode) | undefined;
      if (listener.kind === "outbound") {
        // One router for every outbound listener: each subscribes to cluster changes for good,
        // and listeners come and go with reloads.
        this.#router ??= new HostRouter(
          this.clusters,
          this.#options.namespace ?? process.env.POD_NAMESPACE ?? "default",
          this.kubernetes,
        );
        const router = this.#router;
        const passthrough = this.#outboundPassthrough();
        if (passthrough === undefined) {
          route = (authority) => router.resolve(authority);
          unrouted = (authority) => router.unrouted(authority);
        } else {
          // An ExternalName service keeps its own answer; any other unknown host is the
          // outboundTrafficPolicy's (passed through, or refused).
          route = (authority) =>
            router.resolve(authority) ??
            (router.unrouted(authority) === "REMORA_ERR_NO_ROUTE"
              ? passthrough.route(authority)
              : undefined);
          unrouted = (authority) => {
            const own = router.unrouted(authority);
            return own === "REMORA_ERR_NO_ROUTE" ? passthrough.unrouted(authority) : own;
          };
        }
      } else {
        const app = appCluster(listener.name, listener.app, this.#defaults);
        inbound = app;
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
        unrouted,
        inbound: listener.kind === "inbound",
        tls: this.#inboundTls(listener),
        logger: this.#logger,
        policies: listener.kind === "inbound" ? this.policies : undefined,
        overload: this.overload,
      });
    }
    let bound: { address: string; port: number };
    try {
      bound = await server.listen();
    } catch (error) {
      inbound?.close();
      throw error;
    }
    return {
      config: listener,
      server,
      bound: { name: listener.name, kind: listener.kind, address: bound.address, port: bound.port },
      app: inbound,
    };
  }

  /** The outbound listeners' policy for hosts no service claims; shared by every outbound listener. */
  #outboundPassthrough(): OutboundPassthrough | undefined {
    const policy = this.#config.outboundTrafficPolicy;
    if (policy === undefined) return undefined;
    this.#passthrough ??= new OutboundPassthrough({
      mode: policy.mode,
      settings: this.#defaults,
      ownPorts: () => this.#ownPorts(),
    });
    return this.#passthrough;
  }

  /** Every port this proxy has bound: passthrough never connects to one of them. */
  #ownPorts(): Set<number> {
    const ports = new Set<number>(this.listeners.map((listener) => listener.port));
    for (const port of [this.adminPort, this.probesPort, this.metricsPort]) {
      if (typeof port === "number" && port !== 0) ports.add(port);
    }
    for (const listener of this.#config.listeners)
      if (listener.port !== 0) ports.add(listener.port);
    return ports;
  }

  /** Start the watches (loaded on demand: undici); the source is synced once all have listed. */
  async #startKubernetes(settings: KubernetesDiscoveryConfig): Promise<void> {
    const { KubernetesSource } = await import("../discovery/kubernetes/source.js");
    const source = new KubernetesSource(this.registry, {
      kubeconfig: settings.kubeconfig,
      namespaces: settings.namespaces,
      clusterDomain: settings.clusterDomain,
      resyncMs: settings.resync,
      idleRefreshMs: settings.idleRefresh,
      namespace: this.#options.namespace ?? process.env.POD_NAMESPACE,
      logger: this.#logger,
    });
    this.kubernetes = source;
    await source.start();
    if (this.metrics !== undefined) {
      const { registerKubernetesMetrics } = await import("./metrics/kubernetes.js");
      registerKubernetesMetrics(this.metrics.registry, source);
    }
  }

  /** An inbound listener's mTLS termination; the schema guarantees the identity when needed. */
  #inboundTls(listener: ListenerConfig): HttpListenerOptions["tls"] {
    if (listener.kind !== "inbound" || listener.tls.mode === "DISABLE") return undefined;
    const identity = this.identity;
    if (identity === undefined) throw new Error(`listener ${listener.name}: tls needs an identity`);
    return { mode: listener.tls.mode, identity };
  }

  /** List a bound listener under its name (admin /listeners; drain and stop reach it). */
  #serveListener(listener: RunningListener): void {
    // After a rebound listener's old self retired (reload.ts retires before it serves).
    this.metrics?.addListener(listener.config.name, listener.config.kind, listener.server);
    this.#servers.push(listener.server);
    this.#running.set(listener.config.name, listener);
    this.listeners.push(listener.bound);
    if (listener.app !== undefined) this.appClusters.push(listener.app);
    const { name, kind, address, port } = listener.bound;
    this.#logger.info({ listener: name, kind, address, port }, "listener ready");
  }

  /**
   * A listener a reload removed or rebound: it stops accepting now, its connections finish
   * (HTTP ones close after their current exchange), and it closes once they are gone or after
   * the drain time, whichever comes first.
   */
  #retireListener(name: string): void {
    const listener = this.#running.get(name);
    if (listener === undefined) return;
    this.#running.delete(name);
    this.metrics?.removeListener(name);
    remove(this.listeners, listener.bound);
    if (listener.app !== undefined) remove(this.appClusters, listener.app);
    listener.server.drain();
    this.#logger.info(
      { listener: name, port: listener.bound.port, connections: listener.server.connections },
      "listener draining",
    );
    const deadline = Date.now() + (this.#options.drainMs ?? 5000);
    const timer = setInterval(() => {
      if (listener.server.connections > 0 && Date.now() < deadline) return;
      clearInterval(timer);
      this.#retiring.delete(timer);
      const cut = listener.server.connections;
      listener.server.close();
      listener.app?.close();
      remove(this.#servers, listener.server);
      this.#logger.info({ listener: name, connectionsClosed: cut }, "listener closed");
    }, 100);
    timer.unref();
    this.#retiring.set(timer, listener);
  }

  /** A reload changed `discovery.file`: the new source publishes first, then the old withdraws. */
  #switchDiscovery(path: string | undefined, contents: ServicesFileContents | undefined): void {
    const old = this.#fileSource;
    this.#fileSource = undefined;
    if (path !== undefined && contents !== undefined) {
      const source = new FileSource(this.registry, path, {
        logger: this.#logger,
        parse: parseServicesText,
      });
      try {
        source.startFrom(contents);
        this.#fileSource = source;
      } catch (error) {
        this.registry.removeSource(source.id);
        this.#logger.error({ err: error, path }, "discovery file cannot be watched; not used");
      }
    }
    if (old !== undefined) {
      old.stop();
      this.registry.removeSource(old.id);
    }
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
    this.#reloader?.stop();
    this.overload.stop();
    for (const [timer, listener] of this.#retiring) {
      clearInterval(timer);
      listener.app?.close();
    }
    this.#retiring.clear();
    for (const server of this.#servers) server.close();
    this.#servers = [];
    this.#fileSource?.stop();
    this.#devIdentity?.close();
    await this.kubernetes?.stop();
    this.identity?.close();
    this.clusters.close();
    this.#passthrough?.close();
    for (const app of this.appClusters) app.close();
    await this.#probes?.close();
    await this.#admin?.close();
    await this.accessLog.close();
    await this.metrics?.close();
  }
}

/** Configured services' cluster settings, keyed "name.namespace" (ClusterManager.configure). */
function configuredClusters(
  services: readonly ServiceConfig[],
  modules: Readonly<Record<string, string>>,
  tlsVersions: TlsFileVersions,
): Map<string, ClusterSettings & { name: string; namespace: string }> {
  const configured = new Map<string, ClusterSettings & { name: string; namespace: string }>();
  for (const service of services) {
    configured.set(`${service.name}.${service.namespace}`, {
      ...clusterSettings(service, modules, tlsVersions),
      name: service.name,
      namespace: service.namespace,
    });
  }
  return configured;
}

/** A traffic policy as a service of the schema's defaults, or none when unset. */
function policyService(defaults: ServiceConfig, policy: DiscoveredTrafficPolicy): ServiceConfig[] {
  return policy === undefined ? [] : [{ ...defaults, trafficPolicy: policy }];
}

function remove<T>(list: T[], item: T): void {
  const at = list.indexOf(item);
  if (at !== -1) list.splice(at, 1);
}

/** The inbound listener's one destination: the local application. */
function appCluster(listenerName: string, app: string, defaults: ClusterSettings): Cluster {
  const { host, port } = parseAddress(app);
  // Istio's inbound path does not retry: the app is the only endpoint, and it answered.
  const settings = { ...defaults, retry: { ...defaults.retry, attempts: 0 } };
  const cluster = new Cluster(listenerName, "inbound", settings, `inbound|${port}|${listenerName}`);
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
