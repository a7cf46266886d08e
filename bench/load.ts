/**
 * The load generator as the run sees it: one long-lived child process (load-worker.ts)
 * running autocannon (or starting wrk, or a client of its own), pinned to the load core so it never competes with the proxy, driven
 * over IPC. One process for the whole run keeps its JIT warm and its startup out of the
 * measurements.
 */
import { fileURLToPath } from "node:url";
import { type Launched, launch } from "./launch.js";
import type { RunSample } from "./report.js";
import type { ClientTls } from "./tls-material.js";

/** One load run, as sent to the worker. */
export interface LoadRequest {
  /**
   * "autocannon" for request-rate scenarios; "stream" for the large transfers, where
   * autocannon's JavaScript body parsing would be the bottleneck (see stream-client.ts);
   * "hold" for connections opened and then kept idle (see hold-client.ts); "wrk" for the
   * saturation scenarios when wrk is installed, because autocannon saturates below the
   * fastest proxies (see wrk.ts); "handshake" for a new mTLS connection per request (see
   * handshake-client.ts).
   */
  readonly client: "autocannon" | "stream" | "hold" | "wrk" | "handshake";
  readonly url: string;
  readonly connections: number;
  readonly durationSec: number;
  readonly method: "GET" | "POST";
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  /** Request body size in bytes; the worker builds the body so it never crosses IPC. */
  readonly bodyBytes: number;
  /** Fixed total rate in requests/s (open-loop-ish, with coordinated-omission correction). */
  readonly overallRate?: number;
  readonly timeoutSec: number;
  /**
   * Set for targets that terminate mTLS: `url` is https and the client presents this
   * certificate. Only autocannon and the handshake client can (wrk cannot present one).
   */
  readonly tls?: ClientTls;
}

export type LoadResult = Omit<RunSample, "cpuMs" | "peakRssBytes" | "otherLoad">;

export type WorkerMessage =
  | { readonly type: "tick"; readonly id: number; readonly counter: number; readonly bytes: number }
  | { readonly type: "done"; readonly id: number; readonly result: LoadResult }
  | { readonly type: "failed"; readonly id: number; readonly message: string };

export type ParentMessage = {
  readonly type: "run";
  readonly id: number;
  readonly request: LoadRequest;
};

const WORKER = fileURLToPath(new URL("./load-worker.js", import.meta.url));

export class LoadGenerator {
  readonly #proc: Launched;
  #nextId = 1;
  #pending = new Map<
    number,
    { resolve: (r: LoadResult) => void; reject: (e: Error) => void; onTick: (rps: number) => void }
  >();

  private constructor(proc: Launched) {
    this.#proc = proc;
    proc.child.on("message", (raw) => this.#onMessage(raw as WorkerMessage));
    void proc.exited.then(() => {
      for (const p of this.#pending.values()) {
        p.reject(new Error(`load worker exited: ${proc.outputTail || "no output"}`));
      }
      this.#pending.clear();
    });
  }

  static start(core: number | null): LoadGenerator {
    return new LoadGenerator(
      launch("load generator", process.execPath, [WORKER], { core, ipc: true }),
    );
  }

  get pid(): number | null {
    return this.#proc.pid;
  }

  #onMessage(msg: WorkerMessage): void {
    const pending = this.#pending.get(msg.id);
    if (pending === undefined) return;
    if (msg.type === "tick") {
      pending.onTick(msg.counter);
    } else {
      this.#pending.delete(msg.id);
      if (msg.type === "done") pending.resolve(msg.result);
      else pending.reject(new Error(msg.message));
    }
  }

  /**
   * Runs one load; `onTick` gets the responses of each second as they happen (never for
   * wrk, which reports only at the end).
   */
  run(request: LoadRequest, onTick: (rps: number) => void = () => {}): Promise<LoadResult> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, onTick });
      const message: ParentMessage = { type: "run", id, request };
      this.#proc.child.send(message);
    });
  }

  stop(): Promise<void> {
    return this.#proc.stop();
  }
}
