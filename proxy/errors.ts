/**
 * Every error remora answers a client with, in one table: a stable code, the HTTP status, the
 * Envoy response flag that access logs and metrics carry, and the short plain-text body.
 * Codes are never reused (fastify's rule); `errors.test.ts` checks this table against docs/http.md.
 */
export const ERRORS = {
  REMORA_ERR_NO_ROUTE: { status: 404, flag: "NR", body: "no route to a service for this host" },
  REMORA_ERR_NO_HEALTHY_ENDPOINT: { status: 503, flag: "UH", body: "no healthy endpoint" },
  REMORA_ERR_OVERFLOW: { status: 503, flag: "UO", body: "upstream connection limit reached" },
  REMORA_ERR_PENDING_OVERFLOW: {
    status: 503,
    flag: "UO",
    body: "too many requests waiting for an upstream connection",
  },
  REMORA_ERR_QUEUE_FULL: { status: 503, flag: "UO", body: "request queue full" },
  REMORA_ERR_QUEUE_TIMEOUT: { status: 503, flag: "UO", body: "request queue timeout" },
  REMORA_ERR_NO_ROUTE_MATCH: { status: 404, flag: "NR", body: "no route matched the request" },
  /**
   * A Kubernetes ExternalName Service: a DNS alias, not proxied (no endpoints to balance). Envoy
   * answers a host it has no route for with 404 NR, so this keeps its status and flag; nothing
   * upstream was tried, so not a 5xx a client would retry or alert on.
   */
  REMORA_ERR_EXTERNAL_NAME: {
    status: 404,
    flag: "NR",
    body: "ExternalName service: not proxied; call its external name directly",
  },
  REMORA_ERR_UPSTREAM_CONNECT: { status: 502, flag: "UF", body: "upstream connect failed" },
  REMORA_ERR_UPSTREAM_TLS: {
    status: 503,
    flag: "UF",
    body: "upstream TLS handshake failed",
  },
  REMORA_ERR_UPSTREAM_RESET: { status: 502, flag: "UC", body: "upstream connection closed" },
  REMORA_ERR_UPSTREAM_PROTOCOL: { status: 502, flag: "UPE", body: "invalid upstream response" },
  REMORA_ERR_UPSTREAM_TIMEOUT: { status: 504, flag: "UT", body: "upstream request timeout" },
  /** streamIdleTimeout on the upstream's side (Envoy's per_try_idle_timeout answers the same). */
  REMORA_ERR_UPSTREAM_IDLE: { status: 504, flag: "UT", body: "upstream idle timeout" },
  /** streamIdleTimeout on the client's side: Envoy's stream_idle_timeout (408, flag SI). */
  REMORA_ERR_STREAM_IDLE_TIMEOUT: { status: 408, flag: "SI", body: "stream idle timeout" },
  REMORA_ERR_HEADER_TIMEOUT: { status: 408, flag: "DPE", body: "request header timeout" },
  REMORA_ERR_BAD_REQUEST: { status: 400, flag: "DPE", body: "bad request" },
  REMORA_ERR_URI_TOO_LONG: { status: 414, flag: "DPE", body: "request target too long" },
  REMORA_ERR_HEADERS_TOO_LARGE: {
    status: 431,
    flag: "DPE",
    body: "request header section too large",
  },
  REMORA_ERR_NOT_IMPLEMENTED: { status: 501, flag: "DPE", body: "not implemented" },
  REMORA_ERR_VERSION: { status: 505, flag: "DPE", body: "HTTP version not supported" },
  REMORA_ERR_METHOD: { status: 405, flag: "DPE", body: "method not supported by this listener" },
  /**
   * Overload protection (overload/): the heap is past `overload.maxHeapMb`. Envoy's overload
   * manager answers the same 503 with flag OM (stop_accepting_requests); the connection closes.
   * Envoy's body says "envoy overloaded"; the flag is what dashboards match, so the body names us.
   */
  REMORA_ERR_OVERLOADED: { status: 503, flag: "OM", body: "proxy overloaded" },
  /** Envoy's RBAC filter: same body and flag, so Istio users' scripts and dashboards still work. */
  REMORA_ERR_RBAC_DENIED: { status: 403, flag: "RBAC", body: "RBAC: access denied" },
  /** Istio's BlackHoleCluster: outboundTrafficPolicy REGISTRY_ONLY and the host is no mesh service. */
  REMORA_ERR_REGISTRY_ONLY: {
    status: 502,
    flag: "NR",
    body: "no route: not a mesh service (outboundTrafficPolicy REGISTRY_ONLY)",
  },
  /** ALLOW_ANY never passes a request through to loopback or to the proxy's own ports. */
  REMORA_ERR_PASSTHROUGH_REFUSED: {
    status: 502,
    flag: "NR",
    body: "no route: passthrough to a loopback address or to the proxy's own port is refused",
  },
} as const satisfies Record<string, { status: number; flag: string; body: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** The parse-error status a codec reports, mapped to the code a client sees. */
export function codeForParseStatus(status: number): ErrorCode {
  switch (status) {
    case 414:
      return "REMORA_ERR_URI_TOO_LONG";
    case 431:
      return "REMORA_ERR_HEADERS_TOO_LARGE";
    case 501:
      return "REMORA_ERR_NOT_IMPLEMENTED";
    case 505:
      return "REMORA_ERR_VERSION";
    default:
      return "REMORA_ERR_BAD_REQUEST";
  }
}

/** An error of remora's own with a fixed name and a stable code (undici's pattern). */
export class RemoraError extends Error {
  override readonly name = "RemoraError";
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}
