/** The CLI as a user runs it: help, validate, quick mode, config files, signals. */
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { CLI, httpBackend, RawClient, type SpawnedRemora, spawnRemora } from "./harness.js";

const run = promisify(execFile);

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function tempFile(name: string, text: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "remora-cli-"));
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

const running: SpawnedRemora[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) await r.stop("SIGKILL");
});

describe("remora CLI", () => {
  it("prints help for the tool and for every command", async () => {
    const top = await cli(["--help"]);
    expect(top.code).toBe(0);
    expect(top.stdout).toContain("remora run -c FILE");
    for (const command of ["run", "validate", "demo", "status"]) {
      const res = await cli([command, "--help"]);
      expect(res.code, command).toBe(0);
      expect(res.stdout, command).toContain(`remora ${command}`);
    }
  });

  it("--version names remora's version and the Node.js running it", async () => {
    const pkg = JSON.parse(await readFile(new URL("../package.json", import.meta.url), "utf8"));
    const res = await cli(["--version"]);
    expect(res.code).toBe(0);
    expect(res.stdout).toBe(`remora ${pkg.version} (Node.js ${process.version})\n`);
  });

  it("rejects an unknown command and unknown flags with exit 2", async () => {
    const a = await cli(["frobnicate"]);
    expect(a.code).toBe(2);
    expect(a.stderr).toContain('unknown command "frobnicate"');
    const b = await cli(["run", "--bogus"]);
    expect(b.code).toBe(2);
    expect(b.stderr).toContain("--bogus");
  });

  it("validate accepts the shipped examples", async () => {
    for (const file of [
      "examples/local.yaml",
      "examples/file-discovery.yaml",
      "examples/canary.yaml",
      // Imports examples/balancers/lowest-latency.mjs and builds one balancer with its options.
      "examples/custom-balancer.yaml",
    ]) {
      const res = await cli(["validate", "-c", file]);
      expect(res.stdout + res.stderr, file).toContain("ok");
      expect(res.code, file).toBe(0);
    }
  });

  it("validate names the path of every bad key and exits 1", async () => {
    const path = await tempFile(
      "bad.yaml",
      "listeners:\n  - { name: out, kind: outbound, port: 99999 }\n  - { name: in, kind: inbound, port: 1, app: nope }\nservices:\n  - { name: a, bogus: 1, timeout: 10x }\n",
    );
    const res = await cli(["validate", "-c", path]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain("listeners[0].port");
    expect(res.stderr).toContain("listeners[1].app");
    expect(res.stderr).toContain("services[0].bogus");
    expect(res.stderr).toContain("services[0].timeout");
  });

  it("validate imports a balancer module and names the key of a broken one", async () => {
    const dir = dirname(
      await tempFile("throws.mjs", 'export default () => { throw new Error("bad options"); };\n'),
    );
    const path = await tempFile(
      "modules.yaml",
      [
        "listeners: [{ name: out, kind: outbound, port: 0 }]",
        "services:",
        `  - { name: a, trafficPolicy: { loadBalancer: { module: ${dir}/throws.mjs } } }`,
        "  - { name: b, trafficPolicy: { loadBalancer: { module: ./missing.mjs } } }",
        "",
      ].join("\n"),
    );
    const res = await cli(["validate", "-c", path]);
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(
      /services\[0\]\.trafficPolicy\.loadBalancer\.module: .*building a balancer threw: bad options/,
    );
    expect(res.stderr).toMatch(
      /services\[1\]\.trafficPolicy\.loadBalancer\.module: .*missing\.mjs/,
    );
  });

  it("runs in quick mode, routes by Host, and exits 0 on SIGTERM", async () => {
    const backend = await httpBackend((_req, res) => res.end("quick"));
    try {
      const remora = await spawnRemora([
        "run",
        "--listen",
        "0",
        "--admin-port",
        "0",
        "--service",
        `hello=${backend.address}`,
      ]);
      running.push(remora);
      const port = remora.ports.get("outbound")!;
      const res = await RawClient.exchange(port, "GET / HTTP/1.1\r\nHost: hello\r\n\r\n");
      expect(res.body.toString()).toBe("quick");
      const ready = await fetch(`http://127.0.0.1:${remora.adminPort}/ready`);
      expect(ready.status).toBe(200);
      expect(await remora.stop("SIGTERM")).toBe(0);
      expect(remora.stderr()).toContain('"msg":"stopped"');
      // The startup line names the Node.js that runs the proxy (operators ask "which runtime?").
      const readyLine = remora
        .stderr()
        .split("\n")
        .find((line) => line.includes('"msg":"remora ready"'));
      expect(JSON.parse(readyLine!).node).toBe(process.version);
    } finally {
      await backend.close();
    }
  });

  it("runs from a config file with a watched discovery file", async () => {
    const a = await httpBackend((_req, res) => res.end("a"));
    const b = await httpBackend((_req, res) => res.end("b"));
    try {
      const services = await tempFile(
        "services.yaml",
        `services:\n  - { name: hello, endpoints: [{ address: "${a.address}" }] }\n`,
      );
      const config = join(services, "..", "remora.yaml");
      await writeFile(
        config,
        "admin: { port: 0 }\nprobes: { port: null }\nmetrics: { port: null }\ndiscovery: { file: services.yaml }\nlisteners:\n  - { name: outbound, kind: outbound, port: 0 }\n",
      );
      const remora = await spawnRemora(["run", "-c", config]);
      running.push(remora);
      const port = remora.ports.get("outbound")!;
      const ask = async () => {
        const res = await RawClient.exchange(port, "GET / HTTP/1.1\r\nHost: hello\r\n\r\n");
        return res.body.toString();
      };
      expect(await ask()).toBe("a");
      await writeFile(
        services,
        `services:\n  - { name: hello, endpoints: [{ address: "${b.address}" }] }\n`,
      );
      let answer = "";
      for (let i = 0; i < 50 && answer !== "b"; i++) {
        await new Promise((r) => setTimeout(r, 50));
        answer = await ask();
      }
      expect(answer).toBe("b");
      // A broken file keeps the last good endpoints.
      await writeFile(services, "services: [ {{{ not yaml");
      await new Promise((r) => setTimeout(r, 400));
      expect(await ask()).toBe("b");
      const clusters = await (await fetch(`http://127.0.0.1:${remora.adminPort}/clusters`)).json();
      expect(clusters[0].endpoints[0].address).toBe(b.address);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it("fails clearly when a port is taken", async () => {
    const backend = await httpBackend();
    try {
      const port = backend.port;
      const res = await cli([
        "run",
        "--listen",
        String(port),
        "--admin-port",
        "0",
        "--service",
        "x=127.0.0.1:1",
      ]);
      expect(res.code).toBe(1);
      expect(res.stderr).toContain("EADDRINUSE");
    } finally {
      await backend.close();
    }
  });
});

describe("remora demo", () => {
  it("starts backends, one of them flaky, and a proxy; prints curl lines that work and the dashboard", async () => {
    const stateDir = await mkdtemp(join(tmpdir(), "remora-demo-"));
    const child = spawn(
      process.execPath,
      [CLI, "demo", "--port", "0", "--admin-port", "0", "--inbound-port", "0"],
      // The dev CA goes to the state directory: a temporary one, not this user's.
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, REMORA_STATE_DIR: stateDir } },
    );
    try {
      let out = "";
      child.stdout.on("data", (d: Buffer) => {
        out += d.toString();
      });
      for (let i = 0; i < 100 && !out.includes("Press Ctrl-C"); i++)
        await new Promise((r) => setTimeout(r, 50));
      const match = /curl -H 'Host: hello' http:\/\/127\.0\.0\.1:(\d+)\/greeting/.exec(out);
      expect(match, out).not.toBeNull();
      const port = Number(match![1]);
      expect(out).toContain(`remora demo is running on Node.js ${process.version}`);
      const dashboard = /Dashboard: (http:\/\/127\.0\.0\.1:\d+\/) /.exec(out);
      expect(dashboard, out).not.toBeNull();
      const page = await fetch(dashboard![1]!);
      expect(page.headers.get("content-type")).toContain("text/html");

      // Round-robin over three backends. The flaky one answers the 2nd of every 4 requests it
      // gets with 503, which remora retries on another backend (Istio's default retry policy),
      // and cuts the 4th off mid-response, which no proxy can hide (FLAKY_PATTERN, proxy/demo.ts).
      const seen = new Set<string>();
      const outcomes: (number | "reset")[] = [];
      for (let i = 0; i < 12; i++) {
        try {
          // fetch() may not set Host (a forbidden header), so a raw client asks.
          const res = await RawClient.exchange(
            port,
            "GET /greeting HTTP/1.1\r\nHost: hello\r\n\r\n",
          );
          outcomes.push(res.status);
          if (res.status === 200) seen.add(JSON.parse(res.body.toString()).backend);
        } catch (error) {
          expect(String(error)).toContain("connection closed");
          outcomes.push("reset");
        }
      }
      expect(seen).toEqual(new Set(["hello-v1", "hello-v2", "hello-v3"]));
      expect(outcomes.filter((o) => o === 200)).toHaveLength(11);
      expect(outcomes.filter((o) => o === 503)).toHaveLength(0);
      expect(outcomes.filter((o) => o === "reset")).toHaveLength(1);

      const admin = /curl http:\/\/127\.0\.0\.1:(\d+)\/clusters/.exec(out);
      const base = `http://127.0.0.1:${admin![1]}`;
      expect(dashboard![1]).toBe(`${base}/`);
      const clusters = await (await fetch(`${base}/clusters`)).json();
      expect(clusters[0].requests).toBe(12);
      expect(clusters[0].endpoints).toHaveLength(3);
      expect(clusters[0].responses["5xx"]).toBe(0);
      expect(clusters[0].retries).toBe(1);
      const snapshot = await (await fetch(`${base}/dashboard.json`)).json();
      const hello = snapshot.services[0];
      expect(hello.lastMinute).toMatchObject({ requests: 12, errors: 1, responseFlags: { UC: 1 } });
      const flaky = hello.endpoints.find((e: { address: string }) =>
        out.includes(`${e.address}   (fails`),
      );
      // Its 503 was retried elsewhere, so the exchange counts there; the reset counts here.
      expect(flaky.lastMinute).toMatchObject({ errors: 1 });

      // mTLS: `secure` is hello-v1 behind the demo's own STRICT inbound listener, over
      // ISTIO_MUTUAL with the dev CA's identity; the app is told who called.
      const secure = await RawClient.exchange(port, "GET / HTTP/1.1\r\nHost: secure\r\n\r\n");
      expect(secure.status).toBe(200);
      const echoed = JSON.parse(secure.body.toString());
      expect(echoed.backend).toBe("hello-v1");
      expect(echoed["x-forwarded-client-cert"]).toMatch(
        /^By=spiffe:\/\/cluster\.local\/ns\/default\/sa\/demo;Hash=[0-9a-f]{64};URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/demo$/,
      );
      expect(out).toContain(join(stateDir, "dev-mtls", "ca"));
      expect(out).toContain(`The config: ${join(stateDir, "demo", "remora-demo.yaml")}`);
      // The banner's plain `curl -k` to the inbound port is refused (no client certificate),
      // and its `curl --cert --key` is accepted.
      const refused = /curl -k (https:\/\/127\.0\.0\.1:\d+\/) /.exec(out);
      expect(refused, out).not.toBeNull();
      const noCert = await run("curl", [
        "-sk",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        refused![1]!,
      ]).then(
        () => ({ code: 0, stdout: "" }),
        (error: { code: number; stdout: string }) => error,
      );
      // curl fails (a TLS alert or a reset at the handshake) and never gets an HTTP status.
      expect(noCert.code).not.toBe(0);
      expect(noCert.stdout).toBe("000");
      const withCert = /curl -k (--cert \S+ --key \S+ https:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
      expect(withCert, out).not.toBeNull();
      const accepted = await run("curl", ["-sk", ...withCert![1]!.split(" ")]);
      expect(JSON.parse(accepted.stdout).backend).toBe("hello-v1");
    } finally {
      child.kill("SIGTERM");
      await once(child, "exit");
    }
  });
});
