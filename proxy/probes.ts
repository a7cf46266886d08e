import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { APP_HEALTH_PREFIX, type AppProbers, probeApp } from "./app-probes.js";
import { closeServer, listenOn, sendText } from "./control-http.js";
import { http } from "./node-http.js";

/** What the probe answers from: the runtime's readiness, read per request. */
export interface Readiness {
  readonly ready: boolean;
  readonly draining: boolean;
}

/**
 * The kubelet's port (Istio's 15021): `GET /healthz/ready` answers like the admin API's /ready,
 * and nothing else is served, so exposing it on every interface reveals no admin function.
 * Besides, `GET /app-health/<container>/livez|readyz|startupz` asks the app on the kubelet's
 * behalf when the injector moved the app's HTTP probes here (proxy/app-probes.ts).
 * node:http: it is probed every few seconds, never on the hot path.
 */
export class ProbeServer {
  readonly #readiness: Readiness;
  readonly #appProbers: AppProbers;
  readonly #server: Server;

  constructor(readiness: Readiness, appProbers: AppProbers = new Map()) {
    this.#readiness = readiness;
    this.#appProbers = appProbers;
    this.#server = http.createServer(this.#handle);
    // Probes open a connection per check; keep none of them around.
    this.#server.keepAliveTimeout = 1000;
  }

  listen(address: string, port: number): Promise<number> {
    return listenOn(this.#server, address, port);
  }

  close(): Promise<void> {
    return closeServer(this.#server);
  }

  #handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? "/").split("?")[0]!;
    if (path.startsWith(APP_HEALTH_PREFIX)) this.#probeApp(path, req, res);
    else if (path !== "/healthz/ready") sendText(res, 404, "not found; try GET /healthz/ready\n");
    else if (req.method !== "GET" && req.method !== "HEAD")
      sendText(res, 405, "method not allowed\n");
    else sendText(res, ...readinessReply(this.#readiness));
  };

  /** The app's status code passes through with an empty body, as Istio's agent answers. */
  #probeApp(path: string, req: IncomingMessage, res: ServerResponse): void {
    const prober = this.#appProbers.get(path);
    if (prober === undefined) sendText(res, 404, "no such app probe\n");
    else if (req.method !== "GET" && req.method !== "HEAD")
      sendText(res, 405, "method not allowed\n");
    else
      void probeApp(prober).then((status) => {
        if (status === undefined) sendText(res, 503, "the app did not answer the probe\n");
        else res.writeHead(status, { "content-length": 0 }).end();
      });
  }
}

/** The status and body of /ready and /healthz/ready (admin API and probe port alike). */
export function readinessReply(readiness: Readiness): [status: number, body: string] {
  if (readiness.ready) return [200, "LIVE\n"];
  return [503, readiness.draining ? "DRAINING\n" : "NOT READY\n"];
}
