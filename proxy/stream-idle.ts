import { Deadline } from "./deadline.js";

/**
 * `connectionPool.http.streamIdleTimeout`: an exchange whose bytes stop moving for this long is
 * ended, so a backend that accepts and never answers cannot hold client connections forever
 * (Istio's default `timeout` is none). Envoy has the same idea twice: the connection manager's
 * `stream_idle_timeout` (default 5 minutes, any stream, flag `SI`) and the router's
 * `per_try_idle_timeout` (one attempt that stops making progress: 504 `UT`, retried like a
 * per-try timeout). remora's timer is per exchange and, when it fires, asks who stopped:
 *
 * - the upstream (no response byte, or it stopped reading the request body): the attempt failed
 *   as a timeout (reported to outlier detection, retried if the policy and the request's
 *   safety allow), 504 `UT` if the client has seen nothing yet, else a reset flagged `UT`;
 * - the client (it stopped reading the response, or stopped sending a body it announced): 408
 *   `SI` if no response started, else a reset flagged `SI`; nothing is held against the endpoint.
 *
 * The timer runs from the moment a request head goes upstream until the exchange ends; every
 * byte either way moves it later (a field store: see Deadline). Connecting is bounded by
 * `connectTimeout`, and a tunnel (after a 101) is not timed.
 */
export class StreamIdleTimer {
  readonly #deadline: Deadline;
  readonly #clock: () => number;
  /** The running exchange's timeout; 0 = not timing. */
  #ms = 0;

  constructor(onIdle: () => void, clock: () => number = performanceNow) {
    this.#deadline = new Deadline(onIdle, clock);
    this.#clock = clock;
  }

  /** A request head went upstream: time the exchange with `ms` (0 = the cluster turned it off). */
  start(ms: number): void {
    this.#ms = ms;
    if (ms > 0) this.#deadline.set(this.#clock(), ms);
    else this.#deadline.clear();
  }

  /** Bytes moved (either way): the stream is alive. */
  touch(): void {
    if (this.#ms > 0) this.#deadline.set(this.#clock(), this.#ms);
  }

  /** The exchange (or its attempt) ended, or became a tunnel. */
  clear(): void {
    this.#ms = 0;
    this.#deadline.clear();
  }

  /** The session closed: release the timer so it does not keep the session reachable. */
  stop(): void {
    this.#ms = 0;
    this.#deadline.stop();
  }
}

/** Who an idle exchange was waiting on. */
export const STALLED_UPSTREAM = 0;
export const STALLED_CLIENT = 1;

/**
 * Whose silence fired the timer. `clientNotReading`: response bytes wait for the client to
 * drain (the upstream is paused for it). `bodyOwed`: the client has not sent the whole request
 * body. `upstreamNotReading`: request body bytes wait for the upstream to drain. Everything else
 * waits on the upstream's response.
 */
export function stalledSide(
  clientNotReading: boolean,
  bodyOwed: boolean,
  upstreamNotReading: boolean,
): typeof STALLED_UPSTREAM | typeof STALLED_CLIENT {
  if (clientNotReading) return STALLED_CLIENT;
  if (bodyOwed && !upstreamNotReading) return STALLED_CLIENT;
  return STALLED_UPSTREAM;
}

function performanceNow(): number {
  return performance.now();
}
