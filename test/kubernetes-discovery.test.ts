/**
 * Kubernetes discovery end to end: a real remora process (the built CLI) watching the fake API
 * server over HTTPS, routing real requests to real backends as Services and EndpointSlices
 * change, through every failure the issue names. Requests must keep succeeding throughout.
 */

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FakeKubeApi,
  serviceObject,
  sliceObject,
} from "../discovery/kubernetes/testing/fake-api.js";
import { type HttpBackend, namedBackend, type SpawnedRemora, spawnRemora } from "./harness.js";

let api: FakeKubeApi;
let dir: string;
let tokenFile: string;
let remora: SpawnedRemora;
const backends: Record<string, HttpBackend> = {};
/** Every answer the test's client got that was not a 200 from a backend. */
const failures: string[] = [];

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

/** One request through remora's outbound listener; a non-200 is recorded as a failure. */
async function call(host = "web"): Promise<string> {
  const answer = await get(remora.ports.get("outbound") ?? 0, host);
  if (answer.status !== 200) failures.push(`${answer.status} ${answer.body.trim()}`);
  return answer.body;
}

function adminGet(
  path: string,
  target: SpawnedRemora = remora,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: target.adminPort, path }, (res) => {
      let body = "";
      res.on("data", (chunk) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** Requests until `count` answers in a row come only from `names` (and all of them appear). */
async function settlesOn(names: string[], count = 12): Promise<void> {
  let streak = 0;
  let seen = new Set<string>();
  for (let i = 0; i < 400; i++) {
    const body = await call();
    if (names.includes(body)) {
      streak++;
      seen.add(body);
    } else {
      streak = 0;
      seen = new Set();
    }
    if (streak >= count && seen.size === names.length) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`requests did not settle on ${names.join(",")}`);
}

function slice(
  name: string,
  backend: string,
  conditions: { ready?: boolean; serving?: boolean; terminating?: boolean } = {},
) {
  const port = backends[backend]?.port ?? 0;
  // One slice per backend: each listens on its own port, as pods whose named targetPort differs.
  return sliceObject(
    name,
    "default",
    "web",
    [{ ip: "127.0.0.1", pod: `web-${backend}`, ...conditions }],
    {
      name: "http",
      port,
    },
  );
}

/** remora's config in `dir`: an outbound listener and Kubernetes discovery (plus `extra` keys). */
function writeConfig(dir: string, kubeconfig: string, extra = ""): string {
  const file = join(dir, "remora.yaml");
  writeFileSync(
    file,
    `admin: { port: 0 }
probes: { port: null }
metrics: { port: null }
listeners:
  - { name: outbound, kind: outbound, port: 0 }
discovery:
  kubernetes:
    kubeconfig: ${kubeconfig}
${extra}`,
  );
  return file;
}

beforeAll(async () => {
  for (const name of ["a", "b", "c", "d"]) backends[name] = await namedBackend(name);
  api = new FakeKubeApi();
  await api.start();
  dir = mkdtempSync(join(tmpdir(), "remora-k8s-e2e-"));
  tokenFile = join(dir, "token");
  writeFileSync(tokenFile, api.token);
  const kubeconfig = join(dir, "kubeconfig");
  api.writeKubeconfig(kubeconfig, { token: null });
  // tokenFile, so the token can rotate under a running remora.
  const config = JSON.parse(readFileSync(kubeconfig, "utf8"));
  config.users[0].user = { tokenFile };
  writeFileSync(kubeconfig, JSON.stringify(config));
  api.put(
    "services",
    serviceObject("web", "default", [{ name: "http", port: 80, targetPort: "http" }], "10.96.0.12"),
  );
  api.put("endpointslices", slice("web-a", "a"));
  const configFile = writeConfig(dir, kubeconfig);
  // The first list fails, so remora starts before it has synced.
  api.fail({ status: 500, on: "list" });
  remora = await spawnRemora(["run", "-c", configFile]);
}, 30_000);

afterAll(async () => {
  await remora?.stop();
  await api?.stop();
  for (const backend of Object.values(backends)) await backend.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("Kubernetes discovery through a real remora process", { timeout: 60_000 }, () => {
  it("is not ready until the first full sync, then routes NAME, NAME.NS.svc.cluster.local and ClusterIP", async () => {
    expect((await adminGet("/ready")).status).toBe(503);
    for (let i = 0; i < 200 && (await adminGet("/ready")).status !== 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect((await adminGet("/ready")).status).toBe(200);
    expect(await call("web")).toBe("a");
    expect(await call("web.default.svc.cluster.local:80")).toBe("a");
    expect(await call("10.96.0.12")).toBe("a");
    expect((await get(remora.ports.get("outbound") ?? 0, "web:8080")).status).toBe(404);
    const clusters = JSON.parse((await adminGet("/clusters")).body);
    expect(JSON.stringify(clusters)).toContain("web-a");
  });

  it("follows a scale-up, an endpoint turning not-ready, the terminating fallback and a deleted slice", async () => {
    api.put("endpointslices", slice("web-b", "b"));
    await settlesOn(["a", "b"]);
    api.put("endpointslices", slice("web-a", "a", { ready: false, serving: false }));
    await settlesOn(["b"]);
    // b terminating but still serving, and nothing ready: kube-proxy's fallback keeps it.
    api.put(
      "endpointslices",
      slice("web-b", "b", { ready: false, serving: true, terminating: true }),
    );
    api.bookmark();
    await settlesOn(["b"]);
    api.put("endpointslices", slice("web-a", "a"));
    await settlesOn(["a"]);
    api.delete("endpointslices", "default", "web-b");
    await settlesOn(["a"]);
    expect(failures).toEqual([]);
  });

  it("keeps serving while the API server is down, and relists after it returns with compacted history (410)", async () => {
    await api.stop();
    // Changes made while the watch is down: the fresh list must replace the state.
    api.put("endpointslices", slice("web-c", "c"));
    api.delete("endpointslices", "default", "web-a");
    for (let i = 0; i < 10; i++) expect(await call()).toBe("a");
    await api.restart({ compact: true });
    await settlesOn(["c"]);
    const metrics = (await adminGet("/stats/prometheus")).body;
    expect(metrics).toMatch(
      /remora_kubernetes_watch_restarts_total\{resource="endpointslices.discovery.k8s.io",reason="expired"\} [1-9]/,
    );
    expect(metrics).toMatch(
      /remora_kubernetes_objects\{resource="endpointslices.discovery.k8s.io"\} 1/,
    );
    expect(metrics).toMatch(
      /remora_kubernetes_watch_restarts_total\{resource="[^"]+",reason="server_error"\} 1/,
    );
    expect(failures).toEqual([]);
  });

  it("re-reads a rotated token after a 401 and goes on following changes", async () => {
    const fresh = api.rotateToken();
    writeFileSync(tokenFile, fresh);
    await api.cutWatches();
    api.put("endpointslices", slice("web-d", "d"));
    api.delete("endpointslices", "default", "web-c");
    await settlesOn(["d"]);
    const statuses = api.requests
      .filter((r) => r.authorization !== `Bearer ${fresh}`)
      .map((r) => r.status);
    expect(statuses).toContain(401);
    expect(api.requests.at(-1)?.authorization).toBe(`Bearer ${fresh}`);
    expect(failures).toEqual([]);
  });
});

describe("Kubernetes discovery holding the updates of Services not routed to", {
  timeout: 60_000,
}, () => {
  it("applies them at the first request and for /clusters, not before", async () => {
    // Its own API server and remora: no watch of this one is cut or relisted while updates are held.
    const server = new FakeKubeApi();
    await server.start();
    const home = mkdtempSync(join(tmpdir(), "remora-k8s-held-"));
    let proxy: SpawnedRemora | undefined;
    try {
      const own = (service: string, backend: string) =>
        sliceObject(
          `${service}-1`,
          "default",
          service,
          [{ ip: "127.0.0.1", pod: `${service}-${backend}` }],
          { name: "http", port: backends[backend]?.port ?? 0 },
        );
      for (const name of ["api", "ops"]) {
        server.put("services", serviceObject(name, "default", [{ name: "http", port: 80 }]));
        server.put("endpointslices", own(name, "a"));
      }
      const kubeconfig = join(home, "kubeconfig");
      server.writeKubeconfig(kubeconfig);
      // idleRefresh long: only a first request or a read applies what is held here.
      const configFile = writeConfig(home, kubeconfig, "    idleRefresh: 10m\n");
      const running = await spawnRemora(["run", "-c", configFile]);
      proxy = running;
      const metric = async (pattern: RegExp): Promise<number> => {
        const match = (await adminGet("/stats/prometheus", running)).body.match(pattern);
        return Number(match?.[1] ?? Number.NaN);
      };
      const held = () => metric(/^remora_kubernetes_held_updates (\d+)$/m);
      for (let i = 0; i < 400; i++) {
        if ((await adminGet("/ready", running)).status === 200 && server.watchCount === 2) break;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      expect(server.watchCount).toBe(2);
      // Listed: applied. Now one update of each, through the watch: held.
      server.put("endpointslices", own("api", "b"));
      server.put("endpointslices", own("ops", "c"));
      for (let i = 0; i < 400 && (await held()) !== 2; i++) {
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      expect(await held()).toBe(2);
      // The first request applies api's before it picks an endpoint.
      const answer = await get(running.ports.get("outbound") ?? 0, "api");
      expect(answer).toEqual({ status: 200, body: "b" });
      expect(await held()).toBe(1);
      const clusters = (await adminGet("/clusters", running)).body;
      expect(clusters).toContain("ops-c");
      expect(clusters).not.toContain("ops-a");
      expect(await held()).toBe(0);
    } finally {
      await proxy?.stop();
      await server.stop();
      rmSync(home, { recursive: true, force: true });
    }
  });
});
