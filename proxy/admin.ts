import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Cluster } from "./cluster.js";
import type { Logger } from "./log.js";
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
    this.#server = createServer(this.#handle);
  }

  listen(address: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once("error", reject);
      this.#server.listen({ host: address, port }, () => {
        this.#server.off("error", reject);
        resolve((this.#server.address() as AddressInfo).port);
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  #handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? "/").split("?")[0];
    const method = req.method ?? "GET";
    const route = `${method} ${path}`;
    this.#logger.debug({ method, url: req.url }, "admin request");
    switch (route) {
      case "GET /ready":
      case "GET /healthz/ready": {
        const ready = this.#runtime.ready;
        text(
          res,
          ready ? 200 : 503,
          ready ? "LIVE\n" : this.#runtime.draining ? "DRAINING\n" : "NOT READY\n",
        );
        return;
      }
      case "GET /healthz":
        text(res, 200, "OK\n");
        return;
      case "GET /listeners":
        json(res, 200, this.#runtime.listeners);
        return;
      case "GET /clusters":
        json(res, 200, this.#clusters());
        return;
      case "GET /config_dump":
        json(res, 200, this.#runtime.config);
        return;
      case "GET /stats":
        json(res, 200, {
          exchanges: this.#runtime.counters.total,
          responseFlags: Object.fromEntries(this.#runtime.counters.counts),
          downstreamConnections: this.#runtime.connections,
          accessLog: this.#runtime.accessLog.stats(),
        });
        return;
      case "GET /logging":
        json(res, 200, { level: this.#logger.level, levels: LOG_LEVELS });
        return;
      case "POST /logging":
        this.#setLogLevel(req, res);
        return;
      case "POST /drain":
        this.#runtime.drain();
        text(res, 200, "draining\n");
        return;
      case "POST /quitquitquit":
        text(res, 200, "bye\n");
        this.#logger.info("quit requested via admin API");
        res.on("finish", () => this.#onQuit?.());
        return;
      default:
        if (ROUTES.has(path ?? "")) text(res, 405, "method not allowed\n");
        else text(res, 404, `unknown admin path ${path}; try GET /ready, /clusters, /listeners\n`);
    }
  };

  /** Envoy's `POST /logging?level=...`: the process log level, changed at run time. */
  #setLogLevel(req: IncomingMessage, res: ServerResponse): void {
    const level = new URL(req.url ?? "/", "http://admin").searchParams.get("level");
    if (level === null || !(LOG_LEVELS as readonly string[]).includes(level)) {
      const got = level === null ? "no level" : `unknown level ${JSON.stringify(level)}`;
      text(res, 400, `${got}: expected ?level= one of ${LOG_LEVELS.join(", ")}\n`);
      return;
    }
    const previous = this.#logger.level;
    // Logged under the old level: whoever reads the logs as they were sees the change.
    this.#logger.info({ from: previous, to: level }, "log level changed via admin API");
    this.#logger.level = level;
    json(res, 200, { level, previous });
  }

  #clusters(): object[] {
    const out: object[] = [];
    for (const cluster of this.#runtime.clusters.all()) out.push(describe(cluster));
    for (const cluster of this.#runtime.appClusters) out.push(describe(cluster));
    return out;
  }
}

/** pino's levels, most verbose first; "silent" logs nothing. */
const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;

const ROUTES = new Set([
  "/logging",
  "/ready",
  "/healthz/ready",
  "/healthz",
  "/listeners",
  "/clusters",
  "/config_dump",
  "/stats",
  "/drain",
  "/quitquitquit",
]);

function describe(cluster: Cluster): object {
  const byClass = cluster.stats.byClass;
  return {
    name: cluster.key,
    policy: cluster.settings.policy,
    activeRequests: cluster.stats.active,
    requests: cluster.stats.requests,
    responses: {
      reset: byClass[0],
      "1xx": byClass[1],
      "2xx": byClass[2],
      "3xx": byClass[3],
      "4xx": byClass[4],
      "5xx": byClass[5],
    },
    endpoints: cluster.endpoints.map((e) => ({
      address: e.id,
      weight: e.weight,
      labels: e.labels,
      health: e.ready
        ? { status: "HEALTHY", flags: [] }
        : { status: "UNHEALTHY", flags: [{ source: "discovery", reason: "endpoint not ready" }] },
      connections: cluster.poolStats(e.id),
    })),
  };
}

function text(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const payload = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(payload),
  });
  res.end(payload);
}
