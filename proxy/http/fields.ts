/**
 * Field-line parsing shared by request heads, response heads and chunked trailers (RFC 9112 §5),
 * plus the framing facts the head parsers derive from Content-Length, Transfer-Encoding, Host,
 * Connection, Upgrade and Expect while they walk the lines once.
 */
import { parseError } from "./reasons.js";
import {
  COLON,
  COMMA,
  CR,
  equalsLowerAscii,
  FIELD_VALUE,
  HTAB,
  isOws,
  LF,
  latin1,
  SP,
  TCHAR,
} from "./tokens.js";

/**
 * What the field lines of one head say about framing and the connection. The parsers keep one
 * module-level instance and reset it per head: parsing is synchronous, so it is never shared,
 * and the hot path allocates no per-head scratch object.
 */
export class FieldFacts {
  contentLengthSeen = false;
  contentLength = -1;
  /** Digits of the first Content-Length, so "5" and "05" count as different values. */
  contentLengthDigits = 0;
  transferEncoding = false;
  chunkedCount = 0;
  finalCodingChunked = false;
  unknownCoding = false;
  hostCount = 0;
  host: string | undefined = undefined;
  closeOption = false;
  keepAliveOption = false;
  upgradeOption = false;
  connectionTokens: string[] = [];
  upgrade: string | undefined = undefined;
  expectContinue = false;

  reset(): void {
    this.contentLengthSeen = false;
    this.contentLength = -1;
    this.contentLengthDigits = 0;
    this.transferEncoding = false;
    this.chunkedCount = 0;
    this.finalCodingChunked = false;
    this.unknownCoding = false;
    this.hostCount = 0;
    this.host = undefined;
    this.closeOption = false;
    this.keepAliveOption = false;
    this.upgradeOption = false;
    // A fresh array: the previous head owns the old one.
    this.connectionTokens = [];
    this.upgrade = undefined;
    this.expectContinue = false;
  }
}

const LF_CRLF = Buffer.from("\n\r\n", "latin1");
const LF_LF = Buffer.from("\n\n", "latin1");

/**
 * Finds the empty line ending a head whose first line ends with the LF at `firstLf`. Returns
 * the index just past that empty line's LF, or -1 when buf[..end) does not hold it yet. Uses
 * Buffer#indexOf (native memmem) so an incomplete head costs no per-byte JS work on each retry.
 * Lines are validated later, once, by parseFieldSection.
 */
export function findHeadEnd(buf: Buffer, firstLf: number, end: number): number {
  const t = buf.indexOf(LF_CRLF, firstLf);
  if (t !== -1 && t + 3 <= end) return t + 3;
  // No CRLF-terminated empty line; "\n\n" means an LF without CR is already buffered (it may be
  // a bare-LF-terminated head), which is an error wherever it is (RFC 9112 §2.2).
  const b = buf.indexOf(LF_LF, firstLf);
  if (b !== -1 && b + 2 <= end) throw parseError(400, "BARE_LF");
  return -1;
}

/**
 * Parses the field lines in buf[pos..sectionEnd), where sectionEnd is the CR of the empty line
 * (so every line in range ends in LF). Pushes [name, value] pairs to `headers`.
 */
export function parseFieldSection(
  buf: Buffer,
  pos: number,
  sectionEnd: number,
  headers: string[],
  facts: FieldFacts,
): void {
  while (pos < sectionEnd) {
    const lf = buf.indexOf(LF, pos);
    // Also catches an empty bare-LF line: the byte before it is the previous line's LF.
    if (buf[lf - 1] !== CR) throw parseError(400, "BARE_LF");
    parseFieldLine(buf, pos, lf - 1, headers, facts);
    pos = lf + 1;
  }
}

/**
 * Parses one field line buf[start..lineEnd) (lineEnd is the CR of its CRLF):
 * `field-name ":" OWS field-value OWS` (RFC 9112 §5). Pushes name (original case) and value
 * (OWS trimmed). With `facts`, also records the fields that decide framing.
 */
export function parseFieldLine(
  buf: Buffer,
  start: number,
  lineEnd: number,
  headers: string[],
  facts: FieldFacts | null,
): void {
  let p = start;
  const first = buf[p]!;
  // obs-fold (RFC 9112 §5.2): a server MUST reject or unfold it; we never unfold. The same byte
  // check rejects whitespace between the start-line and the first field (RFC 9112 §2.2).
  if (first === SP || first === HTAB) throw parseError(400, "OBS_FOLD");
  while (p < lineEnd && TCHAR[buf[p]!] === 1) p++;
  if (p === lineEnd) throw parseError(400, p === start ? "EMPTY_FIELD_NAME" : "MISSING_COLON");
  const c = buf[p]!;
  if (c !== COLON) {
    // RFC 9112 §5.1: a server MUST reject whitespace between field name and colon with 400.
    if (c === SP || c === HTAB) throw parseError(400, "WHITESPACE_BEFORE_COLON");
    throw parseError(400, c === CR ? "BARE_CR" : "INVALID_FIELD_NAME");
  }
  if (p === start) throw parseError(400, "EMPTY_FIELD_NAME");
  const nameEnd = p++;
  while (p < lineEnd && isOws(buf[p]!)) p++;
  const valueStart = p;
  let valueEnd = p;
  for (; p < lineEnd; p++) {
    const b = buf[p]!;
    if (FIELD_VALUE[b] === 0) throw parseError(400, b === CR ? "BARE_CR" : "INVALID_FIELD_VALUE");
    if (b !== SP && b !== HTAB) valueEnd = p + 1;
  }
  const value = latin1(buf, valueStart, valueEnd);
  headers.push(latin1(buf, start, nameEnd), value);
  if (facts === null) return;
  // Match the few framing fields by length first, so most names cost one switch.
  switch (nameEnd - start) {
    case 4:
      if (equalsLowerAscii(buf, start, "host")) {
        if (++facts.hostCount === 1) facts.host = value;
      }
      return;
    case 6:
      if (
        equalsLowerAscii(buf, start, "expect") &&
        valueEnd - valueStart === 12 &&
        equalsLowerAscii(buf, valueStart, "100-continue")
      ) {
        facts.expectContinue = true;
      }
      return;
    case 7:
      if (equalsLowerAscii(buf, start, "upgrade") && value.length > 0) {
        // Several Upgrade lines combine as one list (RFC 9110 §5.3).
        facts.upgrade = facts.upgrade === undefined ? value : `${facts.upgrade}, ${value}`;
      }
      return;
    case 10:
      if (equalsLowerAscii(buf, start, "connection")) {
        parseConnection(buf, valueStart, valueEnd, facts);
      }
      return;
    case 14:
      if (equalsLowerAscii(buf, start, "content-length")) {
        rejectHtab(buf, nameEnd + 1, lineEnd);
        parseContentLength(buf, valueStart, valueEnd, facts);
      }
      return;
    case 17:
      if (equalsLowerAscii(buf, start, "transfer-encoding")) {
        rejectHtab(buf, nameEnd + 1, lineEnd);
        parseTransferEncoding(buf, valueStart, valueEnd, facts);
      }
      return;
  }
}

/**
 * HTAB is valid OWS (RFC 9110 §5.6.3), but in the framing fields parsers disagree on it: llhttp
 * keeps a trailing HTAB as part of a Transfer-Encoding value (so `chunked<HTAB>` is not chunked
 * to it) and `Transfer-Encoding:<HTAB>chunked` is a known smuggling obfuscation. No real sender
 * puts HTAB there, so the framing fields get SP only.
 */
function rejectHtab(buf: Buffer, p: number, end: number): void {
  for (; p < end; p++) if (buf[p] === HTAB) throw parseError(400, "HTAB_IN_FRAMING_FIELD");
}

/**
 * Content-Length = 1*DIGIT (RFC 9110 §8.6). A list of identical values ("5, 5"), in one line or
 * across lines, is accepted as that value as §8.6 allows; any difference is a smuggling shape
 * (RFC 9112 §6.3 rule 5) and rejected. "Identical" is textual: "5" and "05" differ.
 */
function parseContentLength(buf: Buffer, p: number, end: number, facts: FieldFacts): void {
  for (;;) {
    const digitsStart = p;
    let n = 0;
    while (p < end) {
      const d = buf[p]! - 0x30;
      if (d < 0 || d > 9) break;
      // 15 digits keep n below 2^53, so the value is exact.
      if (p - digitsStart === 15) throw parseError(400, "CONTENT_LENGTH_TOO_LARGE");
      n = n * 10 + d;
      p++;
    }
    const digits = p - digitsStart;
    if (digits === 0) throw parseError(400, "INVALID_CONTENT_LENGTH");
    if (!facts.contentLengthSeen) {
      facts.contentLengthSeen = true;
      facts.contentLength = n;
      facts.contentLengthDigits = digits;
    } else if (facts.contentLength !== n || facts.contentLengthDigits !== digits) {
      throw parseError(400, "CONFLICTING_CONTENT_LENGTH");
    }
    if (p === end) return;
    while (p < end && isOws(buf[p]!)) p++;
    if (p === end || buf[p] !== COMMA) throw parseError(400, "INVALID_CONTENT_LENGTH");
    p++;
    while (p < end && isOws(buf[p]!)) p++;
  }
}

/**
 * Transfer-Encoding = #transfer-coding (RFC 9112 §6.1), case-insensitive. Only bare tokens are
 * accepted: no coding we support takes parameters, and an empty list element is rejected rather
 * than skipped because parsers disagree on it. Whether chunked is final and whether every coding
 * is known is judged by the head parser once all lines are seen.
 */
function parseTransferEncoding(buf: Buffer, p: number, end: number, facts: FieldFacts): void {
  facts.transferEncoding = true;
  for (;;) {
    const tokenStart = p;
    while (p < end && TCHAR[buf[p]!] === 1) p++;
    const tokenEnd = p;
    if (tokenStart === tokenEnd) {
      throw parseError(
        400,
        p === end || buf[p] === COMMA ? "EMPTY_TRANSFER_CODING" : "INVALID_TRANSFER_ENCODING",
      );
    }
    let chunked = false;
    switch (tokenEnd - tokenStart) {
      case 7:
        chunked = equalsLowerAscii(buf, tokenStart, "chunked");
        if (!chunked && !equalsLowerAscii(buf, tokenStart, "deflate")) facts.unknownCoding = true;
        break;
      case 4:
        if (!equalsLowerAscii(buf, tokenStart, "gzip")) facts.unknownCoding = true;
        break;
      case 6:
        if (!equalsLowerAscii(buf, tokenStart, "x-gzip")) facts.unknownCoding = true;
        break;
      case 8:
        if (!equalsLowerAscii(buf, tokenStart, "compress")) facts.unknownCoding = true;
        break;
      case 10:
        if (!equalsLowerAscii(buf, tokenStart, "x-compress")) facts.unknownCoding = true;
        break;
      default:
        facts.unknownCoding = true;
    }
    if (chunked) facts.chunkedCount++;
    facts.finalCodingChunked = chunked;
    while (p < end && isOws(buf[p]!)) p++;
    if (p === end) return;
    if (buf[p] !== COMMA) throw parseError(400, "INVALID_TRANSFER_ENCODING");
    p++;
    while (p < end && isOws(buf[p]!)) p++;
  }
}

/**
 * Connection = #connection-option (RFC 9110 §7.6.1), case-insensitive. Empty list elements are
 * ignored as RFC 9110 §5.6.1 requires. Options naming Host, Content-Length or Transfer-Encoding
 * are rejected: a proxy strips the fields its Connection names, so honouring them would let a
 * client remove framing or routing fields from the forwarded message.
 */
function parseConnection(buf: Buffer, p: number, end: number, facts: FieldFacts): void {
  while (p < end) {
    const c = buf[p]!;
    if (c === COMMA || c === SP || c === HTAB) {
      p++;
      continue;
    }
    const tokenStart = p;
    while (p < end && TCHAR[buf[p]!] === 1) p++;
    const tokenEnd = p;
    if (tokenStart === tokenEnd) throw parseError(400, "INVALID_CONNECTION");
    while (p < end && isOws(buf[p]!)) p++;
    if (p < end && buf[p] !== COMMA) throw parseError(400, "INVALID_CONNECTION");
    switch (tokenEnd - tokenStart) {
      case 5:
        if (equalsLowerAscii(buf, tokenStart, "close")) {
          facts.closeOption = true;
          continue;
        }
        break;
      case 10:
        if (equalsLowerAscii(buf, tokenStart, "keep-alive")) {
          facts.keepAliveOption = true;
          continue;
        }
        break;
      case 7:
        if (equalsLowerAscii(buf, tokenStart, "upgrade")) facts.upgradeOption = true;
        break;
      case 4:
        if (equalsLowerAscii(buf, tokenStart, "host")) {
          throw parseError(400, "CONNECTION_NAMES_FRAMING_FIELD");
        }
        break;
      case 14:
        if (equalsLowerAscii(buf, tokenStart, "content-length")) {
          throw parseError(400, "CONNECTION_NAMES_FRAMING_FIELD");
        }
        break;
      case 17:
        if (equalsLowerAscii(buf, tokenStart, "transfer-encoding")) {
          throw parseError(400, "CONNECTION_NAMES_FRAMING_FIELD");
        }
        break;
    }
    facts.connectionTokens.push(latin1(buf, tokenStart, tokenEnd).toLowerCase());
  }
}
