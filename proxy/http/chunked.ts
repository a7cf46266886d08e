/**
 * Resumable decoder for the chunked transfer coding (RFC 9112 §7.1). A state machine that can
 * stop at any byte, so it runs directly on socket reads without buffering chunk data.
 */
import { FieldFacts, scanFieldLine } from "./fields.js";
import { parseError } from "./reasons.js";
import {
  BACKSLASH,
  CR,
  DQUOTE,
  EQUALS,
  FIELD_VALUE,
  HEX_VALUE,
  HTAB,
  LF,
  latin1,
  QDTEXT,
  SEMICOLON,
  SP,
  TCHAR,
} from "./tokens.js";

export interface ChunkSink {
  onChunkData(buf: Buffer, start: number, end: number): void;
}

/** Scratch for the offsets of one trailer line (parsing is synchronous, so one is enough). */
const trailerLine = new FieldFacts();

/** Default bound on the trailer section (field lines with their CRLFs, not the final CRLF). */
const DEFAULT_MAX_TRAILER_BYTES = 64 * 1024;
/**
 * Bound on the chunk-ext bytes of one chunk line. Extensions are parsed and dropped, but an
 * unbounded line still costs CPU per byte (cf. Node's CVE-2024-22019).
 */
const MAX_CHUNK_EXT_BYTES = 16 * 1024;
/** 16 hex digits is 64 bits; more digits can only be padding games or an overflow attempt. */
const MAX_CHUNK_SIZE_DIGITS = 16;

// States. Plain numbers rather than a const enum so the file needs no TS-only emit.
const SIZE_START = 0; // expecting the first HEXDIG of chunk-size
const SIZE = 1; // in chunk-size
const EXT_NAME_START = 2; // after ";"
const EXT_NAME = 3;
const EXT_VALUE_START = 4; // after "="
const EXT_TOKEN = 5;
const EXT_QUOTED = 6;
const EXT_QUOTED_PAIR = 7; // after "\" inside a quoted-string
const EXT_AFTER_QUOTED = 8;
const SIZE_LF = 9; // chunk line's CR seen
const DATA = 10;
const DATA_CR = 11; // chunk-data done, expecting CR
const DATA_LF = 12;
const TRAILER_START = 13; // at the start of a trailer line or the final empty line
const TRAILER_LINE = 14; // inside a trailer field line
const FINAL_LF = 15; // final empty line's CR seen
const DONE = 16;

/**
 * Chunk-line grammar (RFC 9112 §7.1, §7.1.1):
 *   chunk-size [ chunk-ext ] CRLF, chunk-ext = *( ";" token [ "=" ( token / quoted-string ) ] )
 * Stricter than the RFC: no BWS anywhere in the chunk line (the RFC allows it around ";" and
 * "="). Whitespace there is the classic place where parsers disagree on where the size ends,
 * and no real sender emits it; Node's parser rejects it too.
 */
export class ChunkedDecoder {
  readonly #maxTrailerBytes: number;
  #state = SIZE_START;
  /** chunk-size being read, then the chunk-data bytes still expected. */
  #size = 0;
  #sizeDigits = 0;
  #extBytes = 0;
  #trailerBytes = 0;
  /** The trailer line being assembled; trailer lines may be split across reads. */
  #line: Buffer | null = null;
  #lineLength = 0;
  #trailers: string[] = [];

  constructor(maxTrailerBytes: number = DEFAULT_MAX_TRAILER_BYTES) {
    this.#maxTrailerBytes = maxTrailerBytes;
  }

  /** Ready for a new message. */
  reset(): void {
    this.#state = SIZE_START;
    this.#size = 0;
    this.#sizeDigits = 0;
    this.#extBytes = 0;
    this.#trailerBytes = 0;
    this.#lineLength = 0;
    // The previous message's reader may still hold the old array.
    if (this.#trailers.length !== 0) this.#trailers = [];
  }

  get done(): boolean {
    return this.#state === DONE;
  }

  /** Raw trailer field lines seen (without the final empty line): flat [name, value, ...]. */
  get trailers(): string[] {
    return this.#trailers;
  }

  /**
   * Advances over buf[start..end). Returns the index just past the last byte consumed: `end`,
   * unless the message ends inside, in which case it is just past the final CRLF and `done`
   * becomes true. With a sink, chunk payload ranges are reported to it (decode mode); without,
   * the caller forwards buf[start..returned) unchanged (pass-through mode). Throws
   * HttpParseError(400) on malformed framing; the decoder is then unusable until reset().
   */
  feed(buf: Buffer, start: number, end: number, sink: ChunkSink | null): number {
    let state = this.#state;
    if (state === DONE) return start;
    let p = start;
    while (p < end) {
      switch (state) {
        case DATA: {
          const available = end - p;
          const n = Math.min(this.#size, available);
          if (sink !== null) sink.onChunkData(buf, p, p + n);
          p += n;
          this.#size -= n;
          if (this.#size === 0) state = DATA_CR;
          break;
        }
        case SIZE_START: {
          const c = buf[p]!;
          const v = HEX_VALUE[c]!;
          if (v < 0) throw parseError(400, c === LF ? "BARE_LF" : "INVALID_CHUNK_SIZE");
          this.#size = v;
          this.#sizeDigits = 1;
          this.#extBytes = 0;
          state = SIZE;
          p++;
          break;
        }
        case SIZE: {
          const c = buf[p]!;
          const v = HEX_VALUE[c]!;
          if (v >= 0) {
            if (++this.#sizeDigits > MAX_CHUNK_SIZE_DIGITS) {
              throw parseError(400, "CHUNK_SIZE_OVERFLOW");
            }
            // Checked every digit, so #size * 16 never starts from an inexact value.
            this.#size = this.#size * 16 + v;
            if (this.#size > Number.MAX_SAFE_INTEGER) throw parseError(400, "CHUNK_SIZE_OVERFLOW");
          } else if (c === CR) {
            state = SIZE_LF;
          } else if (c === SEMICOLON) {
            state = EXT_NAME_START;
          } else {
            throw parseError(400, c === LF ? "BARE_LF" : "INVALID_CHUNK_SIZE");
          }
          p++;
          break;
        }
        case SIZE_LF:
          if (buf[p] !== LF) throw parseError(400, "BARE_CR");
          p++;
          state = this.#size === 0 ? TRAILER_START : DATA;
          break;
        case DATA_CR: {
          const c = buf[p]!;
          if (c !== CR) throw parseError(400, c === LF ? "BARE_LF" : "CHUNK_DATA_OVERRUN");
          state = DATA_LF;
          p++;
          break;
        }
        case DATA_LF:
          if (buf[p] !== LF) throw parseError(400, "BARE_CR");
          state = SIZE_START;
          p++;
          break;
        case TRAILER_START: {
          const c = buf[p]!;
          if (c === CR) {
            state = FINAL_LF;
            p++;
          } else if (c === LF) {
            throw parseError(400, "BARE_LF");
          } else if (c === SP || c === HTAB) {
            throw parseError(400, "OBS_FOLD");
          } else {
            this.#lineLength = 0;
            state = TRAILER_LINE;
          }
          break;
        }
        case TRAILER_LINE:
          p = this.#readTrailerLine(buf, p, end);
          if (this.#lineLength === 0) state = TRAILER_START;
          break;
        case FINAL_LF:
          if (buf[p] !== LF) throw parseError(400, "BARE_CR");
          this.#state = DONE;
          return p + 1;
        default:
          // The chunk-ext states: one byte each, checked against the grammar above.
          if (++this.#extBytes > MAX_CHUNK_EXT_BYTES) {
            throw parseError(400, "CHUNK_EXTENSION_TOO_LARGE");
          }
          state = extensionStep(state, buf[p]!);
          p++;
      }
    }
    this.#state = state;
    return p;
  }

  /**
   * Copies trailer-line bytes up to and including the LF into #line, bounded by the trailer
   * limit; on the LF parses the line and sets #lineLength back to 0. Returns the next index.
   */
  #readTrailerLine(buf: Buffer, p: number, end: number): number {
    const lf = buf.indexOf(LF, p);
    const stop = lf === -1 || lf >= end ? end : lf + 1;
    const n = stop - p;
    this.#trailerBytes += n;
    if (this.#trailerBytes > this.#maxTrailerBytes) throw parseError(400, "TRAILERS_TOO_LARGE");
    let line = this.#line;
    if (line === null || line.length < this.#lineLength + n) {
      const grown = Buffer.allocUnsafe(Math.max(256, (this.#lineLength + n) * 2));
      if (line !== null) line.copy(grown, 0, 0, this.#lineLength);
      line = grown;
      this.#line = grown;
    }
    buf.copy(line, this.#lineLength, p, stop);
    this.#lineLength += n;
    if (lf === -1 || lf >= end) return stop;
    const length = this.#lineLength;
    this.#lineLength = 0;
    // Trailer fields are validated like header fields (RFC 9112 §7.1.2) but never merged into
    // the head, so they cannot change framing or routing.
    trailerLine.reset();
    scanFieldLine(line, 0, length, trailerLine, false);
    const o = trailerLine.offsets;
    this.#trailers.push(latin1(line, o[0]!, o[1]!), latin1(line, o[2]!, o[3]!));
    return stop;
  }
}

/** One byte of chunk-ext; returns the next state or throws. */
function extensionStep(state: number, c: number): number {
  switch (state) {
    case EXT_NAME_START:
      if (TCHAR[c] === 1) return EXT_NAME;
      break;
    case EXT_NAME:
      if (TCHAR[c] === 1) return EXT_NAME;
      if (c === EQUALS) return EXT_VALUE_START;
      if (c === SEMICOLON) return EXT_NAME_START;
      if (c === CR) return SIZE_LF;
      break;
    case EXT_VALUE_START:
      if (TCHAR[c] === 1) return EXT_TOKEN;
      if (c === DQUOTE) return EXT_QUOTED;
      break;
    case EXT_TOKEN:
      if (TCHAR[c] === 1) return EXT_TOKEN;
      if (c === SEMICOLON) return EXT_NAME_START;
      if (c === CR) return SIZE_LF;
      break;
    case EXT_QUOTED:
      if (QDTEXT[c] === 1) return EXT_QUOTED;
      if (c === DQUOTE) return EXT_AFTER_QUOTED;
      if (c === BACKSLASH) return EXT_QUOTED_PAIR;
      break;
    case EXT_QUOTED_PAIR:
      // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ) (RFC 9110 §5.6.4)
      if (FIELD_VALUE[c] === 1) return EXT_QUOTED;
      break;
    case EXT_AFTER_QUOTED:
      if (c === SEMICOLON) return EXT_NAME_START;
      if (c === CR) return SIZE_LF;
      break;
  }
  throw parseError(400, c === LF ? "BARE_LF" : "INVALID_CHUNK_EXTENSION");
}
