/**
 * Shared test plumbing: real servers on 127.0.0.1 port 0, a raw-socket client, and remora
 * either in-process (Runtime) or as a real child process (the CLI).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import {
  createServer as createHttpServer,
  type Server as HttpServer,
  type IncomingMessage,
  type ServerResponse,
} from "node:http";
import { type AddressInfo, connect, createServer, type Server, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { parseConfig, serviceDefaults } from "../proxy/config/load.js";
import type { ExchangeRecord } from "../proxy/exchange.js";
import { Runtime } from "../proxy/runtime.js";

export const CLI = fileURLToPath(new URL("../dist/proxy/cli.js", import.meta.url));

/** A raw TCP backend that records every byte it receives and answers with a scripted reply. */
export interface RawBackend {
  readonly port: number;
  readonly address: string;
  /** Bytes received, per connection, in arrival order. */
  readonly received: Buffer[][];
  readonly connections: number;
  all(): string;
  close(): Promise<void>;
}

export async function rawBackend(
  onData?: (socket: Socket, data: Buffer, all: Buffer) => void,
): Promise<RawBackend> {
  const received: Buffer[][] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    const mine: Buffer[] = [];
    received.push(mine);
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    socket.on("data", (data) => {
      mine.push(data);
      onData?.(socket, data, Buffer.concat(mine));
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    received,
    get connections() {
      return received.length;
    },
    all: () => received.map((c) => Buffer.concat(c).toString("latin1")).join(""),
    close: async () => {
      for (const s of sockets) s.destroy();
      server.close();
      await once(server, "close");
    },
  };
}

/** A node:http backend; the handler defaults to echoing method, url, headers and body as JSON. */
export interface HttpBackend {
  readonly port: number;
  readonly address: string;
  readonly server: HttpServer;
  /** Remote ports of connections accepted, to observe upstream keep-alive. */
  readonly connectionPorts: number[];
  close(): Promise<void>;
}

export async function httpBackend(
  handler?: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void,
): Promise<HttpBackend> {
  const connectionPorts: number[] = [];
  const server = createHttpServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      if (handler) return handler(req, res, body);
      const payload = JSON.stringify({
        method: req.method,
        url: req.url,
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        body: body.toString("latin1"),
        trailers: req.trailers,
      });
      res.writeHead(200, { "content-type": "application/json" });
      res.end(payload);
    });
  });
  server.on("connection", (socket: Socket) => connectionPorts.push(socket.remotePort ?? 0));
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    server,
    connectionPorts,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}

/** A backend that answers every request with `name` (which endpoint served it). */
export function namedBackend(name: string): Promise<HttpBackend> {
  return httpBackend((_req, res) => res.end(name));
}

export interface InProcessRemora {
  readonly runtime: Runtime;
  readonly records: ExchangeRecord[];
  /** Port of the named listener (default: the first). */
  port(name?: string): number;
  stop(): Promise<void>;
}

/** remora in this process, from a YAML config text (ports may be 0). */
export async function startRemora(yaml: string): Promise<InProcessRemora> {
  const records: ExchangeRecord[] = [];
  const runtime = new Runtime(parseConfig(yaml, "test.yaml"), serviceDefaults(), {
    reporter: { report: (r) => records.push({ ...r }) },
  });
  await runtime.start();
  return {
    runtime,
    records,
    port: (name) => {
      const listener =
        name === undefined ? runtime.listeners[0] : runtime.listeners.find((l) => l.name === name);
      if (listener === undefined) throw new Error(`no listener ${name}`);
      return listener.port;
    },
    stop: () => runtime.stop(),
  };
}

/** The usual one-service outbound config for tests. */
export function outboundConfig(endpoints: string[], extra = ""): string {
  return `
admin: { port: 0 }
probes: { port: null }
metrics: { port: null }
listeners:
  - { name: outbound, kind: outbound, port: 0 }
services:
  - name: hello
    endpoints:
${endpoints.map((e) => `      - { address: "${e}" }`).join("\n")}
${extra}`;
}

/** Send raw bytes, collect everything until the server closes or `idleMs` passes quietly. */
export async function rawRequest(
  port: number,
  bytes: string | Buffer | (string | Buffer)[],
  idleMs = 300,
): Promise<{ text: string; closed: boolean }> {
  const socket = connect(port, "127.0.0.1");
  socket.on("error", () => {});
  await once(socket, "connect");
  const parts = Array.isArray(bytes) ? bytes : [bytes];
  for (const part of parts)
    socket.write(typeof part === "string" ? Buffer.from(part, "latin1") : part);
  return collect(socket, idleMs);
}

export function collect(
  socket: Socket,
  idleMs: number,
): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let timer = setTimeout(done, idleMs);
    let closed = false;
    function done() {
      clearTimeout(timer);
      socket.removeAllListeners("data");
      socket.destroy();
      resolve({ text: Buffer.concat(chunks).toString("latin1"), closed });
    }
    socket.on("data", (d: Buffer) => {
      chunks.push(d);
      clearTimeout(timer);
      timer = setTimeout(done, idleMs);
    });
    socket.on("close", () => {
      closed = true;
      done();
    });
  });
}

/** A persistent raw client connection for keep-alive and pipelining tests. */
export class RawClient {
  readonly socket: Socket;
  #buf = Buffer.alloc(0);
  #waiters: (() => void)[] = [];
  closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on("data", (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d]);
      for (const w of this.#waiters.splice(0)) w();
    });
    socket.on("close", () => {
      this.closed = true;
      for (const w of this.#waiters.splice(0)) w();
    });
    socket.on("error", () => {});
  }

  static async open(port: number): Promise<RawClient> {
    const socket = connect(port, "127.0.0.1");
    await once(socket, "connect");
    return new RawClient(socket);
  }

  /** One request on a new connection: send `raw`, read one response, close. */
  static async exchange(port: number, raw: string, isHead = false): Promise<ParsedResponse> {
    const client = await RawClient.open(port);
    client.write(raw);
    try {
      return await client.response(5000, isHead);
    } finally {
      client.close();
    }
  }

  write(text: string | Buffer): void {
    this.socket.write(typeof text === "string" ? Buffer.from(text, "latin1") : text);
  }

  /** Read one complete HTTP/1.1 response (Content-Length, chunked, or close-delimited). */
  async response(timeoutMs = 5000, isHead = false): Promise<ParsedResponse> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const parsed = parseResponse(this.#buf, this.closed, isHead);
      if (parsed !== null) {
        this.#buf = this.#buf.subarray(parsed.length);
        return parsed;
      }
      if (this.closed)
        throw new Error(`connection closed; got ${JSON.stringify(this.#buf.toString("latin1"))}`);
      if (Date.now() > deadline)
        throw new Error(`timeout; got ${JSON.stringify(this.#buf.toString("latin1"))}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 50);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** Everything received and not yet consumed as a response. */
  take(): string {
    const text = this.#buf.toString("latin1");
    this.#buf = Buffer.alloc(0);
    return text;
  }

  /** Wait for the server to close the connection. */
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.closed;
  }

  close(): void {
    this.socket.destroy();
  }
}

export interface ParsedResponse {
  status: number;
  head: string;
  headers: Map<string, string[]>;
  body: Buffer;
  length: number;
  header(name: string): string | undefined;
}

/** Minimal test-side response parser (trusting: it reads what remora sends to clients). */
export function parseResponse(buf: Buffer, closed: boolean, isHead = false): ParsedResponse | null {
  const end = buf.indexOf("\r\n\r\n");
  if (end === -1) return null;
  const head = buf.subarray(0, end).toString("latin1");
  const lines = head.split("\r\n");
  const status = Number(lines[0]!.split(" ")[1]);
  const headers = new Map<string, string[]>();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon).toLowerCase();
    const list = headers.get(name) ?? [];
    list.push(line.slice(colon + 1).trim());
    headers.set(name, list);
  }
  const header = (name: string) => headers.get(name)?.join(", ");
  let pos = end + 4;
  const make = (body: Buffer, length: number): ParsedResponse => ({
    status,
    head,
    headers,
    body,
    length,
    header,
  });
  if (status < 200 || status === 204 || status === 304 || isHead) return make(Buffer.alloc(0), pos);
  const te = header("transfer-encoding");
  if (te !== undefined) {
    const parts: Buffer[] = [];
    for (;;) {
      const lineEnd = buf.indexOf("\r\n", pos);
      if (lineEnd === -1) return null;
      const size = Number.parseInt(buf.subarray(pos, lineEnd).toString("latin1"), 16);
      if (size === 0) {
        const trailerEnd = buf.indexOf("\r\n\r\n", lineEnd);
        const emptyEnd =
          buf.subarray(lineEnd, lineEnd + 4).toString("latin1") === "\r\n\r\n" ? lineEnd + 4 : -1;
        const finalEnd = emptyEnd !== -1 ? emptyEnd : trailerEnd === -1 ? -1 : trailerEnd + 4;
        if (finalEnd === -1) return null;
        const trailers = buf.subarray(lineEnd + 2, finalEnd - 2).toString("latin1");
        const res = make(Buffer.concat(parts), finalEnd);
        if (trailers.length > 0) res.headers.set("__trailers", [trailers]);
        return res;
      }
      if (buf.length < lineEnd + 2 + size + 2) return null;
      parts.push(buf.subarray(lineEnd + 2, lineEnd + 2 + size));
      pos = lineEnd + 2 + size + 2;
    }
  }
  const cl = header("content-length");
  if (cl !== undefined) {
    const n = Number(cl);
    if (buf.length < pos + n) return null;
    return make(buf.subarray(pos, pos + n), pos + n);
  }
  if (!closed) return null;
  return make(buf.subarray(pos), buf.length);
}

/** Spawn the real CLI; resolves once every listener has logged its bound port. */
export interface SpawnedRemora {
  readonly child: ChildProcess;
  readonly ports: Map<string, number>;
  readonly adminPort: number;
  stderr(): string;
  /** Everything the process wrote to stdout so far (access logs to "stdout"). */
  stdout(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function spawnRemora(args: string[], listenerCount = 1): Promise<SpawnedRemora> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  let stdout = "";
  child.stdout!.on("data", (d: Buffer) => (stdout += d.toString()));
  const ports = new Map<string, number>();
  let adminPort = -1;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`remora did not start: ${stderr}`)), 10_000);
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
      for (const line of stderr.split("\n")) {
        if (!line.startsWith("{")) continue;
        try {
          const rec = JSON.parse(line);
          if (rec.msg === "listener ready") ports.set(rec.listener, rec.port);
          if (rec.msg === "admin API listening") adminPort = rec.port;
        } catch {}
      }
      if (ports.size >= listenerCount && adminPort !== -1) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`remora exited ${code}: ${stderr}`));
    });
  });
  return {
    child,
    ports,
    adminPort,
    stderr: () => stderr,
    stdout: () => stdout,
    stop: async (signal = "SIGTERM") => {
      if (child.exitCode !== null) return child.exitCode;
      child.kill(signal);
      const [code] = await once(child, "exit");
      return code as number | null;
    },
  };
}

/** Peak resident set of a process, in bytes (Linux VmHWM). */
export async function peakRss(pid: number): Promise<number> {
  const { readFile } = await import("node:fs/promises");
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const match = /VmHWM:\s+(\d+) kB/.exec(status);
  return match ? Number(match[1]) * 1024 : 0;
}
