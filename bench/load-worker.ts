/**
 * The load generator's child process (started by load.ts, pinned to the load core). Runs
 * autocannon (or, for large transfers, stream-client.ts; for idle connections,
 * hold-client.ts; for a new mTLS connection per request, handshake-client.ts; for saturation, wrk as a child process, which inherits this process's core)
 * for each request it receives over IPC, forwards per-second ticks (wrk has none), and
 * returns a run sample.
 *
 * autocannon's histogram rounds latencies to whole milliseconds, too coarse for the
 * sub-millisecond latency a proxy adds on loopback; so every response time is also kept here
 * (a float per response) and percentiles are computed exactly from those.
 */
import { readFileSync } from "node:fs";
import autocannon from "autocannon";
import { runHandshakeLoad } from "./handshake-client.js";
import { runHoldLoad } from "./hold-client.js";
import type { LoadRequest, ParentMessage, WorkerMessage } from "./load.js";
import { fromAutocannon, latencyFromSamples } from "./report.js";
import { runStreamLoad } from "./stream-client.js";
import { CLIENT_GROUPS } from "./tls-material.js";
import { killRunningWrk, runWrkLoad } from "./wrk.js";

function send(message: WorkerMessage): void {
  process.send?.(message);
}

/** A growable buffer of response times in ms. */
class LatencyRecorder {
  #values = new Float64Array(1 << 16);
  #count = 0;
  /** Per-connection interval between requests at a fixed rate, for coordinated-omission correction. */
  readonly #expectedIntervalMs: number;

  constructor(expectedIntervalMs: number) {
    this.#expectedIntervalMs = expectedIntervalMs;
  }

  #push(ms: number): void {
    if (this.#count === this.#values.length) {
      const bigger = new Float64Array(this.#values.length * 2);
      bigger.set(this.#values);
      this.#values = bigger;
    }
    this.#values[this.#count++] = ms;
  }

  /**
   * Records one response time. At a fixed rate a slow response also delayed the requests that
   * should have been sent meanwhile; like HdrHistogram's recordValueWithExpectedInterval, those
   * are recorded too, so a stall is not hidden by the requests it prevented.
   */
  record(ms: number): void {
    this.#push(ms);
    const interval = this.#expectedIntervalMs;
    if (interval > 0) {
      for (let missed = ms - interval; missed >= interval; missed -= interval) this.#push(missed);
    }
  }

  get count(): number {
    return this.#count;
  }

  get values(): Float64Array {
    return this.#values;
  }
}

function runAutocannon(id: number, req: LoadRequest): void {
  const body = req.bodyBytes > 0 ? Buffer.alloc(req.bodyBytes, 0x62) : undefined;
  const headers: Record<string, string> = { ...req.headers };
  if (body !== undefined) headers["content-type"] = "application/octet-stream";
  const connections =
    req.overallRate !== undefined ? Math.min(req.connections, req.overallRate) : req.connections;
  const recorder = new LatencyRecorder(
    req.overallRate !== undefined ? (connections * 1000) / req.overallRate : 0,
  );
  const instance = autocannon(
    {
      url: `${req.url}${req.path}`,
      connections,
      duration: req.durationSec,
      method: req.method,
      headers,
      ...(body === undefined ? {} : { body }),
      ...(req.overallRate === undefined ? {} : { overallRate: req.overallRate }),
      timeout: req.timeoutSec,
      // autocannon passes these to tls.connect (and sets rejectUnauthorized: false itself).
      ...(req.tls === undefined
        ? {}
        : {
            tlsOptions: {
              cert: readFileSync(req.tls.certFile),
              key: readFileSync(req.tls.keyFile),
              ca: readFileSync(req.tls.caFile),
              ALPNProtocols: ["http/1.1"],
              ecdhCurve: CLIENT_GROUPS,
            },
          }),
    },
    (err: unknown, result: autocannon.Result) => {
      if (err) {
        send({ type: "failed", id, message: err instanceof Error ? err.message : String(err) });
        return;
      }
      const exactLatency = latencyFromSamples(recorder.values, recorder.count);
      send({
        type: "done",
        id,
        result: fromAutocannon(result, {
          exactLatency,
          ...(body === undefined ? {} : { requestBodyBytes: body.length }),
        }),
      });
    },
  );
  instance.on(
    "response",
    (_client: unknown, statusCode: number, _bytes: number, responseTime: number) => {
      // Like autocannon's own histogram, latency covers 2xx answers only.
      if (statusCode >= 200 && statusCode < 300) recorder.record(responseTime);
    },
  );
  // The typings declare "tick" without its argument; autocannon passes the second's counts.
  (instance as NodeJS.EventEmitter).on("tick", (counts: { counter: number; bytes: number }) => {
    send({ type: "tick", id, counter: counts.counter, bytes: counts.bytes });
  });
}

function runHold(id: number, req: LoadRequest): void {
  runHoldLoad(req, (counter, bytes) => send({ type: "tick", id, counter, bytes })).then(
    (result) => send({ type: "done", id, result }),
    (err: unknown) =>
      send({ type: "failed", id, message: err instanceof Error ? err.message : String(err) }),
  );
}

function runStream(id: number, req: LoadRequest): void {
  runStreamLoad(req, (counter, bytes) => send({ type: "tick", id, counter, bytes })).then(
    (result) => send({ type: "done", id, result }),
    (err: unknown) =>
      send({ type: "failed", id, message: err instanceof Error ? err.message : String(err) }),
  );
}

function runHandshake(id: number, req: LoadRequest): void {
  runHandshakeLoad(req, (counter, bytes) => send({ type: "tick", id, counter, bytes })).then(
    (result) => send({ type: "done", id, result }),
    (err: unknown) =>
      send({ type: "failed", id, message: err instanceof Error ? err.message : String(err) }),
  );
}

/** wrk prints its figures only when done, so a wrk run sends no ticks. */
function runWrk(id: number, req: LoadRequest): void {
  runWrkLoad(req).then(
    (result) => send({ type: "done", id, result }),
    (err: unknown) =>
      send({ type: "failed", id, message: err instanceof Error ? err.message : String(err) }),
  );
}

process.on("message", (raw) => {
  const msg = raw as ParentMessage;
  if (msg.type !== "run") return;
  if (msg.request.client === "stream") runStream(msg.id, msg.request);
  else if (msg.request.client === "hold") runHold(msg.id, msg.request);
  else if (msg.request.client === "wrk") runWrk(msg.id, msg.request);
  else if (msg.request.client === "handshake") runHandshake(msg.id, msg.request);
  else runAutocannon(msg.id, msg.request);
});
process.on("disconnect", () => {
  killRunningWrk();
  process.exit(0);
});
