/**
 * Overload protection: Envoy's overload manager in remora's terms. What listeners and HTTP
 * sessions may rely on (the monitor itself is overload-protection.ts):
 *
 * 1. `rejectRequests` and `disableKeepAlive` are plain booleans a 1 s timer flips (Envoy's
 *    `stop_accepting_requests` and `disable_http_keepalive` actions, driven by the heap). A session
 *    reads them once per request: one branch, never a memory reading of its own.
 * 2. Every accepted downstream connection asks `admit` once, before anything is read. `false`
 *    means the caller closes it at once (`reject_incoming_connections`); the gate has counted and
 *    logged it, the listener counts it for its own metric. `true` means the caller calls `release`
 *    exactly once when that connection is gone (whatever ended it: a session, a failed handshake).
 * 3. `acceptFailed` is told every accept error Node reports on a listening socket; it logs them
 *    at most once a second per listener and code, with a count. Nothing here ever throws.
 */
export interface OverloadSignals {
  /** While true, new requests are answered 503 `OM` (REMORA_ERR_OVERLOADED). */
  readonly rejectRequests: boolean;
  /** While true, every response ends with `Connection: close`. */
  readonly disableKeepAlive: boolean;
}

export interface ConnectionGate {
  /** A downstream connection was accepted on `listener`: serve it (true) or close it now (false). */
  admit(listener: string): boolean;
  /** A connection `admit` let in is gone. */
  release(): void;
  /** The listening socket reported an accept error (server 'error'); logged rate-limited. */
  acceptFailed(listener: string, code: string): void;
}

/** What listeners are given: both halves of the contract. */
export type Overload = OverloadSignals & ConnectionGate;

/** The config's `overload:` as the monitor takes it (proxy/config/overload-schema.ts). */
export interface OverloadSettings {
  /** Open downstream connections across listeners; undefined = derived from the descriptor limit. */
  readonly maxDownstreamConnections?: number | undefined;
  /** Heap threshold in MiB; undefined = no heap action. */
  readonly maxHeapMb?: number | undefined;
}

/** For listeners built without a monitor (tests, embedding): never overloaded, admits everything. */
export const NO_OVERLOAD: Overload = {
  rejectRequests: false,
  disableKeepAlive: false,
  admit: () => true,
  release: () => {},
  acceptFailed: () => {},
};
