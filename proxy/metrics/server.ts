import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { closeServer, listenOn, sendText } from "../control-http.js";
import { http } from "../node-http.js";
import { CONTENT_TYPE } from "./contract.js";

/** What the scrape endpoints read: RuntimeMetrics, or undefined when metrics are disabled. */
export interface Exposition {
  expositionChunks(): Promise<Buffer[]>;
}

export const PROMETHEUS_PATH = "/stats/prometheus";

/** Answer a scrape (admin API and metrics listener alike). */
export async function servePrometheus(
  res: ServerResponse,
  metrics: Exposition | undefined,
): Promise<void> {
  let chunks: Buffer[];
  try {
    chunks =
      metrics === undefined
        ? [Buffer.from("# remora: metrics are disabled (metrics.enabled: false)\n")]
        : await metrics.expositionChunks();
  } catch (error) {
    const text = `metrics failed: ${(error as Error).message}\n`;
    res.writeHead(500, { "content-type": "text/plain; charset=utf-8" });
    res.end(text);
    return;
  }
  let length = 0;
  for (const chunk of chunks) length += chunk.length;
  res.writeHead(200, { "content-type": CONTENT_TYPE, "content-length": length });
  for (const chunk of chunks) res.write(chunk);
  res.end();
}

/**
 * The listener Prometheus scrapes (Istio's 15090): `GET /stats/prometheus` and nothing else, so
 * exposing it beyond loopback never exposes the admin API. Not on the hot path: node:http.
 */
export class MetricsServer {
  readonly #server: Server;

  constructor(metrics: Exposition) {
    this.#server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
      const path = (req.url ?? "/").split("?")[0];
      if (path !== PROMETHEUS_PATH) {
        sendText(res, 404, `not found; scrape GET ${PROMETHEUS_PATH}\n`);
      } else if (req.method !== "GET") {
        sendText(res, 405, "method not allowed\n");
      } else {
        void servePrometheus(res, metrics);
      }
    });
  }

  listen(address: string, port: number): Promise<number> {
    return listenOn(this.#server, address, port);
  }

  close(): Promise<void> {
    return closeServer(this.#server);
  }
}
