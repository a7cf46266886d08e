/**
 * The Node.js benchmark backend, used when nginx is not installed and always for uploads
 * (nginx answers `return 200` before it has read a large body, which would time the upload
 * wrongly). node:cluster workers share one listening port.
 *
 *   node dist/bench/backend-server.js --port N [--hosts A,B] [--workers K] [--download-bytes N]
 *
 * --hosts: the loopback addresses to listen on, the same port on each (default 127.0.0.1).
 *
 * Routes (the same as the nginx backend's):
 *   GET  /          200 "hello, world\n"
 *   POST /post      reads the body, 200 "ok\n"
 *   GET  /download  streams --download-bytes bytes
 *   POST /upload    reads the whole body, then 200 with the byte count
 */
import cluster from "node:cluster";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    hosts: { type: "string", default: "127.0.0.1" },
    workers: { type: "string" },
    "download-bytes": { type: "string", default: String(64 * 1024 * 1024) },
  },
});

const port = Number(values.port);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write("backend-server: --port is required\n");
  process.exit(2);
}
// availableParallelism() honours the taskset mask, so a backend pinned to one core gets one worker.
const workers = values.workers === undefined ? availableParallelism() : Number(values.workers);
const downloadBytes = Number(values["download-bytes"]);

const HELLO = Buffer.from("hello, world\n");
const OK = Buffer.from("ok\n");
const CHUNK = Buffer.alloc(64 * 1024, 0x61);

function streamDownload(res: ServerResponse): void {
  res.writeHead(200, {
    "content-type": "application/octet-stream",
    "content-length": downloadBytes,
  });
  let left = downloadBytes;
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      const more = res.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n));
      if (!more && left > 0) {
        res.once("drain", pump);
        return;
      }
    }
    res.end();
  };
  pump();
}

function handle(req: IncomingMessage, res: ServerResponse): void {
  const path = req.url ?? "/";
  if (req.method === "GET" && path === "/download") {
    streamDownload(res);
    return;
  }
  let received = 0;
  req.on("data", (chunk: Buffer) => {
    received += chunk.length;
  });
  req.on("end", () => {
    if (path === "/upload") {
      const body = `${received}\n`;
      res.writeHead(200, {
        "content-type": "text/plain",
        "content-length": Buffer.byteLength(body),
      });
      res.end(body);
    } else if (path === "/post") {
      res.writeHead(200, { "content-type": "text/plain", "content-length": OK.length });
      res.end(OK);
    } else {
      res.writeHead(200, { "content-type": "text/plain", "content-length": HELLO.length });
      res.end(HELLO);
    }
  });
}

if (cluster.isPrimary && workers > 1) {
  for (let i = 0; i < workers; i++) cluster.fork();
  const stop = (): void => {
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
} else {
  for (const host of (values.hosts ?? "127.0.0.1").split(",")) {
    const server = createServer({ keepAliveTimeout: 120_000, requestTimeout: 0 }, handle);
    server.maxRequestsPerSocket = 0;
    server.headersTimeout = 60_000;
    server.listen(port, host);
  }
  process.on("SIGTERM", () => process.exit(0));
}
