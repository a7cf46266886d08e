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
  /** "HTTP/1.1" or "HTTP/1.0" as the client spoke; "" when no request head was parsed (and TCP). */
  protocol: string;
  /** Status sent to the client; 0 when the exchange was reset before a response. */
  status: number;
  /** Envoy response flags ("UF", "UC,URX"...), or "-" for none. */
  flags: string;
  /** Bytes on the wire each way, heads included. */
  requestBytes: number;
  responseBytes: number;
  /** The heads' share of those bytes (request head; response heads sent), so body = total - head. */
  requestHeadBytes: number;
  responseHeadBytes: number;
  /** Wall clock at the start (ms since the epoch) and duration (ms). */
  startMs: number;
  durationMs: number;
  /**
   * From writing the request upstream to its final response head (ms); -1 when no upstream
   * answered, or when no reporter asked for it (RecordDetail.upstreamTiming).
   */
  upstreamServiceMs: number;
  /** Time spent queued for a free endpoint (first-come), ms; -1 when the request never queued. */
  queueMs: number;
  requestId: string;
  /** User-Agent and X-Forwarded-For as the client sent them, "" when absent (the parsed strings, not copies). */
  userAgent: string;
  forwardedFor: string;
}

/**
 * Fields that cost a clock read per exchange are measured only while some reporter needs them.
 * Sessions read this per exchange, so it may change at run time (access log enabled by a reload).
 */
export interface RecordDetail {
  readonly upstreamTiming: boolean;
}

export const NO_DETAIL: RecordDetail = { upstreamTiming: false };

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
    protocol: "",
    status: 0,
    flags: "-",
    requestBytes: 0,
    responseBytes: 0,
    requestHeadBytes: 0,
    responseHeadBytes: 0,
    startMs: 0,
    durationMs: 0,
    upstreamServiceMs: -1,
    queueMs: -1,
    requestId: "",
    userAgent: "",
    forwardedFor: "",
  };
}

/** Back to emptyRecord's values, keeping the listener (a request rejected before its head parsed). */
export function clearRecord(record: ExchangeRecord): void {
  record.cluster = "";
  record.endpoint = "";
  record.method = "";
  record.authority = "";
  record.path = "";
  record.protocol = "";
  record.status = 0;
  record.flags = "-";
  record.requestBytes = 0;
  record.responseBytes = 0;
  record.requestHeadBytes = 0;
  record.responseHeadBytes = 0;
  record.upstreamServiceMs = -1;
  record.queueMs = -1;
  record.requestId = "";
  record.userAgent = "";
  record.forwardedFor = "";
}
