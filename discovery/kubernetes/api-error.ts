import type { KubeStatus } from "./wire.js";

/**
 * The API server answered with an error status (or a watch delivered an ERROR event). `status`
 * is the HTTP status or the Status object's `code`; `retryAfterMs` is the Retry-After header.
 */
export class KubeApiError extends Error {
  override readonly name = "KubeApiError";
  readonly code = "REMORA_ERR_KUBE_API";
  readonly status: number;
  readonly reason: string;
  readonly retryAfterMs: number | undefined;

  constructor(status: number, body: KubeStatus | undefined, retryAfterMs?: number) {
    const reason = body?.reason ?? "";
    super(
      `Kubernetes API ${status}${reason ? ` ${reason}` : ""}: ${body?.message ?? "no message"}`,
    );
    this.status = status;
    this.reason = reason;
    this.retryAfterMs = retryAfterMs;
  }
}

/** A watch line that is not a JSON event, or a list answer that is not a list. */
export class KubeProtocolError extends Error {
  override readonly name = "KubeProtocolError";
  readonly code = "REMORA_ERR_KUBE_PROTOCOL";
}

/** A watch stream that ended inside an event (bytes after the last newline). */
export class WatchCutError extends Error {
  override readonly name = "WatchCutError";
  readonly code = "REMORA_ERR_KUBE_WATCH_CUT";
}

/** Retry-After in ms: delta-seconds only (the API server never sends a date); bounded to 5 min. */
export function parseRetryAfter(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || !/^\d+$/.test(text.trim())) return undefined;
  return Math.min(Number(text.trim()), 300) * 1000;
}
