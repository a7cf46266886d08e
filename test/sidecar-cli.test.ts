/**
 * `remora sidecar` as a real process: the config comes from the environment (REMORA_APP_PORTS,
 * POD_NAMESPACE), discovery from the fake Kubernetes API through a kubeconfig, and a mounted
 * file merged over it (here it moves every port to an ephemeral one so tests never collide).
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FakeKubeApi,
  serviceObject,
  sliceObject,
} from "../discovery/kubernetes/testing/fake-api.js";
import { CLI, type HttpBackend, namedBackend, type SpawnedRemora, spawnRemora } from "./harness.js";

let api: FakeKubeApi;
let dir: string;
let web: HttpBackend;
let app: HttpBackend;
let remora: SpawnedRemora;
let overlay: string;

function get(port: number, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/", headers: { host } }, (res) => {
      let body = "";
      res.on("data", (chunk) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

function cli(args: string[], env: Record<string, string>) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...process.env, ...env } },
      (error, stdout, stderr) =>
        resolve({ code: error === null ? 0 : Number(error.code), stdout, stderr }),
    );
  });
}

beforeAll(async () => {
  web = await namedBackend("web");
  app = await namedBackend("app");
  api = new FakeKubeApi();
  await api.start();
  dir = mkdtempSync(join(tmpdir(), "remora-sidecar-"));
  const kubeconfig = join(dir, "kubeconfig");
  api.writeKubeconfig(kubeconfig);
  api.put(
    "services",
    serviceObject("web", "shop", [{ name: "http", port: 80, targetPort: "http" }], "198.19.0.12"),
  );
  api.put(
    "endpointslices",
    sliceObject("web-a", "shop", "web", [{ ip: "127.0.0.1", pod: "web-a" }], {
      name: "http",
      port: web.port,
    }),
  );
  overlay = join(dir, "sidecar.yaml");
  writeFileSync(
    overlay,
    `admin: { port: 0 }
probes: { port: null }
metrics: { port: null }
listeners:
  - { name: outbound, port: 0 }
  - { name: inbound-${app.port}, port: 0 }
`,
  );
  const saved = { ...process.env };
  process.env.REMORA_APP_PORTS = String(app.port);
  process.env.POD_NAMESPACE = "shop";
  try {
    remora = await spawnRemora(
      ["sidecar", "--config", overlay, "--kubeconfig", kubeconfig, "--cert-dir", join(dir, "none")],
      2,
    );
  } finally {
    process.env = saved;
  }
}, 30_000);

afterAll(async () => {
  await remora?.stop();
  await api?.stop();
  await web?.close();
  await app?.close();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe("remora sidecar", { timeout: 30_000 }, () => {
  it("routes the app's outbound request by Host through Kubernetes discovery (bare name in POD_NAMESPACE)", async () => {
    let answer = { status: 0, body: "" };
    for (let i = 0; i < 100 && answer.status !== 200; i++) {
      answer = await get(remora.ports.get("outbound")!, "web");
      if (answer.status !== 200) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(answer).toEqual({ status: 200, body: "web" });
  });

  it("forwards its inbound listener for the app port to the app", async () => {
    const answer = await get(remora.ports.get(`inbound-${app.port}`)!, "anything");
    expect(answer).toEqual({ status: 200, body: "app" });
  });

  it("passes a host that is no mesh service through (ALLOW_ANY), refusing loopback", async () => {
    const answer = await get(remora.ports.get("outbound")!, `127.0.0.1:${app.port}`);
    expect(answer.status).toBe(502);
    expect(answer.body).toContain("passthrough to a loopback address");
  });

  it("--print-config shows the generated document with the file merged", async () => {
    const { code, stdout } = await cli(
      [
        "sidecar",
        "--print-config",
        "--no-discovery",
        "--config",
        overlay,
        "--app-ports",
        String(app.port),
      ],
      { POD_NAMESPACE: "shop", SERVICE_ACCOUNT: "web-sa" },
    );
    expect(code).toBe(0);
    expect(stdout).toContain(
      `  - name: inbound-${app.port}\n    kind: inbound\n    address: 0.0.0.0\n    port: 0\n    app: 127.0.0.1:${app.port}`,
    );
    expect(stdout).toContain("outboundTrafficPolicy:\n  mode: ALLOW_ANY");
    expect(stdout).toContain("workload:\n  namespace: shop\n  serviceAccount: web-sa");
    expect(stdout).not.toContain("discovery");
  });

  it("bad input: a usage error (exit 2) or the merged config's key path (exit 1)", async () => {
    const flag = await cli(["sidecar", "--print-config", "--app-ports", "http"], {});
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain(
      '--app-ports: expected ports 1-65535 separated by commas, got "http"',
    );
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, "listeners:\n  - { name: outbound, port: -1 }\n");
    const file = await cli(["sidecar", "--print-config", "--no-discovery", "--config", bad], {});
    expect(file.code).toBe(1);
    expect(file.stderr).toContain("listeners[0].port");
  });
});
