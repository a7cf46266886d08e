/**
 * `discovery.kubernetes.trafficPolicy` with real processes: remora A discovers Services from the
 * fake Kubernetes API; `hello`'s one endpoint is remora B's STRICT mTLS inbound listener, `legacy`'s
 * a plain HTTP server (a pod without a sidecar). Nobody names them in `services:`, so the default
 * policy alone decides: with ISTIO_MUTUAL, A reaches B's app over mTLS (its identity in
 * x-forwarded-client-cert, Istio's SNI checked by B's authorization policy); without it (a
 * reload), B's STRICT listener refuses A's plaintext. A `services:` entry wins for its name.
 * Then two real `remora sidecar` processes, each with its own identity and environment: the
 * generated config alone makes them talk mTLS.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FakeKubeApi,
  serviceObject,
  sliceObject,
} from "../discovery/kubernetes/testing/fake-api.js";
import { type Minted, mint } from "../tls/testing.js";
import {
  type HttpBackend,
  httpBackend,
  namedBackend,
  RawClient,
  type SpawnedRemora,
  spawnRemora,
} from "./harness.js";

const WEB_ID = "spiffe://cluster.local/ns/default/sa/web";
const HELLO_ID = "spiffe://cluster.local/ns/default/sa/hello";
/** Istio's SNI for port 80 of Service hello.default: the Service's name and port, not B's. */
const HELLO_SNI = "outbound_.80_._.hello.default.svc.cluster.local";

let api: FakeKubeApi;
let dir: string;
let kubeconfig: string;
let ca: Minted;

/** An identity directory as `remora ca issue` writes it (a mounted Secret's files). */
function identity(name: string, id: string): string {
  const out = join(dir, name);
  mkdirSync(out);
  const cert = mint({ issuer: ca, commonName: name, uris: [id] });
  writeFileSync(join(out, "tls.crt"), cert.certPem);
  writeFileSync(join(out, "tls.key"), cert.keyPem, { mode: 0o600 });
  writeFileSync(join(out, "ca.crt"), ca.certPem);
  return out;
}

/** Service NAME in `default`, port 80 (`http`), one endpoint 127.0.0.1:PORT. */
function service(name: string, port: number): void {
  api.put("services", serviceObject(name, "default", [{ name: "http", port: 80 }]));
  api.put(
    "endpointslices",
    sliceObject(`${name}-a`, "default", name, [{ ip: "127.0.0.1", pod: `${name}-a` }], {
      name: "http",
      port,
    }),
  );
}

interface Answer {
  status: number;
  flags: string | undefined;
  body: string;
}

async function get(proxy: SpawnedRemora, host: string): Promise<Answer> {
  const response = await RawClient.exchange(
    proxy.ports.get("outbound")!,
    `GET / HTTP/1.1\r\nhost: ${host}\r\n\r\n`,
  );
  return {
    status: response.status,
    flags: response.headers.get("x-remora-response-flags")?.[0],
    body: response.body.toString(),
  };
}

/** The first answer that is not a 404 (discovery has not delivered the Service yet). */
async function discovered(proxy: SpawnedRemora, host: string): Promise<Answer> {
  let answer = await get(proxy, host);
  for (let i = 0; i < 200 && answer.status === 404; i++) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    answer = await get(proxy, host);
  }
  return answer;
}

/** Wait for the admin API's /ready: listeners bound and discovery synced. */
async function ready(proxy: SpawnedRemora): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const answer = await RawClient.exchange(
      proxy.adminPort,
      "GET /ready HTTP/1.1\r\nhost: localhost\r\n\r\n",
    );
    if (answer.status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error("not ready");
}

/** The upstream TLS mode of a cluster in the admin API's /clusters. */
async function tlsOf(proxy: SpawnedRemora, cluster: string): Promise<string | undefined> {
  const answer = await RawClient.exchange(
    proxy.adminPort,
    "GET /clusters HTTP/1.1\r\nhost: localhost\r\n\r\n",
  );
  const clusters: { name: string; tls: string }[] = JSON.parse(answer.body.toString());
  return clusters.find((c) => c.name === cluster)?.tls;
}

/** The app's view of the request (httpBackend echoes it as JSON). */
function appSaw(answer: Answer): Record<string, string> {
  expect(answer.status, answer.body).toBe(200);
  return JSON.parse(answer.body).headers;
}

/** x-forwarded-client-cert `By=...;Hash=...;URI=...` as a map. */
function xfcc(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? "").split(";")) {
    const at = part.indexOf("=");
    out[part.slice(0, at)] = part.slice(at + 1);
  }
  return out;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "remora-auto-mtls-"));
  ca = mint({ commonName: "mesh CA" });
  identity("web", WEB_ID);
  identity("hello", HELLO_ID);
  api = new FakeKubeApi();
  await api.start();
  kubeconfig = join(dir, "kubeconfig");
  api.writeKubeconfig(kubeconfig);
});

afterAll(async () => {
  await api?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe("discovered Services' default policy (discovery.kubernetes.trafficPolicy), end to end", () => {
  let app: HttpBackend;
  let legacy: HttpBackend;
  let a: SpawnedRemora | undefined;
  let b: SpawnedRemora | undefined;
  let aConfig: string;

  /** A's config: discovery, its identity, the default policy and `services` as given. */
  function writeA(policy: string, services = "[]"): void {
    writeFileSync(
      aConfig,
      `admin: { port: 0 }
probes: { port: null }
metrics: { port: null }
tls: { certFile: web/tls.crt, keyFile: web/tls.key, caFile: web/ca.crt }
listeners:
  - { name: outbound, kind: outbound, port: 0 }
discovery:
  kubernetes:
    kubeconfig: ${kubeconfig}
${policy}
services: ${services}
`,
    );
  }
  const ISTIO_MUTUAL = "    trafficPolicy: { tls: { mode: ISTIO_MUTUAL } }";

  /** B's `remora_downstream_tls_handshake_errors_total` on its inbound listener. */
  async function handshakeErrors(): Promise<number> {
    const answer = await RawClient.exchange(
      b!.adminPort,
      "GET /stats/prometheus HTTP/1.1\r\nhost: localhost\r\n\r\n",
    );
    const line = /^remora_downstream_tls_handshake_errors_total\{listener="inbound"\} (\d+)$/m.exec(
      answer.body.toString(),
    );
    return Number(line?.[1] ?? 0);
  }

  async function reload(): Promise<void> {
    const answer = await RawClient.exchange(
      a!.adminPort,
      "POST /reload HTTP/1.1\r\nhost: localhost\r\ncontent-length: 0\r\n\r\n",
    );
    expect(answer.status, answer.body.toString()).toBe(200);
    expect(["applied", "unchanged"]).toContain(JSON.parse(answer.body.toString()).result);
  }

  beforeAll(async () => {
    app = await httpBackend();
    legacy = await namedBackend("legacy");
    const bConfig = join(dir, "b.yaml");
    writeFileSync(
      bConfig,
      `admin: { port: 0 }
probes: { port: null }
metrics: { port: null }
tls: { certFile: hello/tls.crt, keyFile: hello/tls.key, caFile: hello/ca.crt }
listeners:
  - { name: inbound, kind: inbound, address: 127.0.0.1, port: 0, app: "${app.address}", tls: { mode: STRICT } }
authorizationPolicies:
  - name: istio-sni-only
    action: ALLOW
    rules: [{ when: [{ key: connection.sni, values: ["${HELLO_SNI}"] }] }]
`,
    );
    b = await spawnRemora(["run", "-c", bConfig]);
    service("hello", b.ports.get("inbound")!);
    service("legacy", legacy.port);
    aConfig = join(dir, "a.yaml");
    writeA(ISTIO_MUTUAL);
    a = await spawnRemora(["run", "-c", aConfig]);
  }, 30_000);

  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await app?.close();
    await legacy?.close();
  });

  it("ISTIO_MUTUAL by default: A reaches B's app over mTLS with its identity and Istio's SNI", async () => {
    const headers = appSaw(await discovered(a!, "hello"));
    const cert = xfcc(headers["x-forwarded-client-cert"]);
    expect(cert.URI).toBe(WEB_ID);
    expect(cert.By).toBe(HELLO_ID);
    expect(await tlsOf(a!, "hello:80.default")).toBe("ISTIO_MUTUAL");
    // Every name of the Service port takes the same cluster and policy.
    appSaw(await get(a!, "hello.default.svc.cluster.local"));
    // A destination without a sidecar gets mTLS too, and fails: the default applies to every
    // Service nobody names.
    const plain = await discovered(a!, "legacy");
    expect(plain.status).toBe(503);
    expect(plain.flags).toBe("UF");
    // A's log says why, naming the Service (not its cluster `legacy:80`) and its endpoint.
    expect(a!.stderr()).toContain(
      `TLS to legacy (127.0.0.1:${legacy.port}) failed: the endpoint answered in plaintext`,
    );
  });

  it("a services: entry for a name replaces the default for it (DISABLE for a pod without a sidecar)", async () => {
    writeA(ISTIO_MUTUAL, "[{ name: legacy, trafficPolicy: { tls: { mode: DISABLE } } }]");
    await reload();
    expect(await get(a!, "legacy")).toMatchObject({ status: 200, body: "legacy" });
    // hello still takes the default.
    expect(xfcc(appSaw(await get(a!, "hello"))["x-forwarded-client-cert"]).URI).toBe(WEB_ID);

    // An entry for hello that writes only DISABLE: plaintext to B's STRICT listener, refused.
    writeA(ISTIO_MUTUAL, "[{ name: hello, trafficPolicy: { tls: { mode: DISABLE } } }]");
    await reload();
    const before = await handshakeErrors();
    const refused = await get(a!, "hello");
    expect(refused).toMatchObject({ status: 502, flags: "UC" });
    expect(refused.body).toBe("upstream connection closed\n");
    expect(await handshakeErrors()).toBeGreaterThan(before);
  });

  it("without the default (a reload removes it), B's STRICT listener refuses A's plaintext", async () => {
    writeA("");
    await reload();
    expect(await tlsOf(a!, "hello:80.default")).toBe("DISABLE");
    const before = await handshakeErrors();
    const refused = await get(a!, "hello");
    expect(refused).toMatchObject({ status: 502, flags: "UC" });
    expect(refused.body).toBe("upstream connection closed\n");
    // B refused the connection at its TLS handshake (plaintext on STRICT), before any app saw it.
    expect(await handshakeErrors()).toBeGreaterThan(before);
    // And back: the next reload's default reaches the existing port cluster.
    writeA(ISTIO_MUTUAL);
    await reload();
    expect(xfcc(appSaw(await get(a!, "hello"))["x-forwarded-client-cert"]).URI).toBe(WEB_ID);
  });
});

describe("two real `remora sidecar` processes: the generated config alone talks mTLS", () => {
  let app: HttpBackend;
  let web: SpawnedRemora | undefined;
  let greet: SpawnedRemora | undefined;

  /** `remora sidecar` with this pod's environment and an overlay that only moves ports. */
  async function sidecar(
    env: Record<string, string>,
    args: string[],
    overlay: string,
    listeners: number,
  ): Promise<SpawnedRemora> {
    const file = join(dir, `${env.SERVICE_ACCOUNT}-sidecar.yaml`);
    writeFileSync(
      file,
      `admin: { port: 0 }\nprobes: { port: null }\nmetrics: { port: null }\n${overlay}`,
    );
    const saved = { ...process.env };
    Object.assign(process.env, env);
    try {
      return await spawnRemora(
        ["sidecar", "--config", file, "--kubeconfig", kubeconfig, ...args],
        listeners,
      );
    } finally {
      process.env = saved;
    }
  }

  beforeAll(async () => {
    app = await httpBackend();
    // The destination pod: STRICT inbound for its app port, identity sa/hello.
    greet = await sidecar(
      { POD_NAMESPACE: "default", SERVICE_ACCOUNT: "hello", REMORA_APP_PORTS: String(app.port) },
      ["--cert-dir", join(dir, "hello"), "--inbound-tls-mode", "STRICT"],
      `listeners:\n  - { name: outbound, port: 0 }\n  - { name: inbound-${app.port}, address: 127.0.0.1, port: 0 }\n`,
      2,
    );
    service("greet", greet.ports.get(`inbound-${app.port}`)!);
    // The calling pod: identity sa/web, no app ports.
    web = await sidecar(
      { POD_NAMESPACE: "default", SERVICE_ACCOUNT: "web" },
      ["--cert-dir", join(dir, "web")],
      "listeners:\n  - { name: outbound, port: 0 }\n",
      1,
    );
    // Synced: greet is known (ALLOW_ANY would otherwise pass an unknown name through to DNS).
    await ready(web);
  }, 30_000);

  afterAll(async () => {
    await web?.stop();
    await greet?.stop();
    await app?.close();
  });

  it("web's plain request for greet arrives at greet's app over mTLS, with web's identity", async () => {
    const headers = appSaw(await get(web!, "greet"));
    const cert = xfcc(headers["x-forwarded-client-cert"]);
    expect(cert.URI).toBe(WEB_ID);
    expect(cert.By).toBe(HELLO_ID);
    expect(await tlsOf(web!, "greet:80.default")).toBe("ISTIO_MUTUAL");
  });
});
