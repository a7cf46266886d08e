/**
 * Authorization policy (Istio's AuthorizationPolicy) on inbound listeners, in a real remora
 * process, with curl presenting mesh certificates: who gets 200 and who gets 403 RBAC, what the
 * app saw, the metrics, the access log, keep-alive after a denial, and a reload that changes
 * the policy for the next request.
 */
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { rename, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { type CertificateAndKey, createCa, issueWorkloadCertificate } from "../tls/ca.js";
import {
  type HttpBackend,
  httpBackend,
  RawClient,
  type SpawnedRemora,
  spawnRemora,
} from "./harness.js";
import { parseExposition } from "./prometheus-text.js";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(file: string, args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 20_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === "number" ? error.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

const DENIED = "RBAC: access denied\n";
const NO_ALLOW = "(no ALLOW policy matched)";

/** An app that records every request it gets and answers `ok <path>`. */
async function recordingApp(): Promise<{ app: HttpBackend; seen: string[] }> {
  const seen: string[] = [];
  const app = await httpBackend((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.end(`ok ${req.url}`);
  });
  return { app, seen };
}

const POLICIES = [
  "authorizationPolicies:",
  "  - name: frontend-api",
  "    action: ALLOW",
  "    rules:",
  "      - from: [{ source: { principals: [cluster.local/ns/shop/sa/frontend] } }]",
  '        to: [{ operation: { methods: [GET], paths: ["/api/*"] } }]',
  // Facts of the TLS connection: the address it arrived on and the SNI curl sends.
  "        when:",
  "          - { key: destination.ip, values: [127.0.0.0/8] }",
  "          - { key: connection.sni, values: [localhost] }",
  "  - name: deny-admin",
  "    action: DENY",
  "    rules:",
  '      - to: [{ operation: { paths: ["/admin*"] } }]',
];

describe("authorizationPolicies on inbound mTLS listeners", () => {
  let dir: string;
  let app: HttpBackend;
  let seen: string[];
  let remora: SpawnedRemora;
  const port = (name: string) => remora.ports.get(name)!;

  const writeCert = (name: string, cert: CertificateAndKey) => {
    const out = join(dir, name);
    mkdirSync(out);
    writeFileSync(join(out, "tls.crt"), cert.certPem);
    writeFileSync(join(out, "tls.key"), cert.keyPem);
  };

  /** curl over mTLS as `client`; prints each response's body, then `status connects`. */
  const curl = (client: string, paths: string[], extra: string[] = []) => {
    const p = port("strict");
    return run("curl", [
      "-sS",
      "--max-time",
      "10",
      "--path-as-is",
      "--cert",
      join(dir, client, "tls.crt"),
      "--key",
      join(dir, client, "tls.key"),
      "--cacert",
      join(dir, "ca.crt"),
      "--resolve",
      `localhost:${p}:127.0.0.1`,
      "-w",
      "|%{http_code} %{num_connects}\n",
      ...extra,
      ...paths.map((path) => `https://localhost:${p}${path}`),
    ]);
  };

  /** [body, status, new connections] per response of one curl run. */
  const results = (out: Run): [string, number, number][] => {
    expect(out.stderr).toBe("");
    return out.stdout
      .split(/\|(\d{3}) (\d+)\n/)
      .reduce<[string, number, number][]>((all, part, i, parts) => {
        if (i % 3 === 0 && i + 2 < parts.length) {
          all.push([part, Number(parts[i + 1]), Number(parts[i + 2])]);
        }
        return all;
      }, []);
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "remora-authz-"));
    const ca = createCa();
    writeFileSync(join(dir, "ca.crt"), ca.certPem);
    writeCert(
      "server",
      issueWorkloadCertificate({
        ca,
        namespace: "default",
        serviceAccount: "reviews",
        dnsNames: ["localhost"],
      }),
    );
    writeCert(
      "frontend",
      issueWorkloadCertificate({ ca, namespace: "shop", serviceAccount: "frontend" }),
    );
    writeCert(
      "batch",
      issueWorkloadCertificate({ ca, namespace: "jobs", serviceAccount: "batch" }),
    );
    ({ app, seen } = await recordingApp());
    const listener = (name: string, mode: string) =>
      `  - { name: ${name}, kind: inbound, address: 127.0.0.1, port: 0, app: "${app.address}", tls: { mode: ${mode} } }`;
    const config = join(dir, "remora.yaml");
    writeFileSync(
      config,
      [
        "admin: { port: 0 }",
        "probes: { port: null }",
        "metrics: { port: null }",
        "accessLog: { enabled: true, path: access.log }",
        "tls: { certFile: server/tls.crt, keyFile: server/tls.key, caFile: ca.crt }",
        "listeners:",
        listener("strict", "STRICT"),
        listener("permissive", "PERMISSIVE"),
        "services: []",
        ...POLICIES,
        "",
      ].join("\n"),
    );
    remora = await spawnRemora(["run", "-c", config], 2);
  });

  afterAll(async () => {
    await remora?.stop();
    await app?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("allows the frontend's GET /api/*; denies other paths, methods and workloads with 403 RBAC", async () => {
    const before = seen.length;
    expect(results(await curl("frontend", ["/api/items?page=2"]))).toEqual([
      ["ok /api/items?page=2", 200, 1],
    ]);
    // DENY wins, and is named, even where no ALLOW matched either.
    expect(results(await curl("frontend", ["/admin/users"]))).toEqual([[DENIED, 403, 1]]);
    // The path is judged normalised (and forwarded so): /api/../admin is /admin.
    expect(results(await curl("frontend", ["/api/../admin", "/api/%2e%2e/admin"]))).toEqual([
      [DENIED, 403, 1],
      [DENIED, 403, 0],
    ]);
    expect(results(await curl("frontend", ["/api/items"], ["-X", "DELETE"]))).toEqual([
      [DENIED, 403, 1],
    ]);
    expect(results(await curl("batch", ["/api/items"]))).toEqual([[DENIED, 403, 1]]);
    // A normalised path that is allowed reaches the app as judged.
    expect(results(await curl("frontend", ["/api/./v2/../items"]))).toEqual([
      ["ok /api/items", 200, 1],
    ]);
    expect(seen.slice(before)).toEqual(["GET /api/items?page=2", "GET /api/items"]);
  });

  it("a denied request carries the RBAC flag header; the connection stays open for the next", async () => {
    const before = seen.length;
    const out = await curl("frontend", ["/admin", "/api/after-denial"], ["-D", "-"]);
    expect(out.stdout).toMatch(/HTTP\/1\.1 403 Forbidden\r\n/);
    expect(out.stdout).toContain("x-remora-response-flags: RBAC\r\n");
    expect(out.stdout).toContain("ok /api/after-denial|200 0\n");
    expect(seen.slice(before)).toEqual(["GET /api/after-denial"]);
  });

  it("PERMISSIVE plaintext has no principal: the ALLOW policy does not match it", async () => {
    const before = seen.length;
    const plain = await RawClient.exchange(
      port("permissive"),
      "GET /api/items HTTP/1.1\r\nHost: reviews\r\n\r\n",
    );
    expect(plain.status).toBe(403);
    expect(plain.body.toString()).toBe(DENIED);
    expect(plain.header("x-remora-response-flags")).toBe("RBAC");
    expect(seen.length).toBe(before);
  });

  it("counts decisions by listener and policy, and logs denials with the RBAC flag", async () => {
    // Every request the tests above sent, in the order they run (vitest runs a file's tests in order).
    const scrape = await fetch(`http://127.0.0.1:${remora.adminPort}/stats/prometheus`);
    const families = parseExposition(await scrape.text());
    const value = (family: string, labels: Record<string, string>) =>
      families
        .get(family)
        ?.samples.find((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
    expect(value("remora_authorization_allowed_total", { listener: "strict" })).toBe(3);
    expect(
      value("remora_authorization_denied_total", { listener: "strict", policy: "deny-admin" }),
    ).toBe(4);
    expect(
      value("remora_authorization_denied_total", { listener: "strict", policy: NO_ALLOW }),
    ).toBe(2);
    expect(value("remora_authorization_allowed_total", { listener: "permissive" })).toBe(0);
    expect(
      value("remora_authorization_denied_total", { listener: "permissive", policy: NO_ALLOW }),
    ).toBe(1);

    let lines: Record<string, unknown>[] = [];
    await vi.waitFor(
      () => {
        lines = readFileSync(join(dir, "access.log"), "utf8")
          .split("\n")
          .filter((line) => line !== "")
          .map((line) => JSON.parse(line));
        expect(lines.length).toBe(10);
      },
      { timeout: 5000, interval: 50 },
    );
    const denied = lines.filter((line) => line.response_flags === "RBAC");
    expect(denied).toHaveLength(7);
    expect(denied.every((line) => line.response_code === 403)).toBe(true);
    expect(denied.find((line) => line.path === "/admin/users")).toMatchObject({
      listener: "strict",
      method: "GET",
      upstream_host: null,
    });
    expect(lines.filter((line) => line.response_flags === "-")).toHaveLength(3);
  });
});

describe("authorizationPolicies on reload", () => {
  let dir: string;
  let app: HttpBackend;
  let remora: SpawnedRemora | undefined;

  afterEach(async () => {
    await remora?.stop("SIGKILL");
    await app?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const configText = (deny: string) =>
    [
      "admin: { port: 0 }",
      "probes: { port: null }",
      "metrics: { port: null }",
      "listeners:",
      `  - { name: in, kind: inbound, address: 127.0.0.1, port: 0, app: "${app.address}" }`,
      "authorizationPolicies:",
      "  - name: deny-one",
      "    action: DENY",
      `    rules: [{ to: [{ operation: { paths: ["${deny}"] } }] }]`,
      "",
    ].join("\n");

  it("the next request, on an open connection too, is decided by the policies on disk", async () => {
    dir = mkdtempSync(join(tmpdir(), "remora-authz-reload-"));
    ({ app } = await recordingApp());
    const path = join(dir, "remora.yaml");
    writeFileSync(path, configText("/a"));
    remora = await spawnRemora(["run", "-c", path]);
    const client = await RawClient.open(remora.ports.get("in")!);
    try {
      const ask = async (target: string) => {
        client.write(`GET ${target} HTTP/1.1\r\nHost: app\r\n\r\n`);
        return (await client.response()).status;
      };
      expect([await ask("/a"), await ask("/b")]).toEqual([403, 200]);

      // Saved as editors do: a new file renamed over the old one.
      await writeFile(join(dir, ".tmp"), configText("/b"));
      await rename(join(dir, ".tmp"), path);
      await vi.waitFor(
        () => expect(remora!.stderr()).toContain('"authorizationPolicies":["deny-one"]'),
        { timeout: 5000, interval: 20 },
      );
      expect(remora.stderr()).toContain('"msg":"config reloaded"');
      expect([await ask("/a"), await ask("/b")]).toEqual([200, 403]);
      expect(client.closed).toBe(false);
    } finally {
      client.close();
    }
  });
});
