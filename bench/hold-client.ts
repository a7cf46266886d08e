/**
 * The load client for `conn-1000-open`: many keep-alive connections that each send one request
 * and then stay open, idle, for the rest of the run. It measures what holding connections costs
 * a proxy (peak RSS) rather than how fast it serves them; issue 2's "under 80 MB RSS with 1,000
 * open client connections" is read off this scenario.
 */
import { connect, type Socket } from "node:net";
import { performance } from "node:perf_hooks";
import type { LoadRequest, LoadResult } from "./load.js";
import { latencyFromSamples } from "./report.js";

/** Connections opened at once; more would overrun a default listen backlog. */
const BATCH = 50;

/** Opens one connection, sends one request, resolves with its latency (or null on failure). */
function openAndAsk(req: LoadRequest, url: URL, sockets: Socket[]): Promise<number | null> {
  return new Promise((resolve) => {
    const started = performance.now();
    const socket = connect(Number(url.port), url.hostname);
    sockets.push(socket);
    let head = "";
    const done = (latency: number | null): void => {
      socket.removeAllListeners("data");
      socket.on("data", () => {});
      resolve(latency);
    };
    socket.setTimeout(req.timeoutSec * 1000, () => done(null));
    socket.once("error", () => done(null));
    socket.once("connect", () => {
      const host = req.headers.host ?? url.host;
      socket.write(`${req.method} ${req.path} HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    });
    socket.on("data", (chunk: Buffer) => {
      head += chunk.toString("latin1");
      if (!head.includes("\r\n\r\n")) return;
      const ok = /^HTTP\/1\.1 2\d\d /.test(head);
      socket.setTimeout(0);
      done(ok ? performance.now() - started : null);
    });
  });
}

export async function runHoldLoad(
  req: LoadRequest,
  onTick: (completed: number, bytes: number) => void,
): Promise<LoadResult> {
  const url = new URL(req.url);
  const sockets: Socket[] = [];
  const latencies: number[] = [];
  let failed = 0;
  const started = performance.now();
  try {
    for (let opened = 0; opened < req.connections; opened += BATCH) {
      const batch = Math.min(BATCH, req.connections - opened);
      const results = await Promise.all(
        Array.from({ length: batch }, () => openAndAsk(req, url, sockets)),
      );
      for (const latency of results) {
        if (latency === null) failed++;
        else latencies.push(latency);
      }
      onTick(batch, 0);
    }
    // Hold every connection open, idle, for the rest of the run.
    const left = req.durationSec * 1000 - (performance.now() - started);
    if (left > 0) await new Promise((resolve) => setTimeout(resolve, left));
  } finally {
    for (const socket of sockets) socket.destroy();
  }
  const durationSec = (performance.now() - started) / 1000;
  return {
    requestsPerSec: latencies.length / durationSec,
    bytesPerSec: 0,
    latency: latencyFromSamples(Float64Array.from(latencies)),
    latencySource: "exact",
    completed: latencies.length,
    non2xx: 0,
    errors: failed,
    totalBytes: 0,
    durationSec,
  };
}
