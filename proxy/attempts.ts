import { type AttemptResult, ResultKind } from "../health/health.js";
import { copyOf } from "./read-buffer.js";

/** Largest request body kept for replay on another attempt (linkerd's ReplayBody limit). */
export const REPLAY_LIMIT = 64 * 1024;

/** Results of attempts that ended without a response head: shared, never mutated. */
export const CONNECT_FAILED: AttemptResult = Object.freeze({
  kind: ResultKind.CONNECT_FAILED,
  status: 0,
});
export const RESET: AttemptResult = Object.freeze({ kind: ResultKind.RESET, status: 0 });
export const TIMEOUT: AttemptResult = Object.freeze({ kind: ResultKind.TIMEOUT, status: 0 });

/**
 * What one exchange remembers across its attempts (Envoy's RetryState, linkerd's ReplayBody):
 * the endpoints already tried, the retries made, whether the current attempt holds a slot of the
 * cluster's retry budget, and a copy of the request body small enough to send again. The
 * session owns one and reuses it for every exchange on its connection.
 *
 * One attempt = one endpoint, one connection, one per-try timer and exactly one outcome report
 * (HttpSession#endAttempt); this class holds what outlives an attempt.
 */
export class ExchangeAttempts {
  /** Retries made so far (0 on the first attempt). */
  retries = 0;
  /** Endpoints this exchange tried (previous-host avoidance through PickContext.exclude). */
  tried: Set<string> | null = null;
  /** The current attempt is a retry counted in the cluster's retry budget. */
  holdsBudget = false;
  /** The response head of the current attempt, reported as its result. */
  readonly http: { kind: ResultKind; status: number } = { kind: ResultKind.HTTP, status: 0 };
  #keep = false;
  #replayable = true;
  #replay: Buffer[] = [];
  #replayBytes = 0;

  /**
   * A new exchange. `keepBody`: a later attempt might need the body again (retries are on and
   * could follow a sent request), so body bytes are copied as they pass, up to REPLAY_LIMIT.
   */
  begin(keepBody: boolean): void {
    this.retries = 0;
    this.tried = null;
    this.holdsBudget = false;
    this.#keep = keepBody;
    this.#replayable = true;
    if (this.#replayBytes > 0) {
      this.#replay = [];
      this.#replayBytes = 0;
    }
  }

  /** An endpoint the exchange has now tried. */
  noteTried(endpointId: string): ReadonlySet<string> {
    let tried = this.tried;
    if (tried === null) tried = this.tried = new Set();
    tried.add(endpointId);
    return tried;
  }

  /**
   * Body bytes on their way upstream (or into the pre-connect queue). `owned`: the caller keeps
   * no reference to a reused buffer (queued chunks are already copies); otherwise they are
   * copied here, only while a replay is still possible.
   */
  keep(bytes: Buffer, owned: boolean): void {
    if (!this.#keep || !this.#replayable) return;
    if (this.#replayBytes + bytes.length > REPLAY_LIMIT) {
      // Too big to hold: no attempt after this one may resend it.
      this.#replayable = false;
      this.#replay = [];
      this.#replayBytes = 0;
      return;
    }
    this.#replay.push(owned ? bytes : copyOf(bytes));
    this.#replayBytes += bytes.length;
  }

  /** The whole body seen so far can be sent again (trivially true when there is none). */
  get replayable(): boolean {
    return this.#replayable;
  }

  /** The body seen so far, to queue for the next attempt (a new array; buffers shared). */
  replayBody(): { chunks: Buffer[]; bytes: number } {
    return { chunks: this.#replay.slice(), bytes: this.#replayBytes };
  }
}
