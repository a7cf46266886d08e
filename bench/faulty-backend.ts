/**
 * The backend that goes bad on cue, for the failover-503 and failover-hang scenarios. It
 * starts healthy (every path 200 "hello, world\n", like the nginx backend's `/`), and when the
 * harness sends `{ type: "fault", fault }` over IPC it turns, for the rest of its life, into:
 *
 *   "503"   a backend that answers every request, health checks included, with 503
 *           (keep-alive, a small body), as an application that lost its database would;
 *   "hang"  a backend that accepts connections and reads requests, health checks included,
 *           but never answers (a deadlocked application), until the peer gives up.
 *
 * It counts what it receives once faulty, health checks (`--health-path`) apart from the
 * rest, and answers `{ type: "count", id }` with them, so a table can say how many requests
 * each proxy still sent to a backend that was failing. One process, no cluster: the counts
 * stay in one place, and a third of the load is well within one Node.js process.
 *
 *   node dist/bench/faulty-backend.js --port N [--health-path /healthz]
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { parseArgs } from "node:util";
import type { FaultyBackendReply, FaultyBackendRequest } from "./backend.js";

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    "health-path": { type: "string", default: "/healthz" },
  },
});

const port = Number(values.port);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write("faulty-backend: --port is required\n");
  process.exit(2);
}
const healthPath = values["health-path"];

const HELLO = Buffer.from("hello, world\n");
const UNAVAILABLE = Buffer.from("unavailable\n");

let fault: "none" | "503" | "hang" = "none";
/** Requests received since the fault began, health checks apart. */
let requests = 0;
let checks = 0;

function handle(req: IncomingMessage, res: ServerResponse): void {
  if (fault !== "none") {
    // The path alone tells a check from a request: the proxies check `healthPath`, the load
    // generator sends `/`.
    if (req.url === healthPath) checks++;
    else requests++;
  }
  // Read (and drop) any body, so that a hung request is one whose bytes all arrived.
  req.resume();
  if (fault === "hang") return;
  const [status, body] = fault === "503" ? [503, UNAVAILABLE] : [200, HELLO];
  res.writeHead(status, { "content-type": "text/plain", "content-length": body.length });
  res.end(body);
}

// No server-side timeouts: a hung request stays open until the proxy (or the client) closes it.
const server = createServer({ keepAliveTimeout: 120_000, requestTimeout: 0 }, handle);
server.maxRequestsPerSocket = 0;
server.headersTimeout = 60_000;
server.listen(port, "127.0.0.1");

function reply(message: FaultyBackendReply): void {
  process.send?.(message);
}

process.on("message", (raw) => {
  const msg = raw as FaultyBackendRequest;
  if (msg.type === "fault") {
    fault = msg.fault;
    requests = 0;
    checks = 0;
  } else if (msg.type === "count") {
    reply({ type: "count", id: msg.id, requests, checks });
  }
});
process.on("SIGTERM", () => process.exit(0));
// The harness went away: so does this backend (hung sockets would otherwise keep it alive).
process.on("disconnect", () => process.exit(0));
