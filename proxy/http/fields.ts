/**
 * Field-line scanning shared by request heads, response heads and chunked trailers (RFC 9112 §5),
 * plus the framing facts the head parsers derive from Content-Length, Transfer-Encoding, Host,
 * Connection, Upgrade and Expect.
 *
 * Two passes, for speed: the scan validates bytes and records where names and values are; the
 * head parser then makes one latin1 string of the whole head and cuts every name and value out
 * of it with substring. One native Buffer-to-string call per head instead of two per field is
 * most of the parse time saved (each such call costs ~100 ns on Node 20).
 */
import { parseError } from "./reasons.js";
import {
  COLON,
  COMMA,
  CR,
  equalsLowerAscii,
  FIELD_VALUE,
  HOST_CHAR,
  HTAB,
  isOws,
  LF,
  latin1,
  SP,
  TCHAR,
} from "./tokens.js";

/**
 * What the field lines of one head say, as offsets into the buffer plus framing facts. The
 * parsers keep one module-level instance each and reset it per head: parsing is synchronous, so
 * it is never shared, and the hot path allocates no per-head scratch.
 */
export class FieldFacts {
  /** Per field: nameStart, nameEnd, valueStart, valueEnd (buffer indexes, value OWS-trimmed). */
  readonly offsets: number[] = [];
  fieldCount = 0;
  contentLengthSeen = false;
  contentLength = -1;
  /** Digits of the first Content-Length, so "5" and "05" count as different values. */
  contentLengthDigits = 0;
  transferEncoding = false;
  chunkedCount = 0;
  finalCodingChunked = false;
  unknownCoding = false;
  hostCount = 0;
  /** Field index of the first Host, or -1. */
  hostField = -1;
  /** The first Host value has a byte outside uri-host[:port]. */
  hostInvalid = false;
  /** Field indexes of non-empty Upgrade lines. */
  readonly upgradeFields: number[] = [];
  closeOption = false;
  keepAliveOption = false;
  upgradeOption = false;
  connectionTokens: string[] = [];
  expectContinue = false;

  reset(): void {
    this.fieldCount = 0;
    this.contentLengthSeen = false;
    this.contentLength = -1;
    this.contentLengthDigits = 0;
    this.transferEncoding = false;
    this.chunkedCount = 0;
    this.finalCodingChunked = false;
    this.unknownCoding = false;
    this.hostCount = 0;
    this.hostField = -1;
    this.hostInvalid = false;
    if (this.upgradeFields.length !== 0) this.upgradeFields.length = 0;
    this.closeOption = false;
    this.keepAliveOption = false;
    this.upgradeOption = false;
    // A fresh array: the previous head owns the old one.
    this.connectionTokens = [];
    this.expectContinue = false;
  }

  /** The [name, value, ...] list, cut from `text`, which holds the buffer's bytes from `base` on. */
  fieldStrings(text: string, base: number): string[] {
    const o = this.offsets;
    const headers: string[] = [];
    for (let j = 0; j < this.fieldCount * 4; j += 4) {
      headers.push(
        text.substring(o[j]! - base, o[j + 1]! - base),
        text.substring(o[j + 2]! - base, o[j + 3]! - base),
      );
    }
    return headers;
  }

  /** Whether field `field` has an empty (all-OWS) value. */
  isEmptyValue(field: number): boolean {
    return this.offsets[field * 4 + 2] === this.offsets[field * 4 + 3];
  }
}

/** Combined value of the Upgrade lines (RFC 9110 §5.3), or undefined when there are none. */
export function upgradeValue(facts: FieldFacts, headers: string[]): string | undefined {
  const fields = facts.upgradeFields;
  if (fields.length === 0) return undefined;
  let value = headers[2 * fields[0]! + 1]!;
  for (let i = 1; i < fields.length; i++) value += `, ${headers[2 * fields[i]! + 1]}`;
  return value;
}

const LF_CRLF = Buffer.from("\n\r\n", "latin1");
const LF_LF = Buffer.from("\n\n", "latin1");

/**
 * Heads with more than this many bytes buffered are first searched for their end with native
 * memmem, so a large head arriving in small pieces is not re-validated in JS on every retry
 * (the parsers are stateless; callers re-parse from the start). Smaller heads go straight to
 * the single JS pass, which is faster when the head is complete, as it usually is.
 */
export const PRESCAN_BYTES = 2048;

/**
 * Whether buf[from..end) can hold a complete head (or already shows a bare LF, which the full
 * scan will report). False means: certainly incomplete and nothing to report yet.
 */
export function mayHoldHeadEnd(buf: Buffer, from: number, end: number): boolean {
  const t = buf.indexOf(LF_CRLF, from);
  if (t !== -1 && t + 3 <= end) return true;
  const b = buf.indexOf(LF_LF, from);
  return b !== -1 && b + 2 <= end;
}

/**
 * Scans the field lines starting at `pos` (just after the start-line's LF) up to and including
 * the empty line. Returns the index just past the empty line's LF, or -1 when buf[..end) ends
 * first. Throws on the first malformed byte; a CR that is the last buffered byte is waited on,
 * so the reason never depends on where the input was split.
 */
export function scanFieldSection(buf: Buffer, pos: number, end: number, facts: FieldFacts): number {
  for (;;) {
    if (pos >= end) return -1;
    const c = buf[pos]!;
    if (c === CR) {
      if (pos + 1 === end) return -1;
      if (buf[pos + 1] !== LF) throw parseError(400, "BARE_CR");
      return pos + 2;
    }
    pos = scanFieldLine(buf, pos, end, facts, true);
    if (pos === -1) return -1;
  }
}

/**
 * Scans one field line at `start`: `field-name ":" OWS field-value OWS CRLF` (RFC 9112 §5).
 * Records its offsets in `facts`; with `framing`, also the facts of the fields that decide
 * framing and routing. Returns the index after its CRLF, or -1 when incomplete.
 */
export function scanFieldLine(
  buf: Buffer,
  start: number,
  end: number,
  facts: FieldFacts,
  framing: boolean,
): number {
  // Imported tables read through a local: V8 re-loads (and hole-checks) an imported binding on
  // every loop iteration, which measured ~30% slower on these scans.
  const tchar = TCHAR;
  const fieldValue = FIELD_VALUE;
  let p = start;
  let c = buf[p]!;
  // obs-fold (RFC 9112 §5.2): a server MUST reject or unfold it; we never unfold. The same check
  // rejects whitespace between the start-line and the first field (RFC 9112 §2.2).
  if (c === SP || c === HTAB) throw parseError(400, "OBS_FOLD");
  if (c === LF) throw parseError(400, "BARE_LF");
  while (p < end && tchar[buf[p]!] === 1) p++;
  if (p === end) return -1;
  c = buf[p]!;
  if (c !== COLON) {
    // RFC 9112 §5.1: a server MUST reject whitespace between field name and colon with 400.
    if (c === SP || c === HTAB) throw parseError(400, "WHITESPACE_BEFORE_COLON");
    if (c === LF) throw parseError(400, "BARE_LF");
    if (c === CR) {
      if (p + 1 === end) return -1;
      if (buf[p + 1] !== LF) throw parseError(400, "BARE_CR");
      throw parseError(400, p === start ? "EMPTY_FIELD_NAME" : "MISSING_COLON");
    }
    throw parseError(400, "INVALID_FIELD_NAME");
  }
  if (p === start) throw parseError(400, "EMPTY_FIELD_NAME");
  const nameEnd = p++;
  while (p < end && isOws(buf[p]!)) p++;
  const valueStart = p;
  // Value bytes until the first byte outside field-value, which must be the CR of CRLF. One
  // table load per byte; trailing OWS is trimmed afterwards.
  while (p < end && fieldValue[buf[p]!] === 1) p++;
  if (p === end) return -1;
  c = buf[p]!;
  if (c !== CR) throw parseError(400, c === LF ? "BARE_LF" : "INVALID_FIELD_VALUE");
  let valueEnd = p;
  while (valueEnd > valueStart && isOws(buf[valueEnd - 1]!)) valueEnd--;
  if (p + 1 === end) return -1;
  if (buf[p + 1] !== LF) throw parseError(400, "BARE_CR");
  const lineEnd = p;

  const field = facts.fieldCount++;
  const o = facts.offsets;
  const j = field * 4;
  o[j] = start;
  o[j + 1] = nameEnd;
  o[j + 2] = valueStart;
  o[j + 3] = valueEnd;
  if (framing) applyField(buf, start, nameEnd, valueStart, valueEnd, field, facts);
  return lineEnd + 2;
}

/** Records what a framing or routing field says. Names are matched by length first. */
function applyField(
  buf: Buffer,
  start: number,
  nameEnd: number,
  valueStart: number,
  valueEnd: number,
  field: number,
  facts: FieldFacts,
): void {
  switch (nameEnd - start) {
    case 4:
      if (equalsLowerAscii(buf, start, "host") && ++facts.hostCount === 1) {
        facts.hostField = field;
        const hostChar = HOST_CHAR;
        for (let p = valueStart; p < valueEnd; p++) {
          if (hostChar[buf[p]!] === 0) facts.hostInvalid = true;
        }
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
      if (equalsLowerAscii(buf, start, "upgrade") && valueEnd > valueStart) {
        facts.upgradeFields.push(field);
      }
      return;
    case 10:
      if (equalsLowerAscii(buf, start, "connection")) {
        parseConnection(buf, valueStart, valueEnd, facts);
      }
      return;
    // Content-Length and Transfer-Encoding get the OWS of RFC 9110 §5.6.3 (SP and HTAB) around
    // the value and around list commas, as every other field does; any other byte, HTAB inside
    // an element included, is an error below. llhttp disagrees on HTAB here (it keeps a
    // trailing one as part of a Transfer-Encoding value, so `chunked<HTAB>` is not chunked to
    // it), which once made us refuse HTAB in these two fields. That disagreement cannot reach a
    // backend: both fields are hop-by-hop to the forwarding path, which drops the received
    // lines and declares the framing it parsed afresh (`content-length: 42`, `transfer-encoding:
    // chunked`, proxy/forward-headers.ts), so the next hop never sees the whitespace.
    case 14:
      if (equalsLowerAscii(buf, start, "content-length")) {
        parseContentLength(buf, valueStart, valueEnd, facts);
      }
      return;
    case 17:
      if (equalsLowerAscii(buf, start, "transfer-encoding")) {
        parseTransferEncoding(buf, valueStart, valueEnd, facts);
      }
      return;
  }
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
