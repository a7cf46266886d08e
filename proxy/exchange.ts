/**
 * The one place each finished exchange is reported: status, response flags, bytes, timing and
 * endpoint. The operations issue hangs the access log and Istio metrics off this interface.
 */
export interface ExchangeRecord {
  listener: string;
  /** Cluster key ("name.namespace"), or "" when no route was found. */
  cluster: string;
  /** Endpoint id ("host:port"), or "" when none was chosen. */
  endpoint: string;
  method: string;
  authority: string;
  path: string;
  /** Status sent to the client; 0 when the exchange was reset before a response. */
  status: number;
  /** Envoy response flags ("UF", "UC,URX"...), or "-" for none. */
  flags: string;
  requestBytes: number;
  responseBytes: number;
  /** Wall clock at the start (ms since the epoch) and duration (ms). */
  startMs: number;
  durationMs: number;
  requestId: string;
}

export interface ExchangeReporter {
  /** Called once per exchange. The record object is reused: copy what you keep. */
  report(record: ExchangeRecord): void;
}

export function emptyRecord(listener: string): ExchangeRecord {
  return {
    listener,
    cluster: "",
    endpoint: "",
    method: "",
    authority: "",
    path: "",
    status: 0,
    flags: "-",
    requestBytes: 0,
    responseBytes: 0,
    startMs: 0,
    durationMs: 0,
    requestId: "",
  };
}
