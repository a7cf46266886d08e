import { describe, expect, it } from "vitest";
import { ChunkedDecoder, type ChunkSink } from "./chunked.js";
import { HttpParseError } from "./errors.js";

const bytes = (s: string): Buffer => Buffer.from(s, "latin1");

/** Collects decoded payload; also proves every reported range lies inside what was fed. */
class Collector implements ChunkSink {
  readonly parts: Buffer[] = [];
  onChunkData(buf: Buffer, start: number, end: number): void {
    expect(start).toBeLessThan(end);
    this.parts.push(Buffer.from(buf.subarray(start, end)));
  }
  get text(): string {
    return Buffer.concat(this.parts).toString("latin1");
  }
}

/**
 * Feeds `wire` in pieces cut at `cuts`; each piece is its own Buffer, as socket reads are.
 * Returns the total bytes consumed and the decoded payload.
 */
function feedPieces(
  decoder: ChunkedDecoder,
  wire: Buffer,
  cuts: number[],
  decode: boolean,
): { consumed: number; payload: string } {
  const sink = decode ? new Collector() : null;
  let consumed = 0;
  let from = 0;
  for (const to of [...cuts, wire.length]) {
    if (decoder.done) break;
    const piece = Buffer.from(wire.subarray(from, to));
    const next = decoder.feed(piece, 0, piece.length, sink);
    if (!decoder.done) expect(next).toBe(piece.length);
    consumed += next;
    from = to;
  }
  return { consumed, payload: sink?.text ?? "" };
}

const valid: [name: string, wire: string, payload: string, trailers: string[]][] = [
  ["last-chunk only", "0\r\n\r\n", "", []],
  ["one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello", []],
  ["two chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world", []],
  ["upper-case hex", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789", []],
  ["lower-case hex", "a\r\n0123456789\r\n0\r\n\r\n", "0123456789", []],
  ["leading zeros", "0005\r\nhello\r\n000\r\n\r\n", "hello", []],
  ["16 hex digits", "0000000000000003\r\nabc\r\n0\r\n\r\n", "abc", []],
  ["extensions", "5;name=value;flag\r\nhello\r\n0;last=1\r\n\r\n", "hello", []],
  ["quoted extension", '5;a="b \\" c;";d=""\r\nhello\r\n0\r\n\r\n', "hello", []],
  ["framing bytes inside data", "7\r\n0\r\n\r\n\r\n\r\n0\r\n\r\n", "0\r\n\r\n\r\n", []],
  ["binary data", "4\r\n\x00\xff\r\x0a\r\n0\r\n\r\n", "\x00\xff\r\n", []],
  [
    "trailers",
    "3\r\nabc\r\n0\r\nX-Trailer: v\r\ny:  w \t\r\n\r\n",
    "abc",
    ["X-Trailer", "v", "y", "w"],
  ],
  ["empty trailer value", "0\r\nX:\r\n\r\n", "", ["X", ""]],
  ["larger chunk", `12C\r\n${"x".repeat(300)}\r\n0\r\n\r\n`, "x".repeat(300), []],
];

describe("ChunkedDecoder accepts", () => {
  it.each(valid)("%s, fed whole, with bytes after the message", (_n, wire, payload, trailers) => {
    const decoder = new ChunkedDecoder();
    const buf = bytes(`${wire}GET / HTTP/1.1\r\n`);
    const sink = new Collector();
    expect(decoder.feed(buf, 0, buf.length, sink)).toBe(wire.length);
    expect(decoder.done).toBe(true);
    expect(sink.text).toBe(payload);
    expect(decoder.trailers).toEqual(trailers);
    // Once done, nothing more is consumed.
    expect(decoder.feed(buf, wire.length, buf.length, sink)).toBe(wire.length);
  });

  it.each(valid)("%s, split at every position", (_n, wire, payload, trailers) => {
    const buf = bytes(wire);
    for (let cut = 0; cut <= buf.length; cut++) {
      const decoder = new ChunkedDecoder();
      expect(feedPieces(decoder, buf, [cut], true)).toEqual({ consumed: buf.length, payload });
      expect(decoder.done).toBe(true);
      expect(decoder.trailers).toEqual(trailers);
    }
  });

  it.each(valid)("%s, byte by byte, in decode and pass-through mode", (_n, wire, payload) => {
    const buf = bytes(wire);
    const cuts = Array.from({ length: buf.length }, (_, i) => i);
    for (const decode of [true, false]) {
      const decoder = new ChunkedDecoder();
      expect(feedPieces(decoder, buf, cuts, decode)).toEqual({
        consumed: buf.length,
        payload: decode ? payload : "",
      });
      expect(decoder.done).toBe(true);
    }
  });

  it.each(valid)("%s: not done before the last byte", (_n, wire) => {
    const buf = bytes(wire);
    const decoder = new ChunkedDecoder();
    expect(decoder.feed(buf, 0, buf.length - 1, null)).toBe(buf.length - 1);
    expect(decoder.done).toBe(false);
    expect(decoder.feed(buf, buf.length - 1, buf.length, null)).toBe(buf.length);
    expect(decoder.done).toBe(true);
  });

  it("feeds a sub-range of a larger buffer", () => {
    const buf = bytes("XXXX3\r\nabc\r\n0\r\n\r\nYYYY");
    const decoder = new ChunkedDecoder();
    const sink = new Collector();
    expect(decoder.feed(buf, 4, buf.length - 4, sink)).toBe(buf.length - 4);
    expect(sink.text).toBe("abc");
  });

  it("reset() readies the decoder for the next message and keeps old trailers intact", () => {
    const decoder = new ChunkedDecoder();
    const first = bytes("0\r\nA: 1\r\n\r\n");
    decoder.feed(first, 0, first.length, null);
    const oldTrailers = decoder.trailers;
    decoder.reset();
    expect(decoder.done).toBe(false);
    expect(decoder.trailers).toEqual([]);
    expect(oldTrailers).toEqual(["A", "1"]);
    const second = bytes("2\r\nhi\r\n0\r\n\r\n");
    const sink = new Collector();
    expect(decoder.feed(second, 0, second.length, sink)).toBe(second.length);
    expect(sink.text).toBe("hi");
  });

  it("accepts the largest safe chunk-size (data still pending)", () => {
    const decoder = new ChunkedDecoder();
    const buf = bytes("1FFFFFFFFFFFFF\r\nabc");
    expect(decoder.feed(buf, 0, buf.length, null)).toBe(buf.length);
    expect(decoder.done).toBe(false);
  });

  it("trailers of exactly maxTrailerBytes are accepted", () => {
    const wire = bytes("0\r\nX: 12345\r\n\r\n"); // trailer section "X: 12345\r\n" = 10 bytes
    const decoder = new ChunkedDecoder(10);
    expect(decoder.feed(wire, 0, wire.length, null)).toBe(wire.length);
    expect(decoder.trailers).toEqual(["X", "12345"]);
  });
});

const invalid: [name: string, wire: string, reason: string, maxTrailerBytes?: number][] = [
  ["empty chunk line", "\r\n", "INVALID_CHUNK_SIZE"],
  ["non-hex size", "x\r\n", "INVALID_CHUNK_SIZE"],
  ["0x prefix", "0x5\r\nhello\r\n", "INVALID_CHUNK_SIZE"],
  ["leading SP", " 5\r\nhello\r\n", "INVALID_CHUNK_SIZE"],
  ["trailing SP", "5 \r\nhello\r\n", "INVALID_CHUNK_SIZE"],
  ["HTAB before extension", "5\t;a\r\nhello\r\n", "INVALID_CHUNK_SIZE"],
  ["SP before extension", "5 ;a\r\nhello\r\n", "INVALID_CHUNK_SIZE"],
  ["negative size", "-5\r\n", "INVALID_CHUNK_SIZE"],
  ["extension without size", ";a\r\n", "INVALID_CHUNK_SIZE"],
  ["SP after semicolon", "5; a\r\nhello\r\n", "INVALID_CHUNK_EXTENSION"],
  ["SP before equals", "5;a =b\r\nhello\r\n", "INVALID_CHUNK_EXTENSION"],
  ["SP after equals", "5;a= b\r\nhello\r\n", "INVALID_CHUNK_EXTENSION"],
  ["empty extension", "5;\r\nhello\r\n", "INVALID_CHUNK_EXTENSION"],
  ["empty extension value", "5;a=\r\nhello\r\n", "INVALID_CHUNK_EXTENSION"],
  ["CR in quoted value", '5;a="b\r\nhello\r\n', "INVALID_CHUNK_EXTENSION"],
  ["text after quoted value", '5;a="b"c\r\nhello\r\n', "INVALID_CHUNK_EXTENSION"],
  ["NUL in extension", "5;a=b\x00\r\nhello\r\n", "INVALID_CHUNK_EXTENSION"],
  ["bad quoted-pair", '5;a="\\\x01"\r\nhello\r\n', "INVALID_CHUNK_EXTENSION"],
  ["bare LF after size", "5\nhello\r\n0\r\n\r\n", "BARE_LF"],
  ["bare LF after extension", "5;a\nhello\r\n", "BARE_LF"],
  ["bare LF in quoted extension", '5;a="\n"\r\n', "BARE_LF"],
  ["bare LF as empty chunk line", "\n", "BARE_LF"],
  ["bare CR after size", "5\rhello\r\n", "BARE_CR"],
  ["CR CR LF after size", "5\r\r\nhello\r\n", "BARE_CR"],
  ["data longer than size", "5\r\nhelloX\r\n0\r\n\r\n", "CHUNK_DATA_OVERRUN"],
  ["missing CRLF after data", "5\r\nhello0\r\n\r\n", "CHUNK_DATA_OVERRUN"],
  ["bare LF after data", "5\r\nhello\n0\r\n\r\n", "BARE_LF"],
  ["bare CR after data", "5\r\nhello\rX", "BARE_CR"],
  ["17 hex digits", "00000000000000001\r\n", "CHUNK_SIZE_OVERFLOW"],
  ["2^53", "20000000000000\r\n", "CHUNK_SIZE_OVERFLOW"],
  ["16 F digits", "FFFFFFFFFFFFFFFF\r\n", "CHUNK_SIZE_OVERFLOW"],
  ["bare LF as final line", "0\r\n\n", "BARE_LF"],
  ["bare CR as final line", "0\r\n\rX", "BARE_CR"],
  ["bare LF ending a trailer", "0\r\nX: a\n\r\n", "BARE_LF"],
  ["bare CR in a trailer", "0\r\nX: a\rb\r\n\r\n", "BARE_CR"],
  ["obs-fold trailer", "0\r\nX: a\r\n b\r\n\r\n", "OBS_FOLD"],
  ["space before colon in trailer", "0\r\nX : a\r\n\r\n", "WHITESPACE_BEFORE_COLON"],
  ["control byte in trailer", "0\r\nX: a\x00\r\n\r\n", "INVALID_FIELD_VALUE"],
  ["trailer without colon", "0\r\nNoColon\r\n\r\n", "MISSING_COLON"],
  ["trailer without name", "0\r\n: v\r\n\r\n", "EMPTY_FIELD_NAME"],
  ["trailers over the limit", "0\r\nX: 123456\r\n\r\n", "TRAILERS_TOO_LARGE", 10],
  [
    "many small trailers over the limit",
    `0\r\n${"A: 1\r\n".repeat(4)}\r\n`,
    "TRAILERS_TOO_LARGE",
    20,
  ],
  ["chunk-ext over 16 KiB", `1;a=${"v".repeat(16 * 1024)}\r\nx\r\n`, "CHUNK_EXTENSION_TOO_LARGE"],
];

describe("ChunkedDecoder rejects", () => {
  function errorOf(action: () => void): HttpParseError {
    try {
      action();
    } catch (err) {
      if (err instanceof HttpParseError) return err;
      throw err;
    }
    throw new Error("no error");
  }

  it.each(invalid)("%s, fed whole", (_n, wire, reason, maxTrailerBytes) => {
    const decoder = new ChunkedDecoder(maxTrailerBytes);
    const buf = bytes(wire);
    expect(errorOf(() => decoder.feed(buf, 0, buf.length, new Collector()))).toMatchObject({
      status: 400,
      reason,
    });
  });

  it.each(invalid)("%s, byte by byte", (_n, wire, reason, maxTrailerBytes) => {
    const decoder = new ChunkedDecoder(maxTrailerBytes);
    const buf = bytes(wire);
    const cuts = Array.from({ length: buf.length }, (_, i) => i);
    expect(errorOf(() => feedPieces(decoder, buf, cuts, false))).toMatchObject({ reason });
  });
});
