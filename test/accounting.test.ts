/**
 * After a burst of mixed traffic (keep-alive, pipelining, Connection: close, clients that vanish
 * mid-request or mid-response, upstreams that reset), every counter returns to rest: no
 * downstream connection, no active request, no busy or half-open upstream connection.
 */
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type HttpBackend,
  httpBackend,
  type InProcessRemora,
  outboundConfig,
  startRemora,
} from "./harness.js";

let backend: HttpBackend;
let remora: InProcessRemora;

beforeAll(async () => {
  backend = await httpBackend((req, res) => {
    if (req.url === "/reset") return void req.socket.destroy();
    if (req.url === "/slow") return void setTimeout(() => res.end("slow"), 30);
    res.end("x".repeat(req.url === "/big" ? 256 * 1024 : 10));
  });
  remora = await startRemora(outboundConfig([backend.address]));
});

afterAll(async () => {
  await remora?.stop();
  await backend?.close();
});

/** A seeded PRNG so the traffic mix is the same on every run. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const PATHS = ["/", "/slow", "/big", "/reset"];

async function client(random: () => number): Promise<void> {
  const socket = connect(remora.port(), "127.0.0.1");
  socket.on("error", () => {});
  await new Promise((resolve) => socket.once("connect", resolve));
  const requests = 1 + Math.floor(random() * 4);
  let text = "";
  for (let i = 0; i < requests; i++) {
    const path = PATHS[Math.floor(random() * PATHS.length)]!;
    const close = i === requests - 1 && random() < 0.3 ? "Connection: close\r\n" : "";
    text += `GET ${path} HTTP/1.1\r\nHost: hello\r\n${close}\r\n`;
  }
  const ending = random();
  if (ending < 0.2) {
    // Vanish halfway through a request head, or with a body still owed.
    socket.write(text.slice(0, Math.floor(text.length / 2)));
    socket.destroy();
    return;
  }
  if (ending < 0.3)
    socket.write("POST /slow HTTP/1.1\r\nHost: hello\r\nContent-Length: 100\r\n\r\npartial");
  else socket.write(text);
  // Read for a while (or until closed), then go away whatever state the exchange is in.
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 20 + random() * 80);
    socket.on("data", () => {});
    socket.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  socket.destroy();
}

describe("connection and request accounting", () => {
  it("returns to rest after 300 mixed clients", async () => {
    const random = prng(7);
    for (let wave = 0; wave < 10; wave++) {
      await Promise.all(Array.from({ length: 30 }, () => client(random)));
    }
    const cluster = remora.runtime.clusters.get("hello.default")!;
    const deadline = Date.now() + 5000;
    const atRest = () =>
      remora.runtime.connections === 0 &&
      cluster.stats.active === 0 &&
      cluster.poolStats(backend.address).connecting === 0 &&
      cluster.poolStats(backend.address).open === cluster.poolStats(backend.address).idle;
    while (!atRest() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect({
      connections: remora.runtime.connections,
      active: cluster.stats.active,
      pool: cluster.poolStats(backend.address),
    }).toEqual({
      connections: 0,
      active: 0,
      pool: {
        ...cluster.poolStats(backend.address),
        connecting: 0,
        open: cluster.poolStats(backend.address).idle,
      },
    });
    expect(cluster.stats.requests).toBeGreaterThan(300);
    // Every exchange was reported exactly once: started requests = finished ones.
    const finished = cluster.stats.byClass.reduce((a, b) => a + b, 0);
    expect(finished).toBe(cluster.stats.requests);
  });
});
