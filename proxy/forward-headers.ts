import type { RequestHead, ResponseHead } from "./http/head.js";
import { requestId as newRequestId } from "./request-id.js";

/** What a field is, for re-serialising a head for the next hop. */
const OTHER = 0;
/** Hop-by-hop (RFC 9110 §7.6.1) or re-framed by us: never forwarded as received. */
const HOP = 1;
/** Hop-by-hop too, but kept on a 101 response (it names the protocol switched to). */
const UPGRADE = 2;
const X_FORWARDED_FOR = 3;
const X_FORWARDED_PROTO = 4;
const HOST = 5;
const X_REQUEST_ID = 6;
const EXPECT = 7;
/** Forwarded unchanged; noted for the access log. */
const USER_AGENT = 8;
/** Removed on inbound listeners (a client must not forge it); set there from a verified peer. */
const X_FORWARDED_CLIENT_CERT = 9;

/**
 * Classify a field name without lower-casing every name: only names whose length matches a
 * field we care about are compared.
 */
function classifyField(name: string): number {
  switch (name.length) {
    case 2:
      return name.toLowerCase() === "te" ? HOP : OTHER;
    case 4:
      return name.toLowerCase() === "host" ? HOST : OTHER;
    case 6:
      return name.toLowerCase() === "expect" ? EXPECT : OTHER;
    case 7: {
      const lower = name.toLowerCase();
      return lower === "upgrade" ? UPGRADE : lower === "trailer" ? HOP : OTHER;
    }
    case 10: {
      const lower = name.toLowerCase();
      if (lower === "user-agent") return USER_AGENT;
      return lower === "connection" || lower === "keep-alive" ? HOP : OTHER;
    }
    case 12:
      return name.toLowerCase() === "x-request-id" ? X_REQUEST_ID : OTHER;
    case 14:
      // Re-declared from the parsed framing (a list like "5, 5" goes out as "5").
      return name.toLowerCase() === "content-length" ? HOP : OTHER;
    case 15:
      return name.toLowerCase() === "x-forwarded-for" ? X_FORWARDED_FOR : OTHER;
    case 16:
      return name.toLowerCase() === "proxy-connection" ? HOP : OTHER;
    case 17: {
      const lower = name.toLowerCase();
      if (lower === "transfer-encoding") return HOP;
      return lower === "x-forwarded-proto" ? X_FORWARDED_PROTO : OTHER;
    }
    case 23:
      return name.toLowerCase() === "x-forwarded-client-cert" ? X_FORWARDED_CLIENT_CERT : OTHER;
    default:
      return OTHER;
  }
}

/**
 * The transfer codings a message applied before its final chunked, normalised for re-declaring
 * (`gzip, ` for `Transfer-Encoding:<HTAB>gzip<HTAB>,chunked`), or "" when chunked is the only
 * one, as it almost always is. The received Transfer-Encoding lines are never copied: their
 * whitespace and case stay here (RFC 9110 §5.6.3 OWS, trimmed; codings are case-insensitive,
 * RFC 9112 §7), and only codings the parser accepted as tokens can be in them. Every chunked
 * element is dropped: the caller appends the one chunked it frames the message with.
 */
export function codingsBeforeChunked(headers: string[]): string {
  let out = "";
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name.length !== 17 || name.toLowerCase() !== "transfer-encoding") continue;
    const value = headers[i + 1]!;
    if (value.length === 7 && value.toLowerCase() === "chunked") continue;
    for (const element of value.split(",")) {
      // trim() removes more than OWS, but the parser let only tchar and OWS into these values.
      const coding = element.trim().toLowerCase();
      if (coding !== "" && coding !== "chunked") out += `${coding}, `;
    }
  }
  return out;
}

/** Fields named by Connection are hop-by-hop too (RFC 9110 §7.6.1). */
function namedByConnection(tokens: string[], name: string): boolean {
  const lower = name.toLowerCase();
  for (let i = 0; i < tokens.length; i++) if (tokens[i] === lower) return true;
  return false;
}

export interface RequestHeadOptions {
  /** Path to send: origin-form (absolute-form targets are rewritten). */
  readonly path: string;
  /** Replaces Host when the client used absolute-form (RFC 9112 §3.2.2); else undefined. */
  readonly host: string | undefined;
  readonly clientAddress: string;
  readonly proto: string;
  /** Expect: 100-continue was answered here, so it is not forwarded. */
  readonly expectHandled: boolean;
  /** Forward the upgrade (Upgrade + Connection: upgrade). */
  readonly upgrade: string | undefined;
  /**
   * x-forwarded-client-cert: `undefined` forwards the client's unchanged (outbound listeners);
   * `""` removes it (inbound, plaintext); otherwise it replaces the client's (inbound, mTLS).
   */
  readonly clientCert: string | undefined;
}

export interface SerializedRequestHead {
  text: string;
  requestId: string;
  /** As the client sent them ("" when absent), for the access log: references, not copies. */
  userAgent: string;
  forwardedFor: string;
}

/**
 * The request head for the upstream: always HTTP/1.1, hop-by-hop fields removed, framing
 * re-declared from what the codec parsed, X-Forwarded-For appended, X-Forwarded-Proto set,
 * X-Request-Id added when absent; traceparent/tracestate and every other field pass unchanged.
 */
export function serializeRequestHead(
  head: RequestHead,
  opts: RequestHeadOptions,
  out: SerializedRequestHead,
): void {
  const headers = head.headers;
  const tokens = head.connectionTokens;
  let text = `${head.method} ${opts.path} HTTP/1.1\r\n`;
  let forwardedFor = "";
  let requestId = "";
  let userAgent = "";
  if (opts.host !== undefined) text += `host: ${opts.host}\r\n`;
  // An HTTP/1.0 request may come without Host; it goes out as HTTP/1.1, which requires one:
  // empty, as RFC 9112 §3.2 says for a target without an authority (the fuzzer found it).
  else if (head.host === undefined) text += "host: \r\n";
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const value = headers[i + 1]!;
    switch (classifyField(name)) {
      case HOP:
      case UPGRADE:
      case X_FORWARDED_PROTO:
        continue;
      case X_FORWARDED_FOR:
        forwardedFor = forwardedFor === "" ? value : `${forwardedFor}, ${value}`;
        continue;
      case HOST:
        if (opts.host !== undefined) continue;
        break;
      case X_REQUEST_ID:
        requestId = value;
        break;
      case EXPECT:
        if (opts.expectHandled) continue;
        break;
      case USER_AGENT:
        userAgent = value;
        break;
      case X_FORWARDED_CLIENT_CERT:
        if (opts.clientCert !== undefined) continue;
        break;
    }
    if (tokens.length > 0 && namedByConnection(tokens, name)) continue;
    text += `${name}: ${value}\r\n`;
  }
  if (head.chunked) text += `transfer-encoding: ${codingsBeforeChunked(headers)}chunked\r\n`;
  else if (head.contentLength >= 0) text += `content-length: ${head.contentLength}\r\n`;
  if (opts.upgrade !== undefined) text += `connection: upgrade\r\nupgrade: ${opts.upgrade}\r\n`;
  text +=
    forwardedFor === ""
      ? `x-forwarded-for: ${opts.clientAddress}\r\n`
      : `x-forwarded-for: ${forwardedFor}, ${opts.clientAddress}\r\n`;
  text += `x-forwarded-proto: ${opts.proto}\r\n`;
  if (opts.clientCert) text += `x-forwarded-client-cert: ${opts.clientCert}\r\n`;
  if (requestId === "") {
    requestId = newRequestId();
    text += `x-request-id: ${requestId}\r\n`;
  }
  out.text = `${text}\r\n`;
  out.requestId = requestId;
  out.userAgent = userAgent;
  out.forwardedFor = forwardedFor;
}

/**
 * The fields serializeRequestHead notes, for a request answered locally before it is
 * serialised (no route...): its own X-Request-Id, or a new one as Envoy assigns before routing.
 */
export function noteRequestFields(head: RequestHead, out: SerializedRequestHead): void {
  const headers = head.headers;
  let forwardedFor = "";
  let requestId = "";
  let userAgent = "";
  for (let i = 0; i < headers.length; i += 2) {
    const value = headers[i + 1]!;
    switch (classifyField(headers[i]!)) {
      case X_FORWARDED_FOR:
        forwardedFor = forwardedFor === "" ? value : `${forwardedFor}, ${value}`;
        break;
      case X_REQUEST_ID:
        requestId = value;
        break;
      case USER_AGENT:
        userAgent = value;
        break;
    }
  }
  out.text = "";
  out.requestId = requestId === "" ? newRequestId() : requestId;
  out.userAgent = userAgent;
  out.forwardedFor = forwardedFor;
}

/** Response body framing towards the client, decided once per response. */
export const FRAMING_NONE = 0;
export const FRAMING_LENGTH = 1;
export const FRAMING_CHUNKED = 2;
/** No length known and the client cannot take chunked: the body ends when we close. */
export const FRAMING_CLOSE = 3;

/**
 * The response head for the client: hop-by-hop fields removed and framing re-declared.
 * `connection` is the Connection value to send ("close", "keep-alive", "upgrade" or "").
 */
export function serializeResponseHead(
  head: ResponseHead,
  framing: number,
  connection: string,
  /** Field lines remora adds, each ending in CRLF (a generated Set-Cookie), or "". */
  extra = "",
): string {
  const headers = head.headers;
  const tokens = head.connectionTokens;
  const upgrade = head.status === 101;
  let text = `HTTP/1.1 ${head.status} ${head.reason}\r\n`;
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    const kind = classifyField(name);
    if (kind === HOP || (kind === UPGRADE && !upgrade)) continue;
    if (kind !== UPGRADE && tokens.length > 0 && namedByConnection(tokens, name)) continue;
    text += `${name}: ${headers[i + 1]}\r\n`;
  }
  if (framing === FRAMING_CHUNKED) {
    text += `transfer-encoding: ${codingsBeforeChunked(headers)}chunked\r\n`;
  }
  // A HEAD response describes the GET response's framing without a body (RFC 9110 §9.3.2).
  else if (framing === FRAMING_NONE && head.chunked && head.status >= 200 && head.status !== 204) {
    text += `transfer-encoding: ${codingsBeforeChunked(headers)}chunked\r\n`;
  } else if (head.contentLength >= 0 && (framing === FRAMING_LENGTH || framing === FRAMING_NONE)) {
    // HEAD and 304 responses keep the length of the body they describe (RFC 9110 §8.6).
    if (head.status !== 204 && head.status >= 200) {
      text += `content-length: ${head.contentLength}\r\n`;
    }
  }
  if (connection !== "") text += `connection: ${connection}\r\n`;
  return `${text}${extra}\r\n`;
}

/** An interim (1xx) response relayed to an HTTP/1.1 client. */
export function serializeInterimHead(head: ResponseHead): string {
  return serializeResponseHead(head, FRAMING_NONE, "");
}
