/**
 * Peer: @fastify/http-proxy, the undici-based proxy a Node.js team would reach for, in front
 * of one upstream with its default undici pool (128 connections, keep-alive).
 *
 *   node dist/bench/peer-fastify.js --port N --upstream http://127.0.0.1:PORT
 */
import { parseArgs } from "node:util";
import fastifyHttpProxy from "@fastify/http-proxy";
import Fastify from "fastify";

const { values } = parseArgs({
  options: { port: { type: "string" }, upstream: { type: "string" } },
});
if (values.port === undefined || values.upstream === undefined) {
  process.stderr.write("peer-fastify: --port and --upstream are required\n");
  process.exit(2);
}

const app = Fastify({ logger: false, keepAliveTimeout: 120_000, bodyLimit: 128 * 1024 * 1024 });
await app.register(fastifyHttpProxy, {
  upstream: values.upstream,
  undici: { connections: 128, pipelining: 1, keepAliveTimeout: 60_000 },
});
await app.listen({ port: Number(values.port), host: "127.0.0.1" });
process.on("SIGTERM", () => {
  void app.close().then(() => process.exit(0));
});
