/**
 * Peer: node-http-proxy (the `http-proxy` package) in front of one upstream, with a keep-alive
 * agent — the setup its README recommends for throughput.
 *
 *   node dist/bench/peer-http-proxy.js --port N --upstream http://127.0.0.1:PORT
 */
import { Agent, createServer, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { parseArgs } from "node:util";
import httpProxy from "http-proxy";

const { values } = parseArgs({
  options: { port: { type: "string" }, upstream: { type: "string" } },
});
if (values.port === undefined || values.upstream === undefined) {
  process.stderr.write("peer-http-proxy: --port and --upstream are required\n");
  process.exit(2);
}

const agent = new Agent({ keepAlive: true, maxSockets: 128 });
const proxy = httpProxy.createProxyServer({ target: values.upstream, agent, xfwd: false });

proxy.on("error", (_err, _req, res) => {
  // `res` is a socket for upgrade requests; this benchmark sends none.
  const response = res as ServerResponse | Socket;
  if ("writeHead" in response && !response.headersSent) {
    response.writeHead(502, { "content-type": "text/plain" });
    response.end("upstream failed\n");
  } else {
    response.destroy();
  }
});

const server = createServer({ keepAliveTimeout: 120_000, requestTimeout: 0 }, (req, res) => {
  proxy.web(req, res);
});
server.listen(Number(values.port), "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));
