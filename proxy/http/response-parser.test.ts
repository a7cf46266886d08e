import { describe, expect, it } from "vitest";
import { HttpParseError } from "./errors.js";
import { DEFAULT_HEAD_LIMITS, type ResponseHead } from "./head.js";
import { parseResponseHead } from "./response-parser.js";

const bytes = (s: string): Buffer => Buffer.from(s, "latin1");

function parse(raw: string, limits = DEFAULT_HEAD_LIMITS): ResponseHead | null {
  const buf = bytes(raw);
  return parseResponseHead(buf, 0, buf.length, limits);
}

function parseError(raw: string, limits = DEFAULT_HEAD_LIMITS): HttpParseError {
  try {
    parse(raw, limits);
  } catch (err) {
    if (err instanceof HttpParseError) return err;
    throw err;
  }
  throw new Error(`accepted: ${JSON.stringify(raw)}`);
}

const res = (line: string, ...fields: string[]): string =>
  `${line}\r\n${fields.map((f) => `${f}\r\n`).join("")}\r\n`;
const ok11 = (...fields: string[]): string => res("HTTP/1.1 200 OK", ...fields);

describe("parseResponseHead accepts", () => {
  const cases: [name: string, raw: string, expected: Partial<ResponseHead>][] = [
    [
      "a plain 200",
      ok11("Content-Length: 2", "Server: x"),
      {
        status: 200,
        reason: "OK",
        minor: 1,
        headers: ["Content-Length", "2", "Server", "x"],
        contentLength: 2,
        chunked: false,
        close: false,
        connectionTokens: [],
      },
    ],
    ["no SP and reason", res("HTTP/1.1 204"), { status: 204, reason: "" }],
    ["SP and empty reason", res("HTTP/1.1 404 "), { status: 404, reason: "" }],
    [
      "reason with SP, HTAB, obs-text",
      res("HTTP/1.1 500 Bad \tth\xefng"),
      { reason: "Bad \tth\u00efng" },
    ],
    ["status 100", res("HTTP/1.1 100 Continue"), { status: 100 }],
    ["status 599", res("HTTP/1.1 599 x"), { status: 599 }],
    ["HTTP/1.0 closes by default", res("HTTP/1.0 200 OK"), { minor: 0, close: true }],
    ["HTTP/1.0 keep-alive", res("HTTP/1.0 200 OK", "Connection: keep-alive"), { close: false }],
    ["Connection: close", ok11("Connection: close"), { close: true }],
    [
      "Connection tokens",
      ok11("Connection: Upgrade, X-A"),
      { connectionTokens: ["upgrade", "x-a"] },
    ],
    [
      "chunked",
      ok11("Transfer-Encoding: chunked"),
      { chunked: true, contentLength: -1, close: false },
    ],
    ["gzip, chunked", ok11("Transfer-Encoding: gzip, chunked"), { chunked: true }],
    [
      "unknown coding before chunked is relayed",
      ok11("Transfer-Encoding: foo, chunked"),
      { chunked: true },
    ],
    [
      "TE without final chunked is close-delimited",
      ok11("Transfer-Encoding: gzip"),
      { chunked: false, contentLength: -1, close: true },
    ],
    [
      "TE chunked, gzip is close-delimited",
      ok11("Transfer-Encoding: chunked, gzip"),
      { chunked: false, contentLength: -1, close: true },
    ],
    ["no framing fields", ok11(), { contentLength: -1, chunked: false, close: false }],
    ["identical CL list", ok11("Content-Length: 3, 3"), { contentLength: 3 }],
    // The request rule (RFC 9110 §5.6.3 OWS, HTAB included) holds for responses: one scanner.
    ["CL with HTAB OWS", ok11("Content-Length:\t42\t"), { contentLength: 42 }],
    ["TE with HTAB OWS", ok11("Transfer-Encoding:\tchunked\t"), { chunked: true }],
    ["no Host needed, OWS trimmed", ok11("X:  v  "), { headers: ["X", "v"] }],
  ];

  it.each(cases)("%s", (_name, raw, expected) => {
    const head = parse(raw);
    expect(head).toMatchObject(expected);
    expect(head?.headLength).toBe(raw.length);
  });

  it.each(cases)("%s: null for every proper prefix", (_name, raw) => {
    const buf = bytes(raw);
    for (let end = 0; end < buf.length; end++) {
      expect(parseResponseHead(buf, 0, end, DEFAULT_HEAD_LIMITS)).toBeNull();
    }
  });

  it("headLength excludes the body and the next response", () => {
    const head = ok11("Content-Length: 5");
    const buf = bytes(`${head}hello${ok11()}`);
    expect(parseResponseHead(buf, 0, buf.length, DEFAULT_HEAD_LIMITS)?.headLength).toBe(
      head.length,
    );
    expect(
      parseResponseHead(buf, head.length + 5, buf.length, DEFAULT_HEAD_LIMITS)?.headLength,
    ).toBe(ok11().length);
  });
});

describe("parseResponseHead rejects (all with status 400)", () => {
  const cases: [name: string, raw: string, reason: string][] = [
    ["status 099", res("HTTP/1.1 099 x"), "INVALID_STATUS"],
    ["status 600", res("HTTP/1.1 600 x"), "INVALID_STATUS"],
    ["two-digit status", res("HTTP/1.1 20 OK"), "INVALID_STATUS_LINE"],
    ["four-digit status", res("HTTP/1.1 2000 OK"), "INVALID_STATUS_LINE"],
    ["two SPs", res("HTTP/1.1  200 OK"), "INVALID_STATUS_LINE"],
    ["HTTP/2.0", res("HTTP/2.0 200 OK"), "UNSUPPORTED_HTTP_VERSION"],
    ["HTTP/1.2", res("HTTP/1.2 200 OK"), "UNSUPPORTED_HTTP_VERSION"],
    ["HTTP/2 without minor", res("HTTP/2 200 OK"), "INVALID_VERSION"],
    ["lower-case version", res("http/1.1 200 OK"), "INVALID_VERSION"],
    ["leading empty line", `\r\n${ok11()}`, "INVALID_VERSION"],
    ["NUL in reason", res("HTTP/1.1 200 O\x00K"), "INVALID_REASON_PHRASE"],
    ["DEL in reason", res("HTTP/1.1 200 OK\x7f"), "INVALID_REASON_PHRASE"],
    ["bare LF after status line", "HTTP/1.1 200 OK\nX: a\r\n\r\n", "BARE_LF"],
    ["bare LF after status code", "HTTP/1.1 200\nX: a\r\n\r\n", "BARE_LF"],
    ["bare CR in reason", "HTTP/1.1 200 O\rK\r\n\r\n", "BARE_CR"],
    ["bare CR after status code", "HTTP/1.1 200\rX\r\n\r\n", "BARE_CR"],
    ["bare LF in fields", "HTTP/1.1 200 OK\r\nX: a\n\r\n", "BARE_LF"],
    ["obs-fold", ok11("X: a", " b"), "OBS_FOLD"],
    ["space before colon", ok11("Content-Length : 5"), "WHITESPACE_BEFORE_COLON"],
    ["HTAB inside CL", ok11("Content-Length: 4\t2"), "INVALID_CONTENT_LENGTH"],
    ["HTAB inside a TE coding", ok11("Transfer-Encoding: chunked\tx"), "INVALID_TRANSFER_ENCODING"],
    ["CTL in value", ok11("X: \x01"), "INVALID_FIELD_VALUE"],
    [
      "CL and TE",
      ok11("Content-Length: 5", "Transfer-Encoding: chunked"),
      "CONTENT_LENGTH_WITH_TRANSFER_ENCODING",
    ],
    [
      "TE in HTTP/1.0",
      res("HTTP/1.0 200 OK", "Transfer-Encoding: chunked"),
      "TRANSFER_ENCODING_HTTP10",
    ],
    [
      "chunked twice",
      ok11("Transfer-Encoding: chunked", "Transfer-Encoding: chunked"),
      "DUPLICATE_CHUNKED",
    ],
    ["empty TE element", ok11("Transfer-Encoding: chunked, "), "EMPTY_TRANSFER_CODING"],
    [
      "conflicting CL",
      ok11("Content-Length: 1", "Content-Length: 2"),
      "CONFLICTING_CONTENT_LENGTH",
    ],
    ["bad CL", ok11("Content-Length: 1a"), "INVALID_CONTENT_LENGTH"],
    ["Connection names CL", ok11("Connection: content-length"), "CONNECTION_NAMES_FRAMING_FIELD"],
  ];

  it.each(cases)("%s", (_name, raw, reason) => {
    expect(parseError(raw)).toMatchObject({ status: 400, reason });
  });

  it.each(cases)("%s, fed byte by byte", (_name, raw, reason) => {
    const buf = bytes(raw);
    let error: HttpParseError | undefined;
    for (let end = 1; end <= buf.length && error === undefined; end++) {
      try {
        expect(parseResponseHead(buf, 0, end, DEFAULT_HEAD_LIMITS)).toBeNull();
      } catch (err) {
        error = err as HttpParseError;
      }
    }
    expect(error).toMatchObject({ status: 400, reason });
  });

  it("a head of exactly maxHeadBytes is accepted, one byte more is rejected", () => {
    const raw = ok11("X: 12345");
    expect(parse(raw, { maxHeadBytes: raw.length, maxTargetBytes: 1 })?.headLength).toBe(
      raw.length,
    );
    expect(parseError(raw, { maxHeadBytes: raw.length - 1, maxTargetBytes: 1 })).toMatchObject({
      status: 400,
      reason: "HEAD_TOO_LARGE",
    });
  });

  it("an incomplete head is rejected once maxHeadBytes are buffered", () => {
    const limits = { maxHeadBytes: 30, maxTargetBytes: 1 };
    const buf = bytes(`HTTP/1.1 200 OK\r\nX: ${"v".repeat(50)}`);
    expect(parseResponseHead(buf, 0, 29, limits)).toBeNull();
    expect(() => parseResponseHead(buf, 0, 30, limits)).toThrow(
      expect.objectContaining({ reason: "HEAD_TOO_LARGE" }),
    );
  });
});
