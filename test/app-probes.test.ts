/**
 * The app probes the injector moved behind the probe port: a real remora process, given
 * REMORA_KUBE_APP_PROBERS as an injected sidecar is, asks the app on the kubelet's behalf. And the
 * classic sidecar's `remora hook post-start` waiting on that port.
 */
import { execFile } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, type HttpBackend, httpBackend, type SpawnedRemora, spawnRemora } from "./harness.js";

let app: HttpBackend;
let remora: SpawnedRemora;
let probePort: number;
let config: string;

function run(args: string[], env: NodeJS.ProcessEnv = process.env) {
  return new Promise<{ code: number; stderr: string }>((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env }, (error, _stdout, stderr) =>
      resolve({ code: error ? Number(error.code) : 0, stderr }),
    );
  });
}

beforeAll(async () => {
  app = await httpBackend((req, res) => {
    if (req.url === "/ok") res.writeHead(200).end("fine, and a body the kubelet never sees");
    else if (req.url === "/fail") res.writeHead(500).end("broken");
    else if (req.url === "/header")
      res.writeHead(req.headers["x-probe"] === "kubelet" ? 204 : 418).end();
    else res.writeHead(404).end();
  });
  const dir = await mkdtemp(join(tmpdir(), "remora-app-probes-"));
  config = join(dir, "remora.yaml");
  await writeFile(
    config,
    `admin: { port: 0 }
probes: { port: 0, address: 127.0.0.1 }
metrics: { port: null }
listeners: [{ name: out, kind: outbound, port: 0 }]
services: [{ name: hello, endpoints: [{ address: "${app.address}" }] }]
`,
  );
  const probers = {
    "/app-health/web/livez": { httpGet: { path: "/ok", port: app.port, scheme: "HTTP" } },
    "/app-health/web/readyz": { httpGet: { path: "/fail", port: app.port, scheme: "HTTP" } },
    "/app-health/web/startupz": {
      httpGet: {
        path: "/header",
        port: app.port,
        scheme: "HTTP",
        httpHeaders: [{ name: "X-Probe", value: "kubelet" }],
      },
      timeoutSeconds: 2,
    },
    // Port 9 (discard) on loopback: nothing listens.
    "/app-health/gone/livez": {
      httpGet: { path: "/", port: 9, scheme: "HTTP" },
      timeoutSeconds: 1,
    },
  };
  process.env.REMORA_KUBE_APP_PROBERS = JSON.stringify(probers);
  try {
    remora = await spawnRemora(["run", "-c", config]);
  } finally {
    delete process.env.REMORA_KUBE_APP_PROBERS;
  }
  const line = remora
    .stderr()
    .split("\n")
    .find((l) => l.includes('"probes listening"'))!;
  expect(JSON.parse(line).appProbes).toBe(4);
  probePort = JSON.parse(line).port;
});

afterAll(async () => {
  await remora?.stop("SIGKILL");
  await app?.close();
});

describe("app probes on the probe port", () => {
  const probe = (path: string, method = "GET") =>
    fetch(`http://127.0.0.1:${probePort}${path}`, { method });

  it("passes the app's status through, without its body", async () => {
    const live = await probe("/app-health/web/livez");
    expect(live.status).toBe(200);
    expect(await live.text()).toBe("");
    expect((await probe("/app-health/web/readyz")).status).toBe(500);
  });

  it("sends the probe's headers", async () => {
    expect((await probe("/app-health/web/startupz")).status).toBe(204);
  });

  it("answers 503 when the app does not answer, 404 for unknown probes, 405 for other methods", async () => {
    const gone = await probe("/app-health/gone/livez");
    expect(gone.status).toBe(503);
    expect(await gone.text()).toBe("the app did not answer the probe\n");
    expect((await probe("/app-health/web/other")).status).toBe(404);
    expect((await probe("/app-health/web/livez", "POST")).status).toBe(405);
    // The proxy's own readiness is still there.
    expect((await probe("/healthz/ready")).status).toBe(200);
  });

  it("refuses to start on a malformed REMORA_KUBE_APP_PROBERS, naming it", async () => {
    const env = {
      ...process.env,
      REMORA_KUBE_APP_PROBERS: '{"/app-health/web/livez":{"httpGet":{"path":"/","port":"http"}}}',
    };
    const res = await run(["run", "-c", config], env);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(
      'remora: REMORA_KUBE_APP_PROBERS: "/app-health/web/livez": httpGet.port: expected a port number 1-65535',
    );
  });
});

describe("remora hook post-start", () => {
  it("returns 0 once the probe port says ready", async () => {
    expect(await run(["hook", "post-start", "--probe-port", String(probePort)])).toEqual({
      code: 0,
      stderr: "",
    });
  });

  it("gives up with exit 1 when nothing becomes ready", async () => {
    const res = await run(["hook", "post-start", "--probe-port", "9", "--timeout", "300ms"]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(
      /^remora hook post-start: http:\/\/127.0.0.1:9\/healthz\/ready not ready after 300 ms/,
    );
  });
});
