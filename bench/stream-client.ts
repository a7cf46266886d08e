/**
 * The load client for the 64 MiB streaming scenarios. autocannon parses every response body
 * in JavaScript (http-parser-js) and tops out near 400 MiB/s on one core, below what a direct
 * connection to nginx delivers, so it would measure itself rather than the proxy. This client
 * uses node:http (llhttp, native) over keep-alive connections: each connection repeats one
 * transfer after another until the duration is up, lets the transfer in flight finish, and
 * divides bytes moved by the time actually taken.
 */
import { Agent, request } from "node:http";
import { performance } from "node:perf_hooks";
import type { LoadRequest, LoadResult } from "./load.js";
import { latencyFromSamples } from "./report.js";

const UPLOAD_CHUNK = Buffer.alloc(1024 * 1024, 0x62);

interface Counters {
  completed: number;
  non2xx: number;
  errors: number;
  bytes: number;
  /** Bytes and transfers since the last tick. */
  tickBytes: number;
  tickCompleted: number;
  readonly latencies: number[];
}

/** One request/response; resolves when the response has ended or failed (never rejects). */
function transfer(req: LoadRequest, agent: Agent, counters: Counters): Promise<void> {
  return new Promise((resolve) => {
    const started = performance.now();
    let moved = 0;
    let settled = false;
    const fail = (): void => {
      if (settled) return;
      settled = true;
      counters.errors++;
      resolve();
    };
    const headers: Record<string, string | number> = { ...req.headers };
    if (req.bodyBytes > 0) {
      headers["content-type"] = "application/octet-stream";
      headers["content-length"] = req.bodyBytes;
    }
    const r = request(
      `${req.url}${req.path}`,
      { method: req.method, headers, agent, timeout: req.timeoutSec * 1000 },
      (res) => {
        const ok = res.statusCode !== undefined && res.statusCode >= 200 && res.statusCode < 300;
        res.on("data", (chunk: Buffer) => {
          moved += chunk.length;
          counters.tickBytes += chunk.length;
        });
        res.once("end", () => {
          if (settled) return;
          settled = true;
          counters.completed++;
          counters.tickCompleted++;
          if (ok) {
            counters.bytes += moved + req.bodyBytes;
            counters.latencies.push(performance.now() - started);
          } else {
            counters.non2xx++;
          }
          resolve();
        });
        res.once("error", fail);
        res.once("aborted", fail);
      },
    );
    r.once("timeout", () => r.destroy(new Error("timeout")));
    r.once("error", fail);
    if (req.bodyBytes <= 0) {
      r.end();
      return;
    }
    // Stream the body in 1 MiB slices of one shared buffer, honouring backpressure.
    let left = req.bodyBytes;
    const pump = (): void => {
      while (left > 0) {
        const n = Math.min(left, UPLOAD_CHUNK.length);
        left -= n;
        counters.tickBytes += n;
        if (
          !r.write(n === UPLOAD_CHUNK.length ? UPLOAD_CHUNK : UPLOAD_CHUNK.subarray(0, n)) &&
          left > 0
        ) {
          r.once("drain", pump);
          return;
        }
      }
      r.end();
    };
    pump();
  });
}

export async function runStreamLoad(
  req: LoadRequest,
  onTick: (completed: number, bytes: number) => void,
): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: req.connections });
  const counters: Counters = {
    completed: 0,
    non2xx: 0,
    errors: 0,
    bytes: 0,
    tickBytes: 0,
    tickCompleted: 0,
    latencies: [],
  };
  const ticker = setInterval(() => {
    onTick(counters.tickCompleted, counters.tickBytes);
    counters.tickCompleted = 0;
    counters.tickBytes = 0;
  }, 1000);
  const started = performance.now();
  const deadline = started + req.durationSec * 1000;
  const loop = async (): Promise<void> => {
    while (performance.now() < deadline) await transfer(req, agent, counters);
  };
  try {
    await Promise.all(Array.from({ length: req.connections }, loop));
  } finally {
    clearInterval(ticker);
    agent.destroy();
  }
  const durationSec = (performance.now() - started) / 1000;
  return {
    requestsPerSec: counters.completed / durationSec,
    bytesPerSec: counters.bytes / durationSec,
    latency: latencyFromSamples(Float64Array.from(counters.latencies)),
    latencySource: "exact",
    completed: counters.completed,
    non2xx: counters.non2xx,
    errors: counters.errors,
    totalBytes: counters.bytes,
    durationSec,
  };
}
