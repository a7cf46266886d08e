/**
 * `connectionPool.http.streamIdleTimeout` through a real remora process and real backends on
 * 127.0.0.1 (issue 14, item 4): a backend that accepts and never answers no longer holds a client
 * connection forever. What a test observes: the client's answer (or its connection closing), the
 * access log on stdout, `/clusters` (an endpoint's `eligible`) and what each backend received.
 * Waits are for outcomes, with deadlines; nothing asserts how long anything took.
 */
import { once } from "node:events";
import { mkdtemp, writeFile } from "node:fs/promises";
import { request as httpRequest, type ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import {
  httpBackend,
  type RawBackend,
  rawBackend,
  type SpawnedRemora,
  spawnRemora,
} from "./harness.js";

const running: SpawnedRemora[] = [];
const closers: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) await r.stop("SIGKILL");
  for (const close of closers.splice(0).reverse()) await close();
});

// ------------------------------------------------------------------------------ backends

interface Named {
  readonly address: string;
  /** Request paths received, in order. */
  readonly paths: string[];
}

/** Answers every request with its name. */
async function named(name: string): Promise<Named> {
  const paths: string[] = [];
  const backend = await httpBackend((req, res) => {
    paths.push(req.url ?? "");
    res.end(name);
  });
  closers.push(() => backend.close());
  return { address: backend.address, paths };
}

/** Reads every request and never answers until released (then answers "late"). */
async function hanging(): Promise<Named & { release(): void }> {
  const paths: string[] = [];
  const held: ServerResponse[] = [];
  const backend = await httpBackend((req, res) => {
    paths.push(req.url ?? "");
    held.push(res);
  });
  const release = () => {
    for (const res of held.splice(0)) if (!res.destroyed) res.end("late");
  };
  closers.push(async () => {
    release();
    await backend.close();
  });
  return { address: backend.address, paths, release };
}

/** A raw backend that runs `script` once per request head it receives. */
async function scripted(script: (socket: Socket) => void): Promise<RawBackend> {
  const answered = new Set<Socket>();
  const backend = await rawBackend((socket, _data, all) => {
    if (answered.has(socket) || !all.includes("\r\n\r\n")) return;
    answered.add(socket);
    script(socket);
  });
  closers.push(() => backend.close());
  return backend;
}

// ------------------------------------------------------------------------------ remora

function config(endpoints: string[], idle: string, extra = ""): string {
  return `admin: { port: 0 }
probes: { port: null }
metrics: { port: null }
accessLog: { enabled: true }
listeners:
  - { name: outbound, kind: outbound, port: 0 }
services:
  - name: hello
    endpoints:
${endpoints.map((e) => `      - { address: "${e}" }`).join("\n")}
    trafficPolicy:
      loadBalancer: { policy: round-robin }
      connectionPool: { http: { streamIdleTimeout: ${idle} } }
      outlierDetection: { mode: fail-fast, baseEjectionTime: 1h }
${extra}
`;
}

async function start(text: string): Promise<{ remora: SpawnedRemora; port: number }> {
  const dir = await mkdtemp(join(tmpdir(), "remora-stream-idle-"));
  const path = join(dir, "remora.yaml");
  await writeFile(path, text);
  const remora = await spawnRemora(["run", "-c", path]);
  running.push(remora);
  return { remora, port: remora.ports.get("outbound")! };
}

/** Whether outlier detection has ejected the endpoint (from `/clusters`). */
async function ejected(remora: SpawnedRemora, address: string): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${remora.adminPort}/clusters`);
  const all = (await res.json()) as {
    name: string;
    endpoints: { address: string; health: { outlier?: { ejected: boolean } } }[];
  }[];
  const cluster = all.find((c) => c.name === "hello.default")!;
  return cluster.endpoints.find((e) => e.address === address)!.health.outlier?.ejected ?? false;
}

/** The access-log line of the request for `path` (waits for it). */
async function logged(remora: SpawnedRemora, path: string): Promise<Record<string, unknown>> {
  let line: Record<string, unknown> | undefined;
  await until(() => {
    line = remora
      .stdout()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .find((l) => l.path === path);
    return line !== undefined;
  }, `the access-log line of ${path}`);
  return line!;
}

async function until(check: () => Promise<boolean> | boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

let sequence = 0;
function fresh(label: string): string {
  return `/${label}/${++sequence}`;
}

interface Answer {
  status: number;
  body: string;
  flags: string | undefined;
}

/** One request on a new connection; rejects on a reset or a truncated response. */
function send(port: number, path: string, method = "GET", body?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host: "hello" };
    if (body !== undefined) headers["content-length"] = String(Buffer.byteLength(body));
    const req = httpRequest({ host: "127.0.0.1", port, path, method, headers }, (res) => {
      let text = "";
      res.setEncoding("latin1");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          body: text,
          flags: res.headers["x-remora-response-flags"] as string | undefined,
        }),
      );
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

/** A raw client connection that records what it receives and whether it closed. */
async function rawClient(
  port: number,
): Promise<{ socket: Socket; text(): string; closed(): boolean }> {
  const socket = connect(port, "127.0.0.1");
  socket.on("error", () => {});
  await once(socket, "connect");
  let text = "";
  let closed = false;
  socket.on("data", (d: Buffer) => (text += d.toString("latin1")));
  socket.on("close", () => (closed = true));
  closers.push(() => void socket.destroy());
  return { socket, text: () => text, closed: () => closed };
}

// ============================================================================== tests

describe("streamIdleTimeout: an upstream that goes silent", () => {
  it("a hanging backend among healthy ones: 504 UT, logged UT, and outlier detection ejects it", async () => {
    const a = await named("a");
    const h = await hanging();
    const c = await named("c");
    const { remora, port } = await start(config([a.address, h.address, c.address], "300ms"));
    const answers: Answer[] = [];
    // Round-robin: the hanging backend's turn comes within the first rotation.
    for (let i = 0; i < 3; i++) answers.push(await send(port, fresh("r")));
    expect(h.paths).toHaveLength(1);
    expect(answers.filter((x) => x.status !== 200)).toEqual([
      { status: 504, body: "upstream idle timeout\n", flags: "UT" },
    ]);
    expect((await logged(remora, h.paths[0]!)).response_flags).toBe("UT");
    // The timeout is reported as a result about the endpoint: fail-fast ejected it.
    expect(await ejected(remora, h.address)).toBe(true);
    for (let i = 0; i < 6; i++) expect((await send(port, fresh("after"))).status).toBe(200);
    expect(h.paths).toHaveLength(1);
  });

  it("is retried like a per-try timeout when retryOn allows: a GET succeeds on another endpoint", async () => {
    const h = await hanging();
    const other = await named("other");
    const { remora, port } = await start(
      config(
        [h.address, other.address],
        "300ms",
        `    retries: { attempts: 2, retryOn: "connect-failure,reset" }`,
      ),
    );
    // Round-robin starts at a random endpoint: the hanging one's turn comes within two requests.
    const answers: Answer[] = [];
    while (h.paths.length === 0 && answers.length < 2)
      answers.push(await send(port, fresh("retried")));
    expect(
      answers.every((x) => x.status === 200 && x.body === "other" && x.flags === undefined),
    ).toBe(true);
    const path = h.paths[0]!;
    expect(h.paths).toEqual([path]);
    expect(other.paths.filter((p) => p === path)).toHaveLength(1);
    const line = await logged(remora, path);
    expect(line.response_flags).toBe("-");
    expect(line.upstream_host).toBe(other.address);
  });

  it("a POST whose body reached the hanging backend is not retried: 504 UT, the other backend never sees it", async () => {
    const h = await hanging();
    const other = await named("other");
    const { remora, port } = await start(
      config(
        [h.address, other.address],
        "300ms",
        `    retries: { attempts: 2, retryOn: "connect-failure,reset" }`,
      ),
    );
    const answers: Answer[] = [];
    while (h.paths.length === 0 && answers.length < 2) {
      answers.push(await send(port, fresh("post"), "POST", "order=1"));
    }
    const path = h.paths[0]!;
    expect(h.paths).toEqual([path]);
    expect(answers.at(-1)).toEqual({ status: 504, body: "upstream idle timeout\n", flags: "UT" });
    expect(other.paths).not.toContain(path);
    expect((await logged(remora, path)).response_flags).toBe("UT");
  });

  it("a backend that sends the head and stalls mid-body: the client connection is reset, logged UT", async () => {
    const staller = await scripted((socket) => {
      socket.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial-body");
    });
    const { remora, port } = await start(config([staller.address], "300ms"));
    const client = await rawClient(port);
    const path = fresh("stall");
    client.socket.write(`GET ${path} HTTP/1.1\r\nHost: hello\r\n\r\n`);
    await until(() => client.closed(), "the client connection closed");
    const text = client.text();
    expect(text.startsWith("HTTP/1.1 200 OK\r\n")).toBe(true);
    expect(text.endsWith("\r\n\r\npartial-body")).toBe(true);
    expect((await logged(remora, path)).response_flags).toBe("UT");
    expect(await ejected(remora, staller.address)).toBe(true);
  });

  it("a slow but steady backend (a chunk every 100 ms for 1 s, timeout 300 ms) succeeds: every byte resets the timer", async () => {
    const steady = await scripted((socket) => {
      socket.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
      let sent = 0;
      const timer = setInterval(() => {
        if (socket.destroyed) return clearInterval(timer);
        if (++sent <= 10) socket.write(`1\r\n${sent % 10}\r\n`);
        else {
          clearInterval(timer);
          socket.write("0\r\n\r\n");
        }
      }, 100);
      closers.push(() => clearInterval(timer));
    });
    const { remora, port } = await start(config([steady.address], "300ms"));
    const path = fresh("steady");
    expect(await send(port, path)).toEqual({ status: 200, body: "1234567890", flags: undefined });
    expect((await logged(remora, path)).response_flags).toBe("-");
  });

  it("0s disables it: a request to a hanging backend is still waiting when it answers, and gets the answer", async () => {
    const h = await hanging();
    const { remora, port } = await start(config([h.address], "0s"));
    const path = fresh("patient");
    const answer = send(port, path);
    await until(() => h.paths.length === 1, "the request at the backend");
    // Several times a 300 ms timeout: nothing ends the exchange.
    await sleep(1000);
    h.release();
    expect(await answer).toEqual({ status: 200, body: "late", flags: undefined });
    expect((await logged(remora, path)).response_flags).toBe("-");
  });
});

describe("streamIdleTimeout: a client that goes silent", () => {
  it("a client that stops sending the body it announced gets 408 SI; the endpoint is not blamed", async () => {
    const h = await hanging();
    const { remora, port } = await start(config([h.address], "300ms"));
    const client = await rawClient(port);
    const path = fresh("upload");
    client.socket.write(`POST ${path} HTTP/1.1\r\nHost: hello\r\nContent-Length: 10\r\n\r\nabc`);
    await until(() => client.closed(), "the client connection closed");
    expect(client.text()).toMatch(/^HTTP\/1\.1 408 /);
    expect(client.text()).toContain("x-remora-response-flags: SI");
    expect(client.text().endsWith("stream idle timeout\n")).toBe(true);
    const line = await logged(remora, path);
    expect(line.response_flags).toBe("SI");
    // The attempt went to the endpoint, and fail-fast would have ejected it for a timeout.
    expect(line.upstream_host).toBe(h.address);
    expect(await ejected(remora, h.address)).toBe(false);
  });

  it("a slow but steady upload (a byte every 100 ms, timeout 300 ms) reaches the backend whole", async () => {
    const backend = await httpBackend((_req, res, body) => res.end(`got ${body.toString()}`));
    closers.push(() => backend.close());
    const { port } = await start(config([backend.address], "300ms"));
    const client = await rawClient(port);
    client.socket.write(
      `POST ${fresh("trickle")} HTTP/1.1\r\nHost: hello\r\nContent-Length: 10\r\n\r\n`,
    );
    for (let i = 0; i < 10; i++) {
      await sleep(100);
      client.socket.write(String(i));
    }
    await until(() => client.text().endsWith("got 0123456789"), "the backend's answer");
    expect(client.text()).toMatch(/^HTTP\/1\.1 200 /);
  });

  it("a client that stops reading a large response: both connections close, logged SI, the endpoint is not blamed", async () => {
    let upstreamClosed = false;
    const flood = await scripted((socket) => {
      socket.on("close", () => (upstreamClosed = true));
      socket.write("HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n");
      const chunk = Buffer.alloc(64 * 1024, 120);
      const pump = () => {
        while (!socket.destroyed && socket.write(chunk)) {}
      };
      socket.on("drain", pump);
      pump();
    });
    const { remora, port } = await start(config([flood.address], "300ms"));
    const client = await rawClient(port);
    client.socket.pause();
    const path = fresh("unread");
    client.socket.write(`GET ${path} HTTP/1.1\r\nHost: hello\r\n\r\n`);
    await until(() => upstreamClosed, "the upstream connection closed");
    expect((await logged(remora, path)).response_flags).toBe("SI");
    expect(await ejected(remora, flood.address)).toBe(false);
  });
});
