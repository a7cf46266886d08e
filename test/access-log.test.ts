/**
 * The access log and the run-time log level, through the real CLI and real sockets: the lines a
 * known exchange produces, sampling, stdout and file output, the drop path with a destination
 * that does not keep up, a full disk, and POST /logging.
 */
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { closeSync, constants, createReadStream, openSync } from "node:fs";
import { mkdtemp, readFile, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { configSchema } from "../proxy/config/schema.js";
import {
  CLI,
  type HttpBackend,
  httpBackend,
  RawClient,
  type SpawnedRemora,
  spawnRemora,
} from "./harness.js";
import { one, parseExposition } from "./prometheus-text.js";

const running: SpawnedRemora[] = [];
const backends: HttpBackend[] = [];
const cleanups: (() => void)[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) await r.stop("SIGKILL");
  for (const b of backends.splice(0)) await b.close();
  for (const c of cleanups.splice(0)) c();
});

/**
 * Ports that must not collide between parallel test files: the metrics and probe listeners
 * (Istio's 15090 and 15021) once the schema has them, off here.
 */
const QUIET_PORTS = ["metrics", "probes"]
  .filter((key) => key in configSchema.shape)
  .map((key) => `${key}: { port: null }\n`)
  .join("");

async function tempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), "remora-access-log-"));
}

/** remora from a config file in `dir` (so relative paths resolve there). */
async function startWithConfig(dir: string, yaml: string): Promise<SpawnedRemora> {
  const path = join(dir, "remora.yaml");
  await writeFile(path, `admin: { port: 0 }\n${QUIET_PORTS}${yaml}`);
  const remora = await spawnRemora(["run", "-c", path]);
  running.push(remora);
  return remora;
}

async function backend(body = "hello world"): Promise<HttpBackend> {
  const b = await httpBackend((req, res, received) => {
    const text = req.method === "POST" ? `got ${received.length}` : body;
    res.writeHead(200, { "content-length": Buffer.byteLength(text) });
    res.end(text);
  });
  backends.push(b);
  return b;
}

/** A port nothing listens on (connect fails with ECONNREFUSED). */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Poll `probe` until it returns a value; fails with `what` if it never does. */
async function until<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function jsonLines(text: string): Record<string, unknown>[] {
  return text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line));
}

/** SIGTERM, then everything the process wrote to stderr (its 'exit' can come before the last data). */
async function terminate(remora: SpawnedRemora): Promise<{ code: number | null; stderr: string }> {
  const stderr = remora.child.stderr!;
  const drained = stderr.closed ? Promise.resolve() : once(stderr, "close");
  const code = await remora.stop("SIGTERM");
  await drained;
  return { code, stderr: remora.stderr() };
}

async function accessLogStats(remora: SpawnedRemora): Promise<Record<string, number>> {
  const stats = await (await fetch(`http://127.0.0.1:${remora.adminPort}/stats`)).json();
  return stats.accessLog;
}

/** `count` GETs pipelined on one connection in batches; returns the statuses received. */
async function pipelinedGets(port: number, count: number, batch = 250): Promise<number[]> {
  const client = await RawClient.open(port);
  const statuses: number[] = [];
  try {
    for (let sent = 0; sent < count; sent += batch) {
      const n = Math.min(batch, count - sent);
      client.write("GET /load HTTP/1.1\r\nHost: hello\r\n\r\n".repeat(n));
      for (let i = 0; i < n; i++) statuses.push((await client.response(10_000)).status);
    }
  } finally {
    client.close();
  }
  return statuses;
}

describe("access log", () => {
  it("logs each exchange with Envoy's fields and the right values", async () => {
    const dir = await tempDir();
    const hello = await backend("hello world");
    const dead = await deadPort();
    const remora = await startWithConfig(
      dir,
      `accessLog: { enabled: true, path: access.log }
listeners:
  - { name: outbound, kind: outbound, port: 0 }
services:
  - { name: hello, endpoints: [{ address: "${hello.address}" }] }
  - { name: gone, endpoints: [{ address: "127.0.0.1:${dead}" }] }
`,
    );
    const port = remora.ports.get("outbound")!;
    const ok = await RawClient.exchange(
      port,
      "GET /greet?x=1 HTTP/1.1\r\nHost: hello\r\nUser-Agent: access-log-test/1\r\n" +
        "X-Forwarded-For: 192.0.2.10\r\nX-Request-Id: req-200\r\n\r\n",
    );
    expect(ok.body.toString()).toBe("hello world");
    const noRoute = await RawClient.exchange(
      port,
      "GET /nowhere HTTP/1.1\r\nHost: nobody\r\nUser-Agent: ua-404\r\n\r\n",
    );
    expect(noRoute.status).toBe(404);
    const failed = await RawClient.exchange(port, "GET /down HTTP/1.1\r\nHost: gone\r\n\r\n");
    expect(failed.status).toBe(502);
    const upload = "u".repeat(1234);
    const posted = await RawClient.exchange(
      port,
      `POST /upload HTTP/1.0\r\nHost: hello\r\nContent-Length: ${upload.length}\r\n\r\n${upload}`,
    );
    expect(posted.body.toString()).toBe("got 1234");

    // The relative path is resolved against the config file's directory.
    const lines = await until("four access-log lines", async () => {
      const found = jsonLines(await readFile(join(dir, "access.log"), "utf8").catch(() => ""));
      return found.length >= 4 ? found : undefined;
    });
    expect(lines).toHaveLength(4);
    const byPath = new Map(lines.map((line) => [line.path, line]));

    const get = byPath.get("/greet?x=1")!;
    expect(get).toMatchObject({
      method: "GET",
      protocol: "HTTP/1.1",
      response_code: 200,
      response_flags: "-",
      bytes_received: 0,
      bytes_sent: 11,
      x_forwarded_for: "192.0.2.10",
      user_agent: "access-log-test/1",
      request_id: "req-200",
      authority: "hello",
      upstream_host: hello.address,
      upstream_cluster: "hello.default",
      listener: "outbound",
    });
    expect(typeof get.upstream_service_time).toBe("number");
    expect(get.upstream_service_time as number).toBeLessThanOrEqual(get.duration as number);
    expect(Date.parse(get.start_time as string)).not.toBeNaN();

    expect(byPath.get("/nowhere")).toMatchObject({
      response_code: 404,
      response_flags: "NR",
      bytes_sent: "no route to a service for this host\n".length,
      user_agent: "ua-404",
      authority: "nobody",
      upstream_host: null,
      upstream_cluster: null,
      upstream_service_time: null,
      x_forwarded_for: null,
    });
    // Envoy gives a request without X-Request-Id one before routing; so does remora.
    expect(byPath.get("/nowhere")!.request_id).toMatch(/^[0-9a-f-]{36}$/);

    // Its only endpoint refused, and Istio's default retries (2, on connect failures) found it
    // refusing again: the retries were spent (URX), as Envoy logs it.
    expect(byPath.get("/down")).toMatchObject({
      response_code: 502,
      response_flags: "UF,URX",
      bytes_sent: "upstream connect failed\n".length,
      upstream_host: `127.0.0.1:${dead}`,
      upstream_cluster: "gone.default",
      upstream_service_time: null,
    });

    expect(byPath.get("/upload")).toMatchObject({
      method: "POST",
      protocol: "HTTP/1.0",
      response_code: 200,
      bytes_received: 1234,
      bytes_sent: "got 1234".length,
    });
  });

  it("writes to stdout by default, every exchange at sample 1", async () => {
    const dir = await tempDir();
    const hello = await backend();
    const remora = await startWithConfig(
      dir,
      `accessLog: { enabled: true }
listeners:
  - { name: outbound, kind: outbound, port: 0 }
services:
  - { name: hello, endpoints: [{ address: "${hello.address}" }] }
`,
    );
    let stdout = "";
    remora.child.stdout!.on("data", (d: Buffer) => {
      stdout += d.toString();
    });
    const statuses = await pipelinedGets(remora.ports.get("outbound")!, 30);
    expect(statuses.every((s) => s === 200)).toBe(true);
    // SIGTERM closes the access log, which writes what it holds before exiting.
    expect(await remora.stop("SIGTERM")).toBe(0);
    const lines = jsonLines(stdout);
    expect(lines).toHaveLength(30);
    expect(lines.every((l) => l.response_code === 200 && l.path === "/load")).toBe(true);
  });

  it("refuses to start when its file cannot be opened, naming the key", async () => {
    const dir = await tempDir();
    const path = join(dir, "remora.yaml");
    await writeFile(
      path,
      `admin: { port: 0 }\n${QUIET_PORTS}accessLog: { enabled: true, path: no-such-dir/access.log }
listeners:
  - { name: outbound, kind: outbound, port: 0 }
`,
    );
    const child = spawn(process.execPath, [CLI, "run", "-c", path], { stdio: "pipe" });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const [code] = await once(child, "close");
    expect(code).toBe(1);
    expect(stderr).toContain("accessLog.path: cannot open");
    expect(stderr).toContain(join(dir, "no-such-dir", "access.log"));
    expect(stderr).toContain("ENOENT");
  });

  it("writes nothing at sample 0", async () => {
    const dir = await tempDir();
    const hello = await backend();
    const remora = await startWithConfig(
      dir,
      `accessLog: { enabled: true, path: ${join(dir, "sampled.log")}, sample: 0 }
listeners:
  - { name: outbound, kind: outbound, port: 0 }
services:
  - { name: hello, endpoints: [{ address: "${hello.address}" }] }
`,
    );
    const statuses = await pipelinedGets(remora.ports.get("outbound")!, 40);
    expect(statuses.every((s) => s === 200)).toBe(true);
    expect(await accessLogStats(remora)).toMatchObject({ enabled: true, sample: 0, lines: 0 });
    expect(await remora.stop("SIGTERM")).toBe(0);
    expect(await readFile(join(dir, "sampled.log"), "utf8")).toBe("");
  });

  it("keeps serving while a destination that is not read fills up, and counts the drops", async () => {
    const dir = await tempDir();
    const fifo = join(dir, "access.fifo");
    execFileSync("mkfifo", [fifo]);
    // A reader that never reads: the pipe (64 KiB) and then remora's buffer (4 MiB) fill up.
    const idle = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    cleanups.push(() => closeSync(idle));
    const hello = await backend();
    const remora = await startWithConfig(
      dir,
      `accessLog: { enabled: true, path: access.fifo }
listeners:
  - { name: outbound, kind: outbound, port: 0 }
services:
  - { name: hello, endpoints: [{ address: "${hello.address}" }] }
`,
    );
    // ~430 bytes a line: 14,000 lines are more than the pipe, a chunk and the buffer hold.
    const total = 14_000;
    const statuses = await pipelinedGets(remora.ports.get("outbound")!, total);
    expect(statuses).toHaveLength(total);
    expect(statuses.every((s) => s === 200)).toBe(true);
    const stats = await accessLogStats(remora);
    expect(stats.lines).toBe(total);
    expect(stats.dropped).toBeGreaterThan(0);
    expect(stats.dropped).toBeLessThan(total);
    // The same counts on the metrics an operator alerts on.
    const scrape = await fetch(`http://127.0.0.1:${remora.adminPort}/stats/prometheus`);
    const families = parseExposition(await scrape.text());
    const counted = (result: string) =>
      one(families, "remora_access_log_lines_total", { result }).value;
    expect(counted("dropped")).toBe(stats.dropped);
    expect(counted("queued")).toBe(total - stats.dropped);
    expect(one(families, "remora_access_log_write_errors_total").value).toBe(0);

    // Once someone reads, the held lines arrive: every line is either delivered or counted.
    let text = "";
    const reader = createReadStream(fifo);
    cleanups.push(() => reader.destroy());
    reader.on("data", (d) => {
      text += d.toString();
    });
    const delivered = await until("held lines to arrive", async () => {
      const complete = text.slice(0, text.lastIndexOf("\n") + 1);
      const count = complete === "" ? 0 : complete.split("\n").length - 1;
      return count === total - stats.dropped ? count : undefined;
    });
    const lines = jsonLines(text);
    expect(lines).toHaveLength(delivered);
    expect(lines.every((l) => l.response_code === 200)).toBe(true);
    expect((await accessLogStats(remora)).dropped).toBe(stats.dropped);
    expect(await remora.stop("SIGTERM")).toBe(0);
  });

  it("exits on SIGTERM while its pipe is full and unread (regression: a blocked write held the exit)", async () => {
    const dir = await tempDir();
    const fifo = join(dir, "access.fifo");
    execFileSync("mkfifo", [fifo]);
    const idle = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    cleanups.push(() => closeSync(idle));
    const hello = await backend();
    const remora = await startWithConfig(
      dir,
      `accessLog: { enabled: true, path: ${fifo} }
listeners:
  - { name: outbound, kind: outbound, port: 0 }
services:
  - { name: hello, endpoints: [{ address: "${hello.address}" }] }
`,
    );
    // More than the pipe holds (64 KiB is ~150 lines).
    const statuses = await pipelinedGets(remora.ports.get("outbound")!, 600);
    expect(statuses.every((s) => s === 200)).toBe(true);
    // A write blocked on the pipe in libuv's pool would keep the process from exiting; remora
    // opens its destination non-blocking and gives up the held lines after a grace period.
    const { code, stderr } = await terminate(remora);
    expect(code).toBe(0);
    expect(stderr).toContain('"msg":"stopped"');
  });

  it("keeps serving on a full disk and still exits promptly (regression: exit flush looped on ENOSPC)", async () => {
    const dir = await tempDir();
    const hello = await backend();
    const remora = await startWithConfig(
      dir,
      `accessLog: { enabled: true, path: /dev/full }
listeners:
  - { name: outbound, kind: outbound, port: 0 }
services:
  - { name: hello, endpoints: [{ address: "${hello.address}" }] }
`,
    );
    const port = remora.ports.get("outbound")!;
    expect((await pipelinedGets(port, 400)).every((s) => s === 200)).toBe(true);
    const stats = await until("a write error", async () => {
      const s = await accessLogStats(remora);
      return s.errors > 0 ? s : undefined;
    });
    expect(stats.errors).toBeGreaterThan(0);
    expect((await pipelinedGets(port, 400)).every((s) => s === 200)).toBe(true);
    expect(remora.stderr()).toContain("access log write failed");
    // Before the fix, pino's exit flush retried ENOSPC forever and the process never exited.
    const { code, stderr } = await terminate(remora);
    expect(code).toBe(0);
    expect(stderr).toContain('"msg":"stopped"');
  });
});

describe("POST /logging", () => {
  it("changes the process log level at run time", async () => {
    const hello = await backend();
    const remora = await spawnRemora([
      "run",
      "--listen",
      "0",
      "--admin-port",
      "0",
      "--service",
      `hello=${hello.address}`,
    ]);
    running.push(remora);
    const admin = `http://127.0.0.1:${remora.adminPort}`;
    const debugLines = () =>
      jsonLines(remora.stderr()).filter((l) => l.level === 20 && l.msg === "admin request");

    expect(await (await fetch(`${admin}/logging`)).json()).toMatchObject({ level: "info" });
    expect((await fetch(`${admin}/ready?before`)).status).toBe(200);

    const bad = await fetch(`${admin}/logging?level=verbose`, { method: "POST" });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("trace, debug, info, warn, error, fatal, silent");
    expect((await fetch(`${admin}/logging`, { method: "POST" })).status).toBe(400);

    const set = await fetch(`${admin}/logging?level=debug`, { method: "POST" });
    expect(set.status).toBe(200);
    expect(await set.json()).toEqual({ level: "debug", previous: "info" });
    expect((await fetch(`${admin}/ready?after`)).status).toBe(200);
    await until("a debug line", async () =>
      debugLines().some((l) => l.url === "/ready?after") ? true : undefined,
    );
    expect(debugLines().some((l) => l.url === "/ready?before")).toBe(false);
    expect(jsonLines(remora.stderr())).toContainEqual(
      expect.objectContaining({
        msg: "log level changed via admin API",
        from: "info",
        to: "debug",
      }),
    );

    // And back: nothing at debug while at warn (the next debug line proves the stream is flushed).
    await fetch(`${admin}/logging?level=warn`, { method: "POST" });
    await fetch(`${admin}/ready?quiet`);
    await fetch(`${admin}/logging?level=debug`, { method: "POST" });
    await fetch(`${admin}/ready?loud`);
    await until("the next debug line", async () =>
      debugLines().some((l) => l.url === "/ready?loud") ? true : undefined,
    );
    expect(debugLines().some((l) => l.url === "/ready?quiet")).toBe(false);
    expect(await (await fetch(`${admin}/logging`)).json()).toMatchObject({ level: "debug" });
  });
});
