import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { buildQuickConfig, type LoadedConfig } from "./config/isolated.js";

export interface DemoBackends {
  readonly addresses: string[];
  close(): Promise<void>;
}

/**
 * Small HTTP backends for `remora demo`: each answers with its own name, the path and the
 * headers the proxy added, so round-robin and X-Forwarded-* are visible from curl. With
 * `flaky`, one more backend fails on a fixed pattern (FLAKY_PATTERN), so a newcomer sees errors,
 * response flags and unhealthy traffic in the dashboard, /clusters and the metrics.
 */
export async function startDemoBackends(count: number, flaky = false): Promise<DemoBackends> {
  const servers: Server[] = [];
  const addresses: string[] = [];
  const total = count + (flaky ? 1 : 0);
  for (let i = 0; i < total; i++) {
    const name = `hello-v${i + 1}`;
    const fails = flaky && i === count;
    let served = 0;
    const server = createServer((req, res) => {
      served++;
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
      const outcome = fails ? FLAKY_PATTERN[(served - 1) % FLAKY_PATTERN.length]! : "ok";
      if (outcome === "503") {
        const text = `${name}: failing on purpose (every 2nd of 4 requests it receives)\n`;
        res.writeHead(503, {
          "content-type": "text/plain",
          "content-length": Buffer.byteLength(text),
        });
        res.end(text);
        return;
      }
      if (outcome === "reset") {
        // Cut the response off mid-body: no retry can hide it, the client sees a reset, and the
        // proxy flags it UC (upstream connection terminated).
        res.writeHead(200, {
          "content-type": "application/json",
          "content-length": Buffer.byteLength(body),
        });
        res.write(body.slice(0, 10), () => res.socket?.destroy());
        return;
      }
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

/**
 * What the flaky backend does with the Nth request it receives, cycling: deterministic, so the
 * demo test can count on it. Half of its requests fail; with round-robin over three backends,
 * one request in six through `hello`.
 */
export const FLAKY_PATTERN = ["ok", "503", "ok", "reset"] as const;

/** The demo's config: `hello` with the backends as endpoints. */
export function demoConfig(
  port: number,
  adminPort: number,
  backends: string[],
): Promise<LoadedConfig> {
  return buildQuickConfig({ listen: port, adminPort, services: [`hello=${backends.join(",")}`] });
}

export function demoBanner(port: number, adminPort: number, backends: string[]): string {
  const admin = `http://127.0.0.1:${adminPort}`;
  return [
    "",
    `remora demo is running on Node.js ${process.version}: service \`hello\` has endpoints`,
    ...backends.map(
      (b, i) =>
        `  ${b}${i === backends.length - 1 ? "   (fails on purpose: every 4 requests, one 503, which remora retries elsewhere, and one reset mid-response)" : ""}`,
    ),
    "",
    `Dashboard: ${admin}/   (live: services, endpoints, rates, errors, latency)`,
    "",
    "Try (each request goes to the next endpoint, round-robin):",
    `  curl -H 'Host: hello' http://127.0.0.1:${port}/greeting`,
    `  curl -x http://127.0.0.1:${port} http://hello.default.svc.cluster.local/any/path`,
    `  curl -H 'Host: nope' http://127.0.0.1:${port}/            # 404: no route`,
    `  for i in $(seq 30); do curl -sS -o /dev/null -w '%{http_code} ' -H 'Host: hello' http://127.0.0.1:${port}/; done; echo`,
    `  npx remora status --admin ${admin}  # the same figures as a table`,
    `  curl ${admin}/clusters                # endpoints and counters`,
    `  curl ${admin}/ready`,
    "",
    "Press Ctrl-C to stop.",
    "",
  ].join("\n");
}
