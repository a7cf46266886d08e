/**
 * One exchange as one access-log line: Envoy's default fields under Istio's JSON key names.
 */
import type { ExchangeRecord } from "../exchange.js";

let isoMs = -1;
let isoText = "";

/** ISO 8601 with milliseconds; one Date per distinct millisecond, not per line. */
function startTime(ms: number): string {
  const whole = Math.floor(ms);
  if (whole !== isoMs) {
    isoMs = whole;
    isoText = new Date(whole).toISOString();
  }
  return isoText;
}

/** A JSON string, or null for "" (Envoy logs "-", its JSON format null, for a missing value). */
function quoted(text: string): string {
  if (text === "") return "null";
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || c > 0x7e) return JSON.stringify(text);
  }
  return `"${text}"`;
}

/**
 * One exchange as a JSON line. Keys, order and meanings follow Envoy's default access-log
 * format (Istio's JSON encoding of it), plus remora's `listener` and `queue_time` (ms waited for
 * a free endpoint under first-come; null when the request never queued). Bytes are body bytes, as in Envoy;
 * durations are whole milliseconds, truncated, as in Envoy.
 */
export function accessLogLine(record: ExchangeRecord): string {
  const upstream = record.upstreamServiceMs;
  const queued = record.queueMs;
  return (
    `{"start_time":"${startTime(record.startMs)}","method":${quoted(record.method)},` +
    `"path":${quoted(record.path)},"protocol":${quoted(record.protocol)},` +
    `"response_code":${record.status},"response_flags":"${record.flags}",` +
    `"bytes_received":${record.requestBytes - record.requestHeadBytes},` +
    `"bytes_sent":${record.responseBytes - record.responseHeadBytes},` +
    `"duration":${Math.trunc(record.durationMs)},` +
    `"upstream_service_time":${upstream < 0 ? "null" : Math.trunc(upstream)},` +
    `"x_forwarded_for":${quoted(record.forwardedFor)},"user_agent":${quoted(record.userAgent)},` +
    `"request_id":${quoted(record.requestId)},"authority":${quoted(record.authority)},` +
    `"upstream_host":${quoted(record.endpoint)},"upstream_cluster":${quoted(record.cluster)},` +
    `"listener":${quoted(record.listener)},` +
    `"queue_time":${queued < 0 ? "null" : Math.trunc(queued)}}\n`
  );
}
