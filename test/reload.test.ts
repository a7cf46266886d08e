/**
 * Hot reload of `remora run -c FILE`, in a real process: saves the way editors do, SIGHUP,
 * POST /reload; what applies live and what keeps running across a reload.
 */
import { readFileSync } from "node:fs";
import { mkdtemp, rename, writeFile } from "node:fs/promises";
import { type AddressInfo, connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { parseConfig, serviceDefaults } from "../proxy/config/load.js";
import {
  type HttpBackend,
  httpBackend,
  namedBackend,
  RawClient,
  type SpawnedRemora,
  spawnRemora,
  startRemora,
} from "./harness.js";

const running: SpawnedRemora[] = [];
const backends: HttpBackend[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) await r.stop("SIGKILL");
  for (const b of backends.splice(0)) await b.close();
});

/** A backend answering with its name, closed after the test. */
async function named(name: string): Promise<HttpBackend> {
  const backend = await namedBackend(name);
  backends.push(backend);
  return backend;
}

/** A config file in a fresh directory; `save` replaces it as editors do (write, then rename). */
async function configFile(
  text: string,
): Promise<{ path: string; save(text: string): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "remora-reload-"));
  const path = join(dir, "remora.yaml");
  await writeFile(path, text);
  return {
    path,
    save: async (next) => {
      const temp = join(dir, ".remora.yaml.tmp");
      await writeFile(temp, next);
      await rename(temp, path);
    },
  };
}

/** Test configs: admin on any port, no probe listener, then `rest`. */
function config(rest: string): string {
  return `admin: { port: 0 }\nprobes: { port: null }\nmetrics: { port: null }\n${rest}`;
}

interface LogRecord {
  msg: string;
  level: number;
  [key: string]: unknown;
}

function logs(remora: SpawnedRemora, msg?: string): LogRecord[] {
  const out: LogRecord[] = [];
  for (const line of remora.stderr().split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const record = JSON.parse(line) as LogRecord;
      if (msg === undefined || record.msg.startsWith(msg)) {
        out.push(record);
      }
    } catch {}
  }
  return out;
}

/** The `count`th log record with message `msg` (waits for it). */
async function logged(remora: SpawnedRemora, msg: string, count = 1): Promise<LogRecord> {
  let record: LogRecord | undefined;
  await vi.waitFor(
    () => {
      record = logs(remora, msg)[count - 1];
      expect(record, `log "${msg}" #${count}\n${remora.stderr()}`).toBeDefined();
    },
    { timeout: 5000, interval: 20 },
  );
  return record!;
}

async function ask(port: number, host: string): Promise<{ status: number; body: string }> {
  const res = await RawClient.exchange(port, `GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
  return { status: res.status, body: res.body.toString() };
}

async function admin(remora: SpawnedRemora, path: string, method = "GET"): Promise<Response> {
  return fetch(`http://127.0.0.1:${remora.adminPort}${path}`, { method });
}

/** Resolves when a connection to `port` is refused. */
function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", (error: NodeJS.ErrnoException) => resolve(error.code === "ECONNREFUSED"));
  });
}

/** A backend that holds each request until `release()`; `arrived` resolves on the first. */
async function slowBackend(): Promise<{
  backend: HttpBackend;
  arrived: Promise<void>;
  release(): void;
}> {
  let arrive!: () => void;
  const arrived = new Promise<void>((resolve) => {
    arrive = resolve;
  });
  const held: (() => void)[] = [];
  const backend = await httpBackend((_req, res) => {
    held.push(() => res.end("slow done"));
    arrive();
  });
  backends.push(backend);
  const release = () => {
    for (const answer of held.splice(0)) answer();
  };
  return { backend, arrived, release };
}

describe("config reload", () => {
  it("applies a saved file: new service routable, removed one 404s, changed endpoints used", async () => {
    const a = await named("a");
    const b = await named("b");
    const c = await named("c");
    const slow = await slowBackend();
    const file = await configFile(
      config(`listeners:
  - { name: out, kind: outbound, port: 0 }
services:
  - { name: hello, endpoints: [{ address: "${a.address}" }] }
  - { name: gone, endpoints: [{ address: "${b.address}" }] }
  - { name: slow, endpoints: [{ address: "${slow.backend.address}" }] }
`),
    );
    const remora = await spawnRemora(["run", "-c", file.path]);
    running.push(remora);
    const port = remora.ports.get("out")!;
    expect(await ask(port, "hello")).toEqual({ status: 200, body: "a" });
    expect(await ask(port, "gone")).toEqual({ status: 200, body: "b" });
    const before = await (await admin(remora, "/config_dump")).json();

    // A request in flight to a service the reload removes: it finishes on what it started with.
    const inFlight = RawClient.exchange(port, "GET / HTTP/1.1\r\nHost: slow\r\n\r\n");
    await slow.arrived;

    await file.save(
      config(`listeners:
  - { name: out, kind: outbound, port: 0 }
services:
  - { name: hello, endpoints: [{ address: "${c.address}" }] }
  - { name: fresh, endpoints: [{ address: "${b.address}" }] }
`),
    );
    const reloaded = await logged(remora, "config reloaded");
    expect(reloaded).toMatchObject({
      servicesAdded: ["fresh.default"],
      servicesRemoved: ["gone.default", "slow.default"],
      servicesChanged: ["hello.default"],
    });
    expect(reloaded.hash).not.toBe(before.hash);
    expect(logs(remora, "reloading config")[0]).toMatchObject({ trigger: "file change" });

    expect(await ask(port, "hello")).toEqual({ status: 200, body: "c" });
    expect(await ask(port, "fresh")).toEqual({ status: 200, body: "b" });
    expect((await ask(port, "gone")).status).toBe(404);
    expect((await ask(port, "slow")).status).toBe(404);

    slow.release();
    const res = await inFlight;
    expect(res.status).toBe(200);
    expect(res.body.toString()).toBe("slow done");

    const dump = await (await admin(remora, "/config_dump")).json();
    expect(dump.hash).toBe(reloaded.hash);
    expect(dump.reloads).toMatchObject({ ok: 1, failed: 0, lastError: null });
    expect(Date.parse(dump.appliedAt)).toBeGreaterThanOrEqual(Date.parse(before.appliedAt));
    expect(dump.config.services.map((s: { name: string }) => s.name)).toEqual(["hello", "fresh"]);
    const clusters = await (await admin(remora, "/clusters")).json();
    expect(clusters.map((cl: { name: string }) => cl.name).sort()).toEqual([
      "fresh.default",
      "hello.default",
    ]);
  });

  it("keeps the running config on a bad file, logs every issue by key path, counts it", async () => {
    const a = await named("a");
    const slow = await slowBackend();
    const good = config(`listeners:
  - { name: out, kind: outbound, port: 0 }
services:
  - { name: hello, endpoints: [{ address: "${a.address}" }] }
  - { name: slow, endpoints: [{ address: "${slow.backend.address}" }] }
`);
    const file = await configFile(good);
    const remora = await spawnRemora(["run", "-c", file.path]);
    running.push(remora);
    const port = remora.ports.get("out")!;
    const before = await (await admin(remora, "/config_dump")).json();
    const inFlight = RawClient.exchange(port, "GET / HTTP/1.1\r\nHost: slow\r\n\r\n");
    await slow.arrived;

    await file.save(
      config(`listeners:
  - { name: out, kind: outbound, port: 99999 }
services:
  - { name: hello, bogus: 1, endpoints: [] }
`),
    );
    const failed = await logged(remora, "config reload failed");
    expect(failed.level).toBe(50);
    const paths = (failed.issues as { path: string }[]).map((issue) => issue.path);
    expect(paths).toEqual(["listeners[0].port", "services[0].bogus"]);
    expect(failed.msg).toContain("listeners[0].port");

    expect(await ask(port, "hello")).toEqual({ status: 200, body: "a" });
    slow.release();
    expect((await inFlight).body.toString()).toBe("slow done");
    const dump = await (await admin(remora, "/config_dump")).json();
    expect(dump.hash).toBe(before.hash);
    expect(dump.config).toEqual(before.config);
    expect(dump.reloads.ok).toBe(0);
    expect(dump.reloads.failed).toBe(1);
    expect(dump.reloads.lastError).toContain("services[0].bogus");

    // Fixing the file applies it and clears the error.
    await file.save(good.replace("- { name: slow", "- { name: slow2"));
    await logged(remora, "config reloaded");
    const fixed = await (await admin(remora, "/config_dump")).json();
    expect(fixed.reloads).toMatchObject({ ok: 1, failed: 1, lastError: null });
  });

  it("adds and removes listeners without touching another listener's connections", async () => {
    const a = await named("a");
    const file = await configFile(
      config(`listeners:
  - { name: out, kind: outbound, port: 0 }
  - { name: extra, kind: outbound, port: 0 }
  - { name: moved, kind: outbound, port: 0 }
services:
  - { name: hello, endpoints: [{ address: "${a.address}" }] }
`),
    );
    const remora = await spawnRemora(["run", "-c", file.path], 3);
    running.push(remora);
    const extraPort = remora.ports.get("extra")!;
    const movedPort = remora.ports.get("moved")!;
    const client = await RawClient.open(remora.ports.get("out")!);
    client.write("GET / HTTP/1.1\r\nHost: hello\r\n\r\n");
    expect((await client.response()).body.toString()).toBe("a");

    await file.save(
      config(`listeners:
  - { name: out, kind: outbound, port: 0 }
  - { name: moved, kind: outbound, port: 0, timeouts: { idle: 30s } }
  - { name: added, kind: outbound, port: 0 }
services:
  - { name: hello, endpoints: [{ address: "${a.address}" }] }
`),
    );
    const reloaded = await logged(remora, "config reloaded");
    expect(reloaded).toMatchObject({
      listenersAdded: ["added"],
      listenersRemoved: ["extra"],
      listenersRebound: ["moved"],
    });
    const ready = logs(remora, "listener ready");
    const added = ready.find((r) => r.listener === "added")!.port as number;
    const moved = ready.filter((r) => r.listener === "moved").at(-1)!.port as number;
    expect(moved).not.toBe(movedPort);

    // The untouched listener's keep-alive connection carries on.
    client.write("GET / HTTP/1.1\r\nHost: hello\r\n\r\n");
    const again = await client.response();
    expect(again.body.toString()).toBe("a");
    expect(again.header("connection")).not.toBe("close");
    expect(client.closed).toBe(false);
    client.close();

    expect(await ask(added, "hello")).toEqual({ status: 200, body: "a" });
    expect(await ask(moved, "hello")).toEqual({ status: 200, body: "a" });
    expect(await refuses(extraPort)).toBe(true);
    expect(await refuses(movedPort)).toBe(true);
    const listeners = await (await admin(remora, "/listeners")).json();
    expect(listeners.map((l: { name: string }) => l.name)).toEqual(["out", "moved", "added"]);
  });

  it("reloads on SIGHUP and POST /reload; an unchanged file is a logged no-op", async () => {
    const a = await named("a");
    const file = await configFile(
      config(`listeners:
  - { name: out, kind: outbound, port: 0 }
services:
  - { name: hello, endpoints: [{ address: "${a.address}" }] }
`),
    );
    const remora = await spawnRemora(["run", "-c", file.path]);
    running.push(remora);
    remora.child.kill("SIGHUP");
    expect(await logged(remora, "reloading config")).toMatchObject({ trigger: "SIGHUP" });
    await logged(remora, "config unchanged; nothing to reload");
    const res = await admin(remora, "/reload", "POST");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ result: "unchanged" });
    expect(logs(remora, "reloading config")[1]).toMatchObject({ trigger: "POST /reload" });
    const dump = await (await admin(remora, "/config_dump")).json();
    expect(dump.reloads).toMatchObject({ ok: 2, failed: 0 });
    expect(remora.child.exitCode).toBeNull();
    expect(await ask(remora.ports.get("out")!, "hello")).toEqual({ status: 200, body: "a" });
  });

  it("logs an admin address or port change as needing a restart and keeps the admin API", async () => {
    const a = await named("a");
    const base = `listeners:
  - { name: out, kind: outbound, port: 0 }
services:
  - { name: hello, endpoints: [{ address: "${a.address}" }] }
`;
    const file = await configFile(config(base));
    const remora = await spawnRemora(["run", "-c", file.path]);
    running.push(remora);
    await file.save(
      `admin: { port: 1, address: 127.0.0.2 }\nprobes: { port: null }\nmetrics: { port: null }\n${base}  - { name: more }\n`,
    );
    const reloaded = await logged(remora, "config reloaded");
    expect(reloaded.needsRestart).toEqual(["admin.port", "admin.address"]);
    const warnings = logs(remora, "config change needs a restart; keeping the running value");
    expect(warnings).toEqual([
      expect.objectContaining({ level: 40, key: "admin.port", running: 0, wanted: 1 }),
      expect.objectContaining({ key: "admin.address", running: "127.0.0.1", wanted: "127.0.0.2" }),
    ]);
    const dump = await (await admin(remora, "/config_dump")).json();
    expect(dump.config.admin).toEqual({ port: 0, address: "127.0.0.1" });
    expect(dump.config.services.map((s: { name: string }) => s.name)).toEqual(["hello", "more"]);
  });

  it("POST /reload answers 400 with the issues of a bad file", async () => {
    const a = await named("a");
    const file = await configFile(
      config(`listeners:
  - { name: out, kind: outbound, port: 0 }
services:
  - { name: hello, endpoints: [{ address: "${a.address}" }] }
`),
    );
    const remora = await spawnRemora(["run", "-c", file.path]);
    running.push(remora);
    // Written in place and asked for at once: the outcome comes from this request's attempt
    // (or a watch-triggered one before it; both are the same file).
    await writeFile(file.path, config("listeners: []\n"));
    const res = await admin(remora, "/reload", "POST");
    expect(res.status).toBe(400);
    const body = await res.json();
    expect(body.result).toBe("failed");
    expect(body.error).toContain("listeners: at least one listener is required");
    expect(await ask(remora.ports.get("out")!, "hello")).toEqual({ status: 200, body: "a" });
  });
  it("turns the access log on, moves it, and keeps it when the new path cannot be opened", async () => {
    const a = await named("a");
    const base = `listeners:
  - { name: out, kind: outbound, port: 0 }
services:
  - { name: hello, endpoints: [{ address: "${a.address}" }] }
`;
    const file = await configFile(config(base));
    const dir = file.path.slice(0, file.path.lastIndexOf("/"));
    const remora = await spawnRemora(["run", "-c", file.path]);
    running.push(remora);
    const port = remora.ports.get("out")!;
    await ask(port, "hello"); // before the log exists: not logged anywhere
    // A relative path resolves against the config file's directory, as at startup.
    await file.save(config(`accessLog: { enabled: true, path: first.log }\n${base}`));
    const on = await logged(remora, "config reloaded");
    expect(on.accessLog).toMatchObject({ enabled: true, path: join(dir, "first.log") });
    await ask(port, "hello");
    await file.save(config(`accessLog: { enabled: true, path: second.log }\n${base}`));
    await logged(remora, "config reloaded", 2);
    await ask(port, "hello");
    await ask(port, "hello");
    // A path in a directory that does not exist: the reload fails and the second log stays.
    await file.save(config(`accessLog: { enabled: true, path: nowhere/third.log }\n${base}`));
    await logged(remora, "config reload failed");
    await ask(port, "hello");
    const dump = await (await admin(remora, "/config_dump")).json();
    expect(dump.reloads).toMatchObject({ ok: 2, failed: 1 });
    expect(dump.reloads.lastError).toContain("accessLog.path");
    expect(dump.config.accessLog.path).toBe(join(dir, "second.log"));
    await remora.stop("SIGTERM"); // flushes the log
    const lines = (name: string) =>
      readFileSync(join(dir, name), "utf8")
        .split("\n")
        .filter((line) => line !== "")
        .map((line) => JSON.parse(line));
    expect(lines("first.log")).toHaveLength(1);
    expect(lines("second.log")).toHaveLength(3);
    expect(lines("second.log")[0]).toMatchObject({ response_code: 200, authority: "hello" });
  });

  it("adds, moves and drops the discovery file; readiness holds throughout", async () => {
    const a = await named("a");
    const b = await named("b");
    const listeners = "listeners: [{ name: out, kind: outbound, port: 0 }]\n";
    const file = await configFile(config(listeners));
    const dir = join(file.path, "..");
    await writeFile(
      join(dir, "a.yaml"),
      `services: [{ name: found, endpoints: [{ address: "${a.address}" }] }]\n`,
    );
    await writeFile(
      join(dir, "b.yaml"),
      `services: [{ name: found, endpoints: [{ address: "${b.address}" }] }]\n`,
    );
    const remora = await spawnRemora(["run", "-c", file.path]);
    running.push(remora);
    const port = remora.ports.get("out")!;
    const ready = async () => (await admin(remora, "/ready")).status;
    expect((await ask(port, "found")).status).toBe(404);

    // Relative to the config file's directory, as at start.
    await file.save(config(`discovery: { file: a.yaml }\n${listeners}`));
    expect((await logged(remora, "config reloaded", 1)).discoveryFile).toEqual({
      from: null,
      to: join(dir, "a.yaml"),
    });
    expect(await ready()).toBe(200);
    expect(await ask(port, "found")).toEqual({ status: 200, body: "a" });

    await file.save(config(`discovery: { file: b.yaml }\n${listeners}`));
    await logged(remora, "config reloaded", 2);
    expect(await ready()).toBe(200);
    expect(await ask(port, "found")).toEqual({ status: 200, body: "b" });

    // A missing discovery file fails the reload before anything changes.
    await file.save(config(`discovery: { file: nope.yaml }\n${listeners}`));
    expect((await logged(remora, "config reload failed")).msg).toContain("cannot read");
    expect(await ask(port, "found")).toEqual({ status: 200, body: "b" });

    await file.save(config(listeners));
    await logged(remora, "config reloaded", 3);
    expect(await ready()).toBe(200);
    expect((await ask(port, "found")).status).toBe(404);
  });
});

describe("quick mode", () => {
  it("logs that SIGHUP has nothing to reload and keeps running", async () => {
    const a = await named("a");
    const remora = await spawnRemora([
      "run",
      "--listen",
      "0",
      "--admin-port",
      "0",
      "--service",
      `hello=${a.address}`,
    ]);
    running.push(remora);
    remora.child.kill("SIGHUP");
    expect(await logged(remora, "nothing to reload: started without a config file")).toMatchObject({
      trigger: "SIGHUP",
    });
    expect(remora.child.exitCode).toBeNull();
    expect(await ask(remora.ports.get("outbound")!, "hello")).toEqual({ status: 200, body: "a" });
    expect((await admin(remora, "/reload", "POST")).status).toBe(409);
  });
});

describe("Runtime.reload (in process)", () => {
  /** A port that was free a moment ago. */
  async function freePort(): Promise<number> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise((resolve) => server.close(resolve));
    return port;
  }

  const load = (text: string) => ({
    config: parseConfig(text, "next.yaml"),
    serviceDefaults: serviceDefaults(),
  });

  it("rebinds a listener whose settings changed on the port its old version releases", async () => {
    const a = await named("a");
    const port = await freePort();
    const services = `services: [{ name: hello, endpoints: [{ address: "${a.address}" }] }]\n`;
    const remora = await startRemora(
      config(`listeners: [{ name: out, kind: outbound, port: ${port} }]\n${services}`),
    );
    try {
      const outcome = await remora.runtime.reload(
        load(
          config(
            `listeners: [{ name: out, kind: outbound, port: ${port}, maxRequestHeadersKb: 1 }]\n${services}`,
          ),
        ),
      );
      expect(outcome).toMatchObject({ result: "applied", changes: { listenersRebound: ["out"] } });
      expect(remora.runtime.listeners).toEqual([expect.objectContaining({ name: "out", port })]);
      expect(await ask(port, "hello")).toEqual({ status: 200, body: "a" });
      // The new settings are in force: a 2 KiB head is over the new 1 KiB limit.
      const big = await RawClient.exchange(
        port,
        `GET / HTTP/1.1\r\nHost: hello\r\nx-big: ${"x".repeat(2048)}\r\n\r\n`,
      );
      expect(big.status).toBe(431);
    } finally {
      await remora.stop();
    }
  });

  it("changes nothing when a new listener cannot bind, and closes what it had bound", async () => {
    const a = await named("a");
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const takenPort = (taken.address() as AddressInfo).port;
    const freeNow = await freePort();
    const services = (address: string) =>
      `services: [{ name: hello, endpoints: [{ address: "${address}" }] }]\n`;
    const remora = await startRemora(
      config(`listeners: [{ name: out, kind: outbound, port: 0 }]\n${services(a.address)}`),
    );
    try {
      const before = remora.runtime.config;
      const outcome = await remora.runtime.reload(
        load(
          config(`listeners:
  - { name: out, kind: outbound, port: 0 }
  - { name: first, kind: outbound, port: ${freeNow} }
  - { name: second, kind: outbound, port: ${takenPort} }
${services("127.0.0.1:9")}`),
        ),
      );
      expect(outcome.result).toBe("failed");
      expect(outcome.error).toContain("EADDRINUSE");
      expect(remora.runtime.config).toBe(before);
      expect(remora.runtime.reloads).toMatchObject({ ok: 0, failed: 1 });
      expect(remora.runtime.listeners.map((l) => l.name)).toEqual(["out"]);
      expect(await refuses(freeNow)).toBe(true);
      // Services were not swapped either.
      expect(await ask(remora.port("out"), "hello")).toEqual({ status: 200, body: "a" });
    } finally {
      await remora.stop();
      await new Promise((resolve) => taken.close(resolve));
    }
  });
});
