/**
 * The session's properties, checked through a real remora process with a node:http backend
 * (issue 14): for every generated connection,
 * - each request the codec model accepts is answered, by the backend (and then the backend got
 *   exactly that request: method, target, body, framing re-declared without whitespace) or by
 *   remora itself (404 when a mutation broke the Host it routes by);
 * - a rejected request is answered with the model's status and reaches no backend: the backend
 *   sees no byte of it, and never fails to parse anything remora forwards (Node's own parser,
 *   llhttp, is the second opinion on framing, as in test/differential.test.ts);
 * - remora keeps running.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import {
  createServer,
  type IncomingMessage,
  METHODS,
  type Server,
  type ServerResponse,
} from "node:http";
import { type AddressInfo, connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { CaseLimits, FuzzCase, Random } from "./cases.js";
import { int, splitAt, splitPoints } from "./cases.js";
import { type ConnectionVerdict, readConnection } from "./codec.js";

/** remora's defaults (proxy/config/schema.ts maxRequestHeadersKb, the 8 KiB target limit). */
export const REMORA_LIMITS: CaseLimits = { maxHeadBytes: 64 * 1024, maxTargetBytes: 8 * 1024 };
export const SERVICE = "hello";

interface BackendRequest {
  method: string;
  url: string;
  rawHeaders: string[];
  body: string;
  complete: boolean;
}

/** A node:http backend that records what it parsed, and every request it could not parse. */
export class RecordingBackend {
  readonly requests: BackendRequest[] = [];
  readonly parseErrors: string[] = [];
  readonly #server: Server;

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(): Promise<RecordingBackend> {
    // Limits above remora's, so any refusal here is about framing or syntax, not size.
    const server = createServer({ maxHeaderSize: 256 * 1024, requireHostHeader: true });
    server.maxHeadersCount = 0;
    const backend = new RecordingBackend(server);
    server.on("request", (req: IncomingMessage, res: ServerResponse) =>
      backend.#onRequest(req, res),
    );
    server.on(
      "clientError",
      (err: Error & { code?: string; rawPacket?: Buffer }, socket: Socket) => {
        // The connection closing inside a message remora aborted is not a parse disagreement.
        if (err.code !== "HPE_INVALID_EOF_STATE") {
          const raw = err.rawPacket?.toString("latin1").slice(0, 300) ?? "";
          backend.parseErrors.push(`${err.code} ${err.message} ${JSON.stringify(raw)}`);
        }
        socket.destroy();
      },
    );
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    return backend;
  }

  get address(): string {
    return `127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    const rec: BackendRequest = {
      method: req.method ?? "",
      url: req.url ?? "",
      rawHeaders: req.rawHeaders,
      body: "",
      complete: false,
    };
    this.requests.push(rec);
    req.on("data", (c: Buffer) => {
      rec.body += c.toString("latin1");
    });
    req.on("error", () => {});
    req.on("end", () => {
      rec.complete = true;
      res.end("ok");
    });
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    this.#server.close();
    await once(this.#server, "close");
  }
}

/** remora as a child process (the built CLI), one outbound listener routing `hello`. */
export class RemoraProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly #dir: string;

  private constructor(child: ChildProcess, port: number, dir: string) {
    this.child = child;
    this.port = port;
    this.#dir = dir;
  }

  /** `launch`: V8 flags and environment to start Node with (the benchmark passes the CLI's own). */
  static async start(
    backend: string,
    launch: { flags: string[]; env: Record<string, string> } = { flags: [], env: {} },
  ): Promise<RemoraProcess> {
    const dir = mkdtempSync(join(tmpdir(), "remora-fuzz-"));
    const config = join(dir, "remora.yaml");
    writeFileSync(
      config,
      `admin: { port: 0 }
probes: { port: null }
metrics: { port: null }
listeners:
  - { name: outbound, kind: outbound, port: 0 }
services:
  - name: ${SERVICE}
    endpoints:
      - { address: "${backend}" }
`,
    );
    // The built CLI, whether this file runs built (dist/fuzz) or from source under vitest.
    const relative = import.meta.url.includes("/dist/")
      ? "../proxy/cli.js"
      : "../dist/proxy/cli.js";
    const cli = fileURLToPath(new URL(relative, import.meta.url));
    const child = spawn(process.execPath, [...launch.flags, cli, "run", "-c", config], {
      stdio: ["ignore", "ignore", "pipe"],
      env: { ...process.env, ...launch.env },
    });
    let stderr = "";
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`remora did not start: ${stderr}`)), 15_000);
      let found = false;
      child.stderr!.on("data", (d: Buffer) => {
        // Once started, its logs (one line per rejected request) are read and dropped.
        if (found) return;
        stderr += d.toString();
        const match =
          /"msg":"listener ready"[^\n]*"port":(\d+)|"port":(\d+)[^\n]*"msg":"listener ready"/.exec(
            stderr,
          );
        if (match !== null) {
          found = true;
          stderr = "";
          clearTimeout(timer);
          resolve(Number(match[1] ?? match[2]));
        }
      });
      child.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`remora exited ${code}: ${stderr}`));
      });
    });
    return new RemoraProcess(child, port, dir);
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  async stop(): Promise<void> {
    if (this.running) {
      this.child.kill("SIGTERM");
      await once(this.child, "exit");
    }
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

interface Response {
  status: number;
}

/**
 * Sends `reads` on one connection and reads `expected` responses (the methods say which have no
 * body), or until remora closes; null when it neither answers nor closes within `timeoutMs`.
 */
async function exchange(
  port: number,
  reads: Buffer[],
  methods: string[],
  expected: number,
  timeoutMs: number,
): Promise<{ responses: Response[]; closed: boolean } | null> {
  const socket = connect(port, "127.0.0.1");
  socket.setNoDelay(true);
  socket.on("error", () => {});
  await once(socket, "connect");
  let buf = Buffer.alloc(0);
  const responses: Response[] = [];
  let closed = false;
  const done = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), timeoutMs);
    const finish = () => {
      clearTimeout(timer);
      resolve(true);
    };
    socket.on("data", (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const r = takeResponse(buf, methods[responses.length] === "HEAD");
        if (r === null) break;
        responses.push({ status: r.status });
        buf = buf.subarray(r.length);
      }
      if (responses.length >= expected) finish();
    });
    socket.on("close", () => {
      closed = true;
      finish();
    });
  });
  for (const read of reads) {
    if (socket.destroyed) break;
    socket.write(read);
    // A turn between writes, so remora sees separate reads more often than not.
    await new Promise((resolve) => setImmediate(resolve));
  }
  const ok = expected === 0 && !closed ? true : await done;
  socket.destroy();
  return ok ? { responses, closed } : null;
}

/** One response with Content-Length framing (all remora and the backend send here), or null. */
function takeResponse(buf: Buffer, head: boolean): { status: number; length: number } | null {
  const end = buf.indexOf("\r\n\r\n");
  if (end === -1) return null;
  const text = buf.toString("latin1", 0, end);
  const status = Number(text.slice(9, 12));
  if (status >= 100 && status < 200) return { status, length: end + 4 };
  const cl = /\r\ncontent-length: *(\d+)/i.exec(text);
  const bodyLength = head || cl === null ? 0 : Number(cl[1]);
  if (buf.length < end + 4 + bodyLength) return null;
  return { status, length: end + 4 + bodyLength };
}

/** Framing fields the backend received, as `name: value` lines, lower-cased names. */
function framingOf(rawHeaders: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!.toLowerCase();
    if (name === "content-length" || name === "transfer-encoding") {
      out.push(`${name}: ${rawHeaders[i + 1]}`);
    }
  }
  return out;
}

/** What the backend should have seen as framing for a request the model accepted. */
function expectedFraming(model: ConnectionVerdict["requests"][number]): RegExp {
  if (model.head.chunked) return /^transfer-encoding: ([a-z-]+, )*chunked$/;
  if (model.head.contentLength >= 0)
    return new RegExp(`^content-length: ${model.head.contentLength}$`);
  return /^$/;
}

/** Checks one case through remora; returns what went wrong, null, or "skip" (see below). */
export async function checkSession(
  remora: RemoraProcess,
  backend: RecordingBackend,
  c: FuzzCase,
  r: Random,
): Promise<string | null> {
  const model = readConnection([c.wire], REMORA_LIMITS);
  // Methods are extensible tokens (RFC 9110 §9.1) but llhttp knows a fixed list: a mutated
  // Content-Length that eats the next request's first byte makes `OST`, which remora forwards
  // and Node refuses. Not a framing question, so such connections are skipped.
  if (model.requests.some((q) => !METHODS.includes(q.head.method))) return "skip";
  const complete = model.requests.filter((q) => q.complete);
  const errorStatus = model.end.kind === "error" ? model.end.status : 0;
  const expected = complete.length + (errorStatus === 0 ? 0 : 1);
  const methods = complete.map((q) => q.head.method);
  const before = backend.requests.length;
  const errorsBefore = backend.parseErrors.length;
  const reads = splitAt(c.wire, splitPoints(r, c.wire.length, int(r, 1, 2048)));
  const result = await exchange(remora.port, reads, methods, expected, 3000);
  // Let anything remora might (wrongly) still forward arrive before judging.
  await new Promise((resolve) => setTimeout(resolve, 5));
  if (!remora.running) return "remora exited";
  if (backend.parseErrors.length > errorsBefore) {
    return `the backend could not parse what remora forwarded: ${backend.parseErrors.slice(errorsBefore).join("; ")}`;
  }
  if (result === null) return `no answer within 3 s (expected ${expected} responses)`;
  const { responses } = result;
  if (responses.length < expected) {
    return `${responses.length} responses before close, expected ${expected}`;
  }
  const seen = backend.requests.slice(before);
  let next = 0;
  for (let i = 0; i < complete.length; i++) {
    const status = responses[i]!.status;
    if (status === 404) continue; // answered by remora: not routed (Host mutated)
    if (status !== 200) return `request ${i}: status ${status}, expected 200 or 404`;
    const q = complete[i]!;
    const got = seen[next++];
    if (got === undefined) return `request ${i}: answered 200 but the backend has no record of it`;
    if (!got.complete) return `request ${i}: the backend's body did not complete`;
    if (got.method !== q.head.method) return `request ${i}: method ${got.method}`;
    if (q.head.target.startsWith("/") && got.url !== q.head.target)
      return `request ${i}: url ${got.url}`;
    if (got.body !== q.body) {
      return `request ${i}: body ${JSON.stringify(got.body)}, expected ${JSON.stringify(q.body)}`;
    }
    const framing = framingOf(got.rawHeaders);
    const want = expectedFraming(q);
    if (framing.length > 1 || !want.test(framing[0] ?? "")) {
      return `request ${i}: framing ${JSON.stringify(framing)}, expected ${want}`;
    }
  }
  const rejectedWith = errorStatus === 0 ? 0 : responses[complete.length]!.status;
  // The documented deferral (request-parser.ts): read in pieces, a field-line error of a big
  // head can be reported (400) before the head is known to be too large (431).
  const deferred = errorStatus === 431 && rejectedWith === 400;
  if (rejectedWith !== errorStatus && !deferred) {
    return `rejection answered ${responses[complete.length]!.status}, expected ${errorStatus}`;
  }
  // At most the one request whose body was still arriving (or failed) may be there unfinished.
  const unfinished = seen.length - next;
  const last = model.requests[model.requests.length - 1];
  const allowed = last !== undefined && !last.complete ? 1 : 0;
  if (unfinished > allowed) {
    return `the backend got ${unfinished} request(s) beyond the ${next} accepted and answered`;
  }
  return null;
}
