/**
 * Strict HTTP/1.1 response-head parser (RFC 9112 §4–§6). Same conventions as the request parser;
 * every error is thrown with status 400 because the forwarding path answers 502 for any of them.
 */
import { FieldFacts, mayHoldHeadEnd, PRESCAN_BYTES, scanFieldSection } from "./fields.js";
import type { HeadLimits, ResponseHead } from "./head.js";
import { type ParseReason, parseError } from "./reasons.js";
import { CR, FIELD_VALUE, LF, latin1, SP } from "./tokens.js";

const facts = new FieldFacts();

/** Bytes of `HTTP/d.d SP 3DIGIT` plus the byte after it (CR or SP). */
const STATUS_PREFIX_BYTES = 13;

/**
 * Parses the response head starting at buf[start], reading only bytes before `end`.
 * Returns null while incomplete, throws HttpParseError(400) when malformed. Unlike requests,
 * no empty lines are skipped before the status-line (RFC 9112 §2.2 only allows that for
 * requests); an upstream sending them is out of sync with us.
 *
 * Framing left to the caller: 1xx/204/304 and responses to HEAD have no body whatever the
 * fields say, and a response with neither Content-Length nor Transfer-Encoding is read until
 * close (RFC 9112 §6.3 rules 1, 2, 8); contentLength is -1 and chunked false for those.
 */
export function parseResponseHead(
  buf: Buffer,
  start: number,
  end: number,
  limits: HeadLimits,
): ResponseHead | null {
  // status-line = HTTP-version SP status-code SP [ reason-phrase ] (RFC 9112 §4). A missing
  // "SP reason-phrase" is accepted: common servers send `HTTP/1.1 200\r\n`.
  const available = Math.min(end - start, STATUS_PREFIX_BYTES);
  for (let i = 0; i < available; i++) {
    const reason = statusByteError(buf[start + i]!, i);
    if (reason !== null) throw parseError(400, reason);
  }
  if (available < STATUS_PREFIX_BYTES) return incomplete(start, end, limits);
  if (buf[start + 5] !== 0x31 || buf[start + 7]! > 0x31) {
    throw parseError(400, "UNSUPPORTED_HTTP_VERSION");
  }
  const minor = buf[start + 7] === 0x31 ? 1 : 0;
  const status =
    (buf[start + 9]! - 0x30) * 100 + (buf[start + 10]! - 0x30) * 10 + (buf[start + 11]! - 0x30);
  if (status < 100 || status > 599) throw parseError(400, "INVALID_STATUS");

  const reasonStart = start + STATUS_PREFIX_BYTES;
  let statusLineEnd: number; // index of the status-line's CR
  if (buf[start + 12] === CR) {
    if (reasonStart === end) return incomplete(start, end, limits);
    if (buf[reasonStart] !== LF) throw parseError(400, "BARE_CR");
    statusLineEnd = start + 12;
  } else {
    // reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ): the field-value byte set.
    let p = reasonStart;
    while (p < end && FIELD_VALUE[buf[p]!] === 1) p++;
    if (p === end) return incomplete(start, end, limits);
    const c = buf[p]!;
    if (c !== CR) throw parseError(400, c === LF ? "BARE_LF" : "INVALID_REASON_PHRASE");
    if (p + 1 === end) return incomplete(start, end, limits);
    if (buf[p + 1] !== LF) throw parseError(400, "BARE_CR");
    statusLineEnd = p;
  }
  const fieldsStart = statusLineEnd + 2;

  const scanEnd = Math.min(end, start + limits.maxHeadBytes);
  if (scanEnd - start > PRESCAN_BYTES && !mayHoldHeadEnd(buf, fieldsStart - 1, scanEnd)) {
    return incomplete(start, end, limits);
  }
  facts.reset();
  const headEnd = scanFieldSection(buf, fieldsStart, scanEnd, facts);
  if (headEnd === -1) return incomplete(start, end, limits);

  let close = facts.closeOption || (minor === 0 && !facts.keepAliveOption);
  let contentLength = facts.contentLength;
  let chunked = false;
  if (facts.transferEncoding) {
    if (facts.contentLengthSeen) {
      throw parseError(400, "CONTENT_LENGTH_WITH_TRANSFER_ENCODING");
    }
    // RFC 9112 §6.1: TE in an HTTP/1.0 message means faulty framing; we do not guess a length.
    if (minor === 0) throw parseError(400, "TRANSFER_ENCODING_HTTP10");
    if (facts.chunkedCount > 1) throw parseError(400, "DUPLICATE_CHUNKED");
    // Unknown codings are fine here: we relay the bytes, only the framing matters to us.
    if (facts.finalCodingChunked) {
      chunked = true;
    } else {
      // RFC 9112 §6.3 rule 4: the body runs until the connection closes.
      contentLength = -1;
      close = true;
    }
  }

  const text = latin1(buf, start, headEnd);
  return {
    status,
    reason: text.substring(reasonStart - start, Math.max(reasonStart, statusLineEnd) - start),
    minor,
    headers: facts.fieldStrings(text, start),
    contentLength,
    chunked,
    close,
    connectionTokens: facts.connectionTokens,
    headLength: headEnd - start,
  };
}

function incomplete(start: number, end: number, limits: HeadLimits): null {
  if (end - start >= limits.maxHeadBytes) throw parseError(400, "HEAD_TOO_LARGE");
  return null;
}

const HTTP_SLASH = "HTTP/";

/** Checks byte i of `HTTP/d.d SP 3DIGIT (CR|SP)`; returns the reason it is wrong, or null. */
function statusByteError(c: number, i: number): ParseReason | null {
  if (c === LF) return "BARE_LF";
  switch (i) {
    case 5:
    case 7:
      return c >= 0x30 && c <= 0x39 ? null : "INVALID_VERSION";
    case 6:
      return c === 0x2e ? null : "INVALID_VERSION";
    case 8:
      return c === SP ? null : "INVALID_STATUS_LINE";
    case 9:
    case 10:
    case 11:
      return c >= 0x30 && c <= 0x39 ? null : "INVALID_STATUS_LINE";
    case 12:
      return c === CR || c === SP ? null : "INVALID_STATUS_LINE";
    default:
      return c === HTTP_SLASH.charCodeAt(i) ? null : "INVALID_VERSION";
  }
}
