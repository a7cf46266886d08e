import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { Endpoint } from "../discovery/endpoint.js";
import type { Cluster } from "./cluster.js";
import { redact } from "./config/redact.js";
import { closeServer, listenOn, sendJson, sendText } from "./control-http.js";
import { dashboardSnapshot } from "./dashboard.js";
import { sendDashboardPage } from "./dashboard-page.js";
import type { Logger } from "./log.js";
import { servePrometheus } from "./metrics/server.js";
import { http } from "./node-http.js";
import { readinessReply } from "./probes.js";
import type { Runtime } from "./runtime.js";

/**
 * The admin API (Envoy's and Istio's paths), bound to loopback by default. It is not on the hot
 * path, so it uses node:http.
 */
export class AdminServer {
  #runtime: Runtime;
  #logger: Logger;
  #onQuit: (() => void) | undefined;
  #server: Server;

  constructor(runtime: Runtime, logger: Logger, onQuit?: () => void) {
    this.#runtime = runtime;
    this.#logger = logger;
    this.#onQuit = onQuit;
    this.#server = http.createServer(this.#handle);
  }

  listen(address: string, port: number): Promise<number> {
    return listenOn(this.#server, address, port);
  }

  close(): Promise<void> {
    return closeServer(this.#server);
  }

  #handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? "/").split("?")[0];
    const method = req.method ?? "GET";
    const route = `${method} ${path}`;
    this.#logger.debug({ method, url: req.url }, "admin request");
    switch (route) {
      case "GET /ready":
      case "GET /healthz/ready":
        sendText(res, ...readinessReply(this.#runtime));
        return;
      case "GET /healthz":
        sendText(res, 200, "OK\n");
        return;
      case "GET /":
        sendDashboardPage(res);
        return;
      case "GET /dashboard.json":
        sendJson(res, 200, dashboardSnapshot(this.#runtime, describe));
        return;
      case "GET /listeners":
        sendJson(res, 200, this.#runtime.listeners);
        return;
      case "GET /clusters":
        sendJson(res, 200, this.#clusters());
        return;
      case "GET /config_dump":
        sendJson(res, 200, configDump(this.#runtime));
        return;
      case "POST /reload":
        void this.#runtime.reloadConfigFile("POST /reload").then((outcome) => {
          sendJson(res, RELOAD_STATUS[outcome.result], outcome);
        });
        return;
      case "GET /stats":
        sendJson(res, 200, {
          exchanges: this.#runtime.counters.total,
          responseFlags: Object.fromEntries(this.#runtime.counters.counts),
          downstreamConnections: this.#runtime.connections,
          accessLog: this.#runtime.accessLog.stats(),
        });
        return;
      case "GET /stats/prometheus":
        void servePrometheus(res, this.#runtime.metrics);
        return;
      case "GET /logging":
        sendJson(res, 200, { level: this.#logger.level, levels: LOG_LEVELS });
        return;
      case "POST /logging":
        this.#setLogLevel(req, res);
        return;
      case "POST /drain":
        this.#runtime.drain();
        sendText(res, 200, "draining\n");
        return;
      case "POST /quitquitquit":
        sendText(res, 200, "bye\n");
        this.#logger.info("quit requested via admin API");
        res.on("finish", () => this.#onQuit?.());
        return;
      default:
        if (ROUTES.has(path ?? "")) sendText(res, 405, "method not allowed\n");
        else
          sendText(res, 404, `unknown admin path ${path}; try GET /ready, /clusters, /listeners\n`);
    }
  };

  /** Envoy's `POST /logging?level=...`: the process log level, changed at run time. */
  #setLogLevel(req: IncomingMessage, res: ServerResponse): void {
    const level = new URL(req.url ?? "/", "http://admin").searchParams.get("level");
    if (level === null || !(LOG_LEVELS as readonly string[]).includes(level)) {
      const got = level === null ? "no level" : `unknown level ${JSON.stringify(level)}`;
      sendText(res, 400, `${got}: expected ?level= one of ${LOG_LEVELS.join(", ")}\n`);
      return;
    }
    const previous = this.#logger.level;
    // Logged under the old level: whoever reads the logs as they were sees the change.
    this.#logger.info({ from: previous, to: level }, "log level changed via admin API");
    this.#logger.level = level;
    sendJson(res, 200, { level, previous });
  }

  #clusters(): object[] {
    // Endpoints of Services nobody routed to yet may be held back (discovery/kubernetes/held-slices.ts).
    this.#runtime.kubernetes?.catchUp();
    const out: object[] = [];
    for (const cluster of this.#runtime.clusters.all()) out.push(describe(cluster));
    for (const cluster of this.#runtime.appClusters) out.push(describe(cluster));
    return out;
  }
}

/** pino's levels, most verbose first; "silent" logs nothing. */
const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

const ROUTES = new Set([
  "/",
  "/dashboard.json",
  "/logging",
  "/ready",
  "/healthz/ready",
  "/healthz",
  "/listeners",
  "/clusters",
  "/config_dump",
  "/stats",
  "/stats/prometheus",
  "/drain",
  "/quitquitquit",
  "/reload",
]);

/** POST /reload: applied or unchanged 200; invalid config 400; nothing to reload 409. */
const RELOAD_STATUS = { applied: 200, unchanged: 200, failed: 400, skipped: 409 } as const;

/** GET /config_dump: the applied config (secrets redacted), its hash and the reload counters. */
function configDump(runtime: Runtime): object {
  const reloads = runtime.reloads;
  return {
    hash: reloads.hash,
    appliedAt: new Date(reloads.appliedAtMs).toISOString(),
    reloads: {
      ok: reloads.ok,
      failed: reloads.failed,
      lastAttempt:
        reloads.lastAttemptMs === 0 ? null : new Date(reloads.lastAttemptMs).toISOString(),
      lastError: reloads.lastError === "" ? null : reloads.lastError,
    },
    config: redact(runtime.config),
  };
}

/**
 * An endpoint's health: UNHEALTHY with every flag (discovery's readiness, active checks, outlier
 * detection), each with its source, reason and until-when, else HEALTHY. The detail of each
 * health source comes along when it runs for the service.
 */
function healthOf(cluster: Cluster, endpoint: Endpoint) {
  const flags: { source: string; reason: string; until: string | null }[] = [];
  if (!endpoint.ready)
    flags.push({ source: "discovery", reason: "endpoint not ready", until: null });
  for (const flag of cluster.healthOf(endpoint.id)) {
    flags.push({
      source: flag.source,
      reason: flag.reason,
      until: flag.untilMs > 0 ? new Date(flag.untilMs).toISOString() : null,
    });
  }
  const outlier = cluster.outlierOf(endpoint.id);
  const check = cluster.checkOf(endpoint.id);
  return {
    status: flags.length === 0 ? "HEALTHY" : "UNHEALTHY",
    flags,
    ...(outlier === undefined
      ? {}
      : {
          outlier: {
            ejected: outlier.ejected,
            until: outlier.untilMs > 0 ? new Date(outlier.untilMs).toISOString() : null,
            ejections: outlier.ejections,
            probation: outlier.probation,
            reason: outlier.reason,
          },
        }),
    ...(check === undefined
      ? {}
      : {
          activeCheck: {
            healthy: check.healthy,
            consecutiveFailures: check.consecutiveFailures,
            consecutiveSuccesses: check.consecutiveSuccesses,
            lastError: check.lastError ?? null,
          },
        }),
  };
}

/** One cluster as /clusters shows it (the dashboard adds its last minute of traffic). */
export function describe(cluster: Cluster) {
  const byClass = cluster.stats.byClass;
  const all = cluster.hosts;
  const sets = cluster.hostSets();
  const selected = new Set(sets.flatMap((set) => set.selected.map((e) => e.id)));
  const counting = sets.map((set) => set.balancer).filter((b) => b.activeOn !== undefined);
  return {
    name: cluster.key,
    policy: cluster.settings.lb.policy,
    /** Upstream TLS origination (trafficPolicy.tls.mode), as `istioctl proxy-config cluster` shows it. */
    tls: cluster.settings.tls?.mode ?? "DISABLE",
    activeRequests: cluster.stats.active,
    requests: cluster.stats.requests,
    /** Retries started, and retries refused by the retry budget or maxRetries (flag UO). */
    retries: cluster.stats.retries,
    retriesRefused: cluster.stats.retriesRefused,
    responses: {
      reset: byClass[0],
      "1xx": byClass[1],
      "2xx": byClass[2],
      "3xx": byClass[3],
      "4xx": byClass[4],
      "5xx": byClass[5],
    },
    panic: all.panic,
    queued: all.balancer.queued ?? 0,
    subsets: sets.slice(1).map((set) => ({
      name: set.subset,
      labels: set.selector,
      policy: set.settings.policy,
      endpoints: set.selected.map((e) => e.id),
      panic: set.panic,
      queued: set.balancer.queued ?? 0,
    })),
    routes: cluster.settings.routes.length,
    endpoints: cluster.endpoints.map((e) => ({
      address: e.id,
      weight: e.weight,
      labels: e.labels,
      health: healthOf(cluster, e),
      /** Takes new requests: ready, healthy (or in panic) and weight above 0. */
      eligible: selected.has(e.id),
      // Only balancers that count requests per endpoint (least-request, first-come) know this.
      ...(counting.length === 0
        ? {}
        : { activeRequests: counting.reduce((sum, b) => sum + b.activeOn!(e.id), 0) }),
      connections: cluster.poolStats(e.id),
    })),
  };
}
