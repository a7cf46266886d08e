/**
 * Strict HTTP/1.1 request-head parser (RFC 9112 §2–§6, §9.3). Pure: bytes in, RequestHead out.
 * Anything ambiguous is rejected, never repaired, because a proxy that guesses differently from
 * the server behind it is how requests get smuggled.
 */
import type { HttpParseError } from "./errors.js";
import {
  FieldFacts,
  mayHoldHeadEnd,
  PRESCAN_BYTES,
  scanFieldSection,
  upgradeValue,
} from "./fields.js";
import type { HeadLimits, RequestHead } from "./head.js";
import { type ParseReason, parseError } from "./reasons.js";
import { CR, HTAB, LF, latin1, SP, TCHAR, VCHAR } from "./tokens.js";

const facts = new FieldFacts();

/**
 * Parses the request head starting at buf[start], reading only bytes before `end`.
 * Returns null while the head is incomplete (call again with more bytes from the same `start`),
 * throws HttpParseError when it is malformed or over a limit.
 *
 * Empty lines before the request-line are skipped and counted in headLength (RFC 9112 §2.2).
 * Errors are reported as soon as the offending bytes are buffered, except in field lines of a
 * head with more than PRESCAN_BYTES buffered, which are reported once its empty line arrives.
 * Bytes past `start + maxHeadBytes` are never examined: a head not ended by then is 431.
 */
export function parseRequestHead(
  buf: Buffer,
  start: number,
  end: number,
  limits: HeadLimits,
): RequestHead | null {
  let p = start;
  // RFC 9112 §2.2: a server SHOULD ignore at least one empty line (CRLF) before the
  // request-line. Only CRLF pairs are skipped; a bare LF is still an error.
  while (p < end) {
    const c = buf[p]!;
    if (c === LF) throw parseError(400, "BARE_LF");
    if (c !== CR) break;
    if (p + 1 === end) return incomplete(start, end, limits);
    if (buf[p + 1] !== LF) throw parseError(400, "BARE_CR");
    p += 2;
  }

  // method SP request-target SP HTTP-version CRLF (RFC 9112 §3), exactly one SP each.
  const methodStart = p;
  const tchar = TCHAR; // a local: see scanFieldLine
  while (p < end && tchar[buf[p]!] === 1) p++;
  // A CR as the last byte: wait for the next one, so the reason never depends on the split.
  if (p === end || (p + 1 === end && buf[p] === CR)) return incomplete(start, end, limits);
  if (buf[p] !== SP || p === methodStart) throw requestLineError(buf, p, "INVALID_METHOD");
  const methodEnd = p++;

  const targetStart = p;
  const targetLimit = targetStart + limits.maxTargetBytes;
  // Stop one byte past the limit: that byte is enough to know the target is too long (414),
  // without waiting for (or scanning) the rest of it.
  const targetScanEnd = Math.min(end, targetLimit + 1);
  const vchar = VCHAR;
  while (p < targetScanEnd && vchar[buf[p]!] === 1) p++;
  if (p > targetLimit) throw parseError(414, "URI_TOO_LONG");
  if (p === end || (p + 1 === end && buf[p] === CR)) return incomplete(start, end, limits);
  if (buf[p] !== SP || p === targetStart) throw requestLineError(buf, p, "INVALID_TARGET");
  const targetEnd = p++;

  // HTTP-version = "HTTP/" DIGIT "." DIGIT (RFC 9112 §2.3), case-sensitive, then CRLF.
  // Check whatever is buffered, so garbage fails before the line is complete.
  const versionStart = p;
  const available = Math.min(end - versionStart, 10);
  for (let i = 0; i < available; i++) {
    const reason = versionByteError(buf[versionStart + i]!, i);
    if (reason !== null) throw parseError(400, reason);
  }
  if (available < 10) return incomplete(start, end, limits);
  if (buf[versionStart + 5] !== 0x31 || buf[versionStart + 7]! > 0x31) {
    throw parseError(505, "UNSUPPORTED_HTTP_VERSION");
  }
  const minor = buf[versionStart + 7] === 0x31 ? 1 : 0;
  const fieldsStart = versionStart + 10;

  // Scan no further than the limit: a head that has not ended by then is 431 whatever follows.
  const scanEnd = Math.min(end, start + limits.maxHeadBytes);
  if (scanEnd - start > PRESCAN_BYTES && !mayHoldHeadEnd(buf, fieldsStart - 1, scanEnd)) {
    return incomplete(start, end, limits);
  }
  facts.reset();
  const headEnd = scanFieldSection(buf, fieldsStart, scanEnd, facts);
  if (headEnd === -1) return incomplete(start, end, limits);

  // Framing (RFC 9112 §6.1, §6.3). Framing errors come first: they are the smuggling shapes.
  let chunked = false;
  if (facts.transferEncoding) {
    if (facts.contentLengthSeen) {
      throw parseError(400, "CONTENT_LENGTH_WITH_TRANSFER_ENCODING");
    }
    // §6.1: TE in HTTP/1.0 means the framing is faulty.
    if (minor === 0) throw parseError(400, "TRANSFER_ENCODING_HTTP10");
    if (facts.chunkedCount > 1) throw parseError(400, "DUPLICATE_CHUNKED");
    // §6.3 rule 4: without chunked last the request body length cannot be determined.
    if (!facts.finalCodingChunked) throw parseError(400, "CHUNKED_NOT_FINAL");
    // §6.1: SHOULD answer 501 to a transfer coding it does not understand.
    if (facts.unknownCoding) throw parseError(501, "UNKNOWN_TRANSFER_CODING");
    chunked = true;
  }

  // Host (RFC 9112 §3.2): exactly one in HTTP/1.1, never more than one.
  if (facts.hostCount > 1) throw parseError(400, "MULTIPLE_HOST");
  if (facts.hostCount === 0) {
    if (minor === 1) throw parseError(400, "MISSING_HOST");
  } else {
    // Stricter than RFC 9112 §3.2, which allows an empty Host when the target has no
    // authority: remora routes by Host, and an empty one can only be a mistake or a probe.
    if (facts.isEmptyValue(facts.hostField)) throw parseError(400, "EMPTY_HOST");
    if (facts.hostInvalid) throw parseError(400, "INVALID_HOST");
  }

  // Valid: now the strings, all cut from one latin1 copy of the head.
  const text = latin1(buf, start, headEnd);
  const headers = facts.fieldStrings(text, start);
  return {
    method: methodName(buf, methodStart, methodEnd, text, start),
    target: text.substring(targetStart - start, targetEnd - start),
    minor,
    headers,
    contentLength: chunked ? -1 : facts.contentLength,
    chunked,
    // RFC 9112 §9.3: close wins; HTTP/1.0 is close unless keep-alive was asked for.
    close: facts.closeOption || (minor === 0 && !facts.keepAliveOption),
    connectionTokens: facts.connectionTokens,
    headLength: headEnd - start,
    host: facts.hostCount === 0 ? undefined : headers[2 * facts.hostField + 1],
    upgrade: facts.upgradeOption ? upgradeValue(facts, headers) : undefined,
    expectContinue: facts.expectContinue,
  };
}

/** No complete head yet: 431 once it can no longer fit the limit, else wait for more bytes. */
function incomplete(start: number, end: number, limits: HeadLimits): null {
  // An incomplete head of maxHeadBytes needs at least one more byte, so it cannot fit.
  if (end - start >= limits.maxHeadBytes) throw parseError(431, "HEAD_TOO_LARGE");
  return null;
}

/** The error for an unexpected byte where the request-line needed SP or a method/target byte. */
function requestLineError(buf: Buffer, p: number, fallback: ParseReason): HttpParseError {
  const c = buf[p]!;
  if (c === LF) return parseError(400, "BARE_LF");
  // CRLF here means the line ended early (e.g. HTTP/0.9's `GET /`); the caller made sure the
  // byte after a CR is buffered.
  if (c === CR) return parseError(400, buf[p + 1] === LF ? "INVALID_REQUEST_LINE" : "BARE_CR");
  // SP here means an empty method or target (two SPs, or a leading SP). Some parsers split the
  // line on any run of whitespace (RFC 9112 §3 allows that leniency); we keep to one SP.
  return parseError(400, c === SP || c === HTAB ? "REQUEST_LINE_WHITESPACE" : fallback);
}

/** Checks byte i of `HTTP/d.d CRLF`; returns the reason it is wrong, or null. */
function versionByteError(c: number, i: number): ParseReason | null {
  switch (i) {
    case 5:
    case 7:
      return c >= 0x30 && c <= 0x39 ? null : c === LF ? "BARE_LF" : "INVALID_VERSION";
    case 6:
      return c === 0x2e ? null : c === LF ? "BARE_LF" : "INVALID_VERSION";
    case 8:
      if (c === SP || c === HTAB) return "REQUEST_LINE_WHITESPACE";
      return c === CR ? null : c === LF ? "BARE_LF" : "INVALID_VERSION";
    case 9:
      return c === LF ? null : "BARE_CR";
    default:
      if (c === HTTP_SLASH.charCodeAt(i)) return null;
      if (i === 0 && (c === SP || c === HTAB)) return "REQUEST_LINE_WHITESPACE";
      return c === LF ? "BARE_LF" : "INVALID_VERSION";
  }
}

const HTTP_SLASH = "HTTP/";

/** The method as a string, reusing constants for the common ones (no allocation per request). */
function methodName(buf: Buffer, start: number, end: number, text: string, base: number): string {
  switch (end - start) {
    case 3:
      if (equalsExact(buf, start, "GET")) return "GET";
      if (equalsExact(buf, start, "PUT")) return "PUT";
      break;
    case 4:
      if (equalsExact(buf, start, "POST")) return "POST";
      if (equalsExact(buf, start, "HEAD")) return "HEAD";
      break;
    case 6:
      if (equalsExact(buf, start, "DELETE")) return "DELETE";
      break;
  }
  return text.substring(start - base, end - base);
}

/** Case-sensitive compare: methods are case-sensitive (RFC 9110 §9.1). */
function equalsExact(buf: Buffer, start: number, s: string): boolean {
  for (let i = 0; i < s.length; i++) if (buf[start + i] !== s.charCodeAt(i)) return false;
  return true;
}
