/**
 * `connectionPool.http.streamIdleTimeout`: an exchange whose bytes stop moving for this long is
 * ended, so a backend that accepts and never answers cannot hold client connections forever
 * (Istio's default `timeout` is none). Envoy has the same idea twice: the connection manager's
 * `stream_idle_timeout` (default 5 minutes, any stream, flag `SI`) and the router's
 * `per_try_idle_timeout` (one attempt that stops making progress: 504 `UT`, retried like a
 * per-try timeout). remora's timer is per attempt and, when it fires, the session asks who
 * stopped (`stalledSide`):
 *
 * - the upstream (no response byte, or it stopped reading the request body): the attempt failed
 *   as a timeout (reported to outlier detection, retried if the policy and the request's
 *   safety allow), 504 `UT` if the client has seen nothing yet, else a reset flagged `UT`;
 * - the client (it stopped reading the response, or stopped sending a body it announced): 408
 *   `SI` if no response started, else a reset flagged `SI`; nothing is held against the endpoint.
 *
 * The timer runs from the moment a request head goes upstream until the attempt ends. Connecting
 * is bounded by `connectTimeout`, and a tunnel (after a 101) is not timed.
 *
 * Cost: a byte moving is one field store. The timer is not moved per byte (as Deadline is, which
 * needs the time, and performance.now() costs ~100 ns on the benchmark's VM, as much as the rest
 * of a move); it checks when it fires whether anything moved since it was armed, and re-arms if
 * so. Silence is therefore detected after between `ms` and twice that, which is what a backstop
 * measured in minutes needs; `perTryTimeout` and `timeout` are the exact bounds. One timer per
 * session at most, armed while exchanges are timed and left to lapse between them.
 */
export class StreamIdleTimer {
  readonly #onIdle: () => void;
  #timer: NodeJS.Timeout | null = null;
  /** The delay the pending timer was armed with. */
  #armedMs = 0;
  /** The running attempt's timeout; 0 = not timing. */
  #ms = 0;
  /** A byte moved since the pending timer was armed. */
  #moved = false;

  constructor(onIdle: () => void) {
    this.#onIdle = onIdle;
  }

  /** A request head went upstream: time the attempt with `ms` (0 = the cluster turned it off). */
  start(ms: number): void {
    this.#ms = ms;
    if (ms <= 0) return;
    if (this.#timer === null || ms < this.#armedMs) {
      this.#arm(ms);
      this.#moved = false;
    } else {
      // A timer armed earlier fires sooner than `ms` from now: count this as movement, so the
      // attempt gets at least `ms` of silence.
      this.#moved = true;
    }
  }

  /** Bytes moved (either way): the stream is alive. */
  touch(): void {
    this.#moved = true;
  }

  /** The attempt ended, or became a tunnel: a pending timer lapses when it fires. */
  clear(): void {
    this.#ms = 0;
  }

  /** The session closed: release the timer so it does not keep the session reachable. */
  stop(): void {
    this.#ms = 0;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }

  #arm(ms: number): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = setTimeout(this.#check, ms);
    this.#timer.unref();
    this.#armedMs = ms;
  }

  #check = (): void => {
    this.#timer = null;
    const ms = this.#ms;
    if (ms <= 0) return;
    if (this.#moved) {
      this.#moved = false;
      this.#arm(ms);
      return;
    }
    this.#ms = 0;
    this.#onIdle();
  };
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
