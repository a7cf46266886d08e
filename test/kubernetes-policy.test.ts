/**
 * What config says about a Kubernetes Service, through a real remora process and the fake API
 * server: the `services:` traffic policy of NAME reaches NAME's port clusters (`NAME:PORT`) on
 * every reload, not only when they are created; and an ExternalName Service answers with its
 * own reason instead of the generic no-route one.
 */
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
import { ERRORS } from "../proxy/errors.js";
import { type HttpBackend, namedBackend, type SpawnedRemora, spawnRemora } from "./harness.js";

let api: FakeKubeApi;
let dir: string;
let configFile: string;
let remora: SpawnedRemora;
const backends: Record<string, HttpBackend> = {};

interface Answer {
  status: number;
  body: string;
  flags: string | undefined;
}

function send(port: number, method: string, path: string, host: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, method, headers: { host } }, (res) => {
      let body = "";
      res.on("data", (chunk) => (body += chunk));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          body,
          flags: res.headers["x-remora-response-flags"] as string | undefined,
        }),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

const call = (host = "web") => send(remora.ports.get("outbound") ?? 0, "GET", "/", host);
const admin = (method: string, path: string) => send(remora.adminPort, method, path, "localhost");

/** The config file: the outbound listener, Kubernetes discovery, and `services` as given. */
function writeConfig(kubeconfig: string, services: string): void {
  writeFileSync(
    configFile,
    `admin: { port: 0 }
probes: { port: null }
metrics: { port: null }
listeners:
  - { name: outbound, kind: outbound, port: 0 }
discovery:
  kubernetes:
    kubeconfig: ${kubeconfig}
services:
${services}`,
  );
}

/** Bodies of `count` requests to web. */
async function bodies(count: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push((await call()).body);
  return out;
}

async function reload(): Promise<void> {
  const answer = await admin("POST", "/reload");
  expect(answer.status, answer.body).toBe(200);
  // "unchanged" when remora's own watch of the file applied it first.
  expect(["applied", "unchanged"]).toContain(JSON.parse(answer.body).result);
}

/** /clusters' entry for the port cluster of web's port 80. */
async function webPort80(): Promise<{ policy: string; subsets: { name: string }[] }> {
  const clusters = JSON.parse((await admin("GET", "/clusters")).body);
  return clusters.find((c: { name: string }) => c.name === "web:80.default");
}

beforeAll(async () => {
  for (const name of ["a", "b"]) backends[name] = await namedBackend(name);
  api = new FakeKubeApi();
  await api.start();
  dir = mkdtempSync(join(tmpdir(), "remora-k8s-policy-"));
  const kubeconfig = join(dir, "kubeconfig");
  api.writeKubeconfig(kubeconfig);
  configFile = join(dir, "remora.yaml");
  api.put("services", serviceObject("web", "default", [{ name: "http", port: 80 }]));
  for (const name of ["a", "b"]) {
    api.put(
      "endpointslices",
      sliceObject(`web-${name}`, "default", "web", [{ ip: "127.0.0.1", pod: `web-${name}` }], {
        name: "http",
        port: backends[name]?.port ?? 0,
      }),
    );
  }
  api.put("services", {
    metadata: { name: "payments", namespace: "default" },
    spec: { type: "ExternalName", externalName: "payments.example.com" },
  });
  // web is configured (no policy yet): its port cluster takes this entry's settings.
  writeConfig(kubeconfig, "  - name: web\n");
  remora = await spawnRemora(["run", "-c", configFile]);
  for (let i = 0; i < 200 && (await admin("GET", "/ready")).status !== 200; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}, 30_000);

afterAll(async () => {
  await remora?.stop();
  await api?.stop();
  for (const backend of Object.values(backends)) await backend.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("Kubernetes Services and config, through a real remora", { timeout: 60_000 }, () => {
  it("a reload's traffic policy for NAME reaches NAME's port cluster, and a later reload takes it back", async () => {
    expect(new Set(await bodies(8))).toEqual(new Set(["a", "b"]));
    expect((await webPort80()).policy).toBe("round-robin");

    const kubeconfig = join(dir, "kubeconfig");
    writeConfig(
      kubeconfig,
      `  - name: web
    trafficPolicy: { loadBalancer: { policy: LEAST_REQUEST } }
    subsets: [{ name: only-a, labels: { pod: web-a } }]
    routes: [{ route: [{ subset: only-a }] }]
`,
    );
    await reload();
    const cluster = await webPort80();
    expect(cluster.policy).toBe("least-request");
    expect(cluster.subsets.map((s) => s.name)).toEqual(["only-a"]);
    // Every request now goes through the route to the subset of pod web-a.
    expect(new Set(await bodies(8))).toEqual(new Set(["a"]));

    // web no longer configured: its port cluster goes back to the defaults.
    writeConfig(kubeconfig, "  []\n");
    await reload();
    expect((await webPort80()).policy).toBe("round-robin");
    expect((await webPort80()).subsets).toEqual([]);
    expect(new Set(await bodies(8))).toEqual(new Set(["a", "b"]));
  });

  it("an ExternalName Service answers 404 REMORA_ERR_EXTERNAL_NAME (NR), an unknown name the generic no-route", async () => {
    for (const host of ["payments", "payments.default.svc.cluster.local:443"]) {
      const answer = await call(host);
      expect(answer.status, host).toBe(404);
      expect(answer.flags).toBe("NR");
      expect(answer.body.trim()).toBe(ERRORS.REMORA_ERR_EXTERNAL_NAME.body);
    }
    const unknown = await call("nothing-here");
    expect(unknown.status).toBe(404);
    expect(unknown.body.trim()).toBe(ERRORS.REMORA_ERR_NO_ROUTE.body);
    // It turns into a proxied Service: routed like any other.
    api.put("services", serviceObject("payments", "default", [{ name: "http", port: 80 }]));
    api.put(
      "endpointslices",
      sliceObject("payments-a", "default", "payments", [{ ip: "127.0.0.1" }], {
        name: "http",
        port: backends.b?.port ?? 0,
      }),
    );
    let answer = await call("payments");
    for (let i = 0; i < 100 && answer.status !== 200; i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      answer = await call("payments");
    }
    expect(answer.body).toBe("b");
  });
});
