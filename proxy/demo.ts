import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { buildQuickConfig, type LoadedConfig } from "./config/isolated.js";

export interface DemoBackends {
  readonly addresses: string[];
  close(): Promise<void>;
}

/**
 * Small HTTP backends for `remora demo`: each answers with its own name, the path and the
 * headers the proxy added, so round-robin and X-Forwarded-* are visible from curl.
 */
export async function startDemoBackends(count: number): Promise<DemoBackends> {
  const servers: Server[] = [];
  const addresses: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `hello-v${i + 1}`;
    const server = createServer((req, res) => {
      const body = `${JSON.stringify(
        {
          backend: name,
          method: req.method,
          path: req.url,
          host: req.headers.host,
          "x-forwarded-for": req.headers["x-forwarded-for"],
          "x-request-id": req.headers["x-request-id"],
        },
        null,
        2,
      )}\n`;
      res.writeHead(200, { "content-type": "application/json" });
      res.end(body);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    servers.push(server);
    addresses.push(`127.0.0.1:${(server.address() as AddressInfo).port}`);
  }
  return {
    addresses,
    close: async () => {
      await Promise.all(
        servers.map((s) => new Promise((resolve) => s.close(resolve)).then(() => undefined)),
      );
    },
  };
}

/** The demo's config: `hello` with the backends as endpoints. */
export function demoConfig(
  port: number,
  adminPort: number,
  backends: string[],
): Promise<LoadedConfig> {
  return buildQuickConfig({ listen: port, adminPort, services: [`hello=${backends.join(",")}`] });
}

export function demoBanner(port: number, adminPort: number, backends: string[]): string {
  return [
    "",
    "remora demo is running: service `hello` has endpoints",
    ...backends.map((b) => `  ${b}`),
    "",
    "Try (each request goes to the next endpoint, round-robin):",
    `  curl -H 'Host: hello' http://127.0.0.1:${port}/greeting`,
    `  curl -x http://127.0.0.1:${port} http://hello.default.svc.cluster.local/any/path`,
    `  curl -H 'Host: nope' http://127.0.0.1:${port}/            # 404: no route`,
    `  curl http://127.0.0.1:${adminPort}/clusters                # endpoints and counters`,
    `  curl http://127.0.0.1:${adminPort}/ready`,
    "",
    "Press Ctrl-C to stop.",
    "",
  ].join("\n");
}
