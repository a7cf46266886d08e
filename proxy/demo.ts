import { mkdir, writeFile } from "node:fs/promises";
import type { Server } from "node:http";
import { type AddressInfo, createServer as createTcpServer } from "node:net";
import { join } from "node:path";
import { devIdentityPaths } from "../tls/dev-state.js";
import { type LoadedConfig, loadConfig } from "./config/isolated.js";
import { http } from "./node-http.js";

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
    const server = http.createServer((req, res) => {
      served++;
      const body = `${JSON.stringify(
        {
          backend: name,
          method: req.method,
          path: req.url,
          host: req.headers.host,
          "x-forwarded-for": req.headers["x-forwarded-for"],
          "x-request-id": req.headers["x-request-id"],
          // Set by an inbound mTLS listener: who called (the demo's `secure` service).
          "x-forwarded-client-cert": req.headers["x-forwarded-client-cert"],
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

/** The demo's mTLS identity: the dev CA's service account `demo` in namespace `default`. */
export const DEMO_IDENTITY = "spiffe://cluster.local/ns/default/sa/demo";

export interface DemoPorts {
  /** The outbound listener (the app's side). */
  readonly port: number;
  readonly adminPort: number;
  /** The inbound STRICT listener that `secure` reaches over mTLS. */
  readonly inboundPort: number;
}

/**
 * The demo's config, written as a file a newcomer can read (and copy): `hello` with the backends
 * as endpoints, and `secure`, the same first backend behind this remora's own inbound listener,
 * reached over mTLS (ISTIO_MUTUAL) with a dev-mode identity. One process plays both sidecars, so
 * the one command shows origination, termination and x-forwarded-client-cert.
 */
export function demoConfigText(ports: DemoPorts, backends: string[], stateDir: string): string {
  const endpoints = backends.map((b) => `      - address: ${b}`).join("\n");
  return `# Written by \`remora demo\`; remora reads it like any config (docs/config.md).
admin: { port: ${ports.adminPort} }
probes: { port: null }
metrics: { port: null }
# Dev mode: a local CA under stateDir and this workload's certificate (docs/security.md#dev-mode).
tls: { dev: true, serviceAccount: demo, stateDir: ${JSON.stringify(stateDir)} }
listeners:
  - { name: outbound, kind: outbound, port: ${ports.port} }
  # What a peer's sidecar would call: mTLS only, then plaintext to the app on loopback.
  - name: inbound
    kind: inbound
    address: 127.0.0.1
    port: ${ports.inboundPort}
    app: ${backends[0]}
    tls: { mode: STRICT }
services:
  - name: hello
    endpoints:
${endpoints}
  - name: secure
    endpoints:
      - address: 127.0.0.1:${ports.inboundPort}
    trafficPolicy:
      tls: { mode: ISTIO_MUTUAL, subjectAltNames: [${DEMO_IDENTITY}] }
`;
}

/** Writes the demo's config under `stateDir/demo/` and loads it as `remora run -c` would. */
export async function demoConfig(
  ports: DemoPorts,
  backends: string[],
  stateDir: string,
): Promise<{ loaded: LoadedConfig; path: string }> {
  const dir = join(stateDir, "demo");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const path = join(dir, "remora-demo.yaml");
  await writeFile(path, demoConfigText(ports, backends, stateDir));
  return { loaded: await loadConfig(path), path };
}

/**
 * A free loopback port for the inbound listener when the caller asked for any (`0`): `secure`'s
 * endpoint must name it before the listener binds. (Another process could take it in between;
 * the demo then fails to start with EADDRINUSE, which says so.)
 */
export async function freePort(): Promise<number> {
  const server = createTcpServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export function demoBanner(
  ports: DemoPorts,
  backends: string[],
  stateDir: string,
  configPath: string,
): string {
  const { port, adminPort, inboundPort } = ports;
  const admin = `http://127.0.0.1:${adminPort}`;
  const files = devIdentityPaths(stateDir, "default", "demo");
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
    `mTLS (dev mode; CA in ${files.caDir}, this remora is ${DEMO_IDENTITY}):`,
    "service `secure` is hello-v1 behind this remora's own STRICT inbound listener, reached over mTLS",
    `  curl -H 'Host: secure' http://127.0.0.1:${port}/   # the app sees x-forwarded-client-cert: ...;URI=${DEMO_IDENTITY}`,
    `  curl -k https://127.0.0.1:${inboundPort}/          # refused at the handshake: no client certificate`,
    `  curl -k --cert ${files.certFile} --key ${files.keyFile} https://127.0.0.1:${inboundPort}/`,
    "                                         # accepted: a certificate from the dev CA (-k: it names a SPIFFE ID, not a host)",
    `  remora run --dev-mtls ...              # any remora with --dev-mtls trusts this CA (docs/security.md#dev-mode)`,
    "",
    `The config: ${configPath}`,
    "",
    "Press Ctrl-C to stop.",
    "",
  ].join("\n");
}
