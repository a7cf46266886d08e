/**
 * What the node:http servers beside the data path share: the admin API, the probe listener and
 * the metrics listener. None of them is on the hot path, so they use node:http.
 */
import type { Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** Bind `server`; resolves with the bound port (port 0 picks a free one), rejects on EADDRINUSE. */
export function listenOn(server: Server, address: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: address, port }, () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Stop accepting and cut open connections (a scrape or probe in flight is not worth waiting for). */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** A plain-text answer with an exact length. */
export function sendText(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    "content-type": "text/plain; charset=utf-8",
    "content-length": Buffer.byteLength(body),
  });
  res.end(body);
}

/** A JSON answer, indented for people reading it with curl. */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const payload = `${JSON.stringify(body, null, 2)}\n`;
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(payload),
  });
  res.end(payload);
}
