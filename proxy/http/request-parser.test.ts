import { describe, expect, it } from "vitest";
import { HttpParseError } from "./errors.js";
import { PRESCAN_BYTES } from "./fields.js";
import { DEFAULT_HEAD_LIMITS, type HeadLimits, type RequestHead } from "./head.js";
import { PARSE_REASONS } from "./reasons.js";
import { parseRequestHead } from "./request-parser.js";

const bytes = (s: string): Buffer => Buffer.from(s, "latin1");

function parse(raw: string | Buffer, limits: HeadLimits = DEFAULT_HEAD_LIMITS): RequestHead | null {
  const buf = typeof raw === "string" ? bytes(raw) : raw;
  return parseRequestHead(buf, 0, buf.length, limits);
}

function parseError(
  raw: string | Buffer,
  limits: HeadLimits = DEFAULT_HEAD_LIMITS,
): HttpParseError {
  try {
    parse(raw, limits);
  } catch (err) {
    if (err instanceof HttpParseError) return err;
    throw err;
  }
  throw new Error(`accepted: ${JSON.stringify(raw.toString())}`);
}

/** A request with the given field lines (CRLF added), ended by the empty line. */
const req = (line: string, ...fields: string[]): string =>
  `${line}\r\n${fields.map((f) => `${f}\r\n`).join("")}\r\n`;
const get11 = (...fields: string[]): string => req("GET / HTTP/1.1", "Host: a", ...fields);
const post11 = (...fields: string[]): string => req("POST /p HTTP/1.1", "Host: a", ...fields);

describe("parseRequestHead rejects", () => {
  const cases: [name: string, raw: string, status: number, reason: string][] = [
    // request-line (RFC 9112 §3)
    ["two SPs after method", req("GET  / HTTP/1.1", "Host: a"), 400, "REQUEST_LINE_WHITESPACE"],
    ["two SPs after target", req("GET /  HTTP/1.1", "Host: a"), 400, "REQUEST_LINE_WHITESPACE"],
    ["leading SP", req(" GET / HTTP/1.1", "Host: a"), 400, "REQUEST_LINE_WHITESPACE"],
    ["HTAB separator", req("GET\t/ HTTP/1.1", "Host: a"), 400, "REQUEST_LINE_WHITESPACE"],
    ["non-token method", req("G(T / HTTP/1.1", "Host: a"), 400, "INVALID_METHOD"],
    ["method with obs-text", req("G\xc9T / HTTP/1.1", "Host: a"), 400, "INVALID_METHOD"],
    [
      "trailing SP after version",
      req("GET / HTTP/1.1 ", "Host: a"),
      400,
      "REQUEST_LINE_WHITESPACE",
    ],
    ["HTAB after version", req("GET / HTTP/1.1\t", "Host: a"), 400, "REQUEST_LINE_WHITESPACE"],
    ["HTTP/0.9 request-line", "GET /\r\n\r\n", 400, "INVALID_REQUEST_LINE"],
    ["method only", "GET\r\n\r\n", 400, "INVALID_REQUEST_LINE"],
    ["lower-case HTTP name", req("GET / http/1.1", "Host: a"), 400, "INVALID_VERSION"],
    ["HTTP/2.0", req("GET / HTTP/2.0", "Host: a"), 505, "UNSUPPORTED_HTTP_VERSION"],
    ["HTTP/1.2", req("GET / HTTP/1.2", "Host: a"), 505, "UNSUPPORTED_HTTP_VERSION"],
    ["HTTP/0.9 version", req("GET / HTTP/0.9", "Host: a"), 505, "UNSUPPORTED_HTTP_VERSION"],
    ["HTTP/1.10", req("GET / HTTP/1.10", "Host: a"), 400, "INVALID_VERSION"],
    ["HTTP/1", req("GET / HTTP/1", "Host: a"), 400, "INVALID_VERSION"],
    ["HTTP/1.x", req("GET / HTTP/1.x", "Host: a"), 400, "INVALID_VERSION"],
    ["NUL in target", req("GET /a\x00b HTTP/1.1", "Host: a"), 400, "INVALID_TARGET"],
    ["DEL in target", req("GET /\x7f HTTP/1.1", "Host: a"), 400, "INVALID_TARGET"],
    ["obs-text in target", req("GET /\xe9 HTTP/1.1", "Host: a"), 400, "INVALID_TARGET"],
    ["HTAB in target", req("GET /a\tb HTTP/1.1", "Host: a"), 400, "REQUEST_LINE_WHITESPACE"],
    ["SP in target", req("GET /a b HTTP/1.1", "Host: a"), 400, "INVALID_VERSION"],
    ["TLS ClientHello on a plain port", "\x16\x03\x01\x02\x00\x01", 400, "INVALID_METHOD"],
    // line endings (RFC 9112 §2.2)
    ["bare LF after request-line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400, "BARE_LF"],
    ["bare LF between fields", "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400, "BARE_LF"],
    ["bare LF empty line", "GET / HTTP/1.1\r\nHost: a\r\n\n", 400, "BARE_LF"],
    ["all bare LF", "GET / HTTP/1.1\nHost: a\n\n", 400, "BARE_LF"],
    ["bare LF before request-line", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "BARE_LF"],
    ["bare LF in method position", "GET\n", 400, "BARE_LF"],
    ["bare CR after request-line", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400, "BARE_CR"],
    ["bare CR before request-line", "\r\rGET / HTTP/1.1\r\n", 400, "BARE_CR"],
    ["bare CR inside value", get11("X: a\rb"), 400, "BARE_CR"],
    ["CR CR LF line end", get11("X: a\r"), 400, "BARE_CR"],
    ["bare CR in field name", get11("X\rY: a"), 400, "BARE_CR"],
    ["bare CR in method", "GE\rT / HTTP/1.1\r\n\r\n", 400, "BARE_CR"],
    // field lines (RFC 9112 §5)
    ["obs-fold with SP", get11("X: a", " b"), 400, "OBS_FOLD"],
    ["obs-fold with HTAB", get11("X: a", "\tb"), 400, "OBS_FOLD"],
    ["whitespace before first field", req("GET / HTTP/1.1", " Host: a"), 400, "OBS_FOLD"],
    ["SP before colon", req("GET / HTTP/1.1", "Host : a"), 400, "WHITESPACE_BEFORE_COLON"],
    ["HTAB before colon", get11("X\t: a"), 400, "WHITESPACE_BEFORE_COLON"],
    ["SP inside name", get11("X A: a"), 400, "WHITESPACE_BEFORE_COLON"],
    ["empty name", get11(": a"), 400, "EMPTY_FIELD_NAME"],
    ["non-token name", get11("X{A}: a"), 400, "INVALID_FIELD_NAME"],
    ["obs-text in name", get11("X\xe9: a"), 400, "INVALID_FIELD_NAME"],
    ["NUL in name", get11("X\x00: a"), 400, "INVALID_FIELD_NAME"],
    ["no colon", get11("NoColon"), 400, "MISSING_COLON"],
    ["NUL in value", get11("X: a\x00b"), 400, "INVALID_FIELD_VALUE"],
    ["SOH in value", get11("X: \x01"), 400, "INVALID_FIELD_VALUE"],
    ["ESC in value", get11("X: a\x1b[0m"), 400, "INVALID_FIELD_VALUE"],
    ["DEL in value", get11("X: a\x7f"), 400, "INVALID_FIELD_VALUE"],
    ["VT in value", get11("X: a\x0bb"), 400, "INVALID_FIELD_VALUE"],
    // Content-Length (RFC 9110 §8.6, RFC 9112 §6.3)
    ["CL negative", post11("Content-Length: -1"), 400, "INVALID_CONTENT_LENGTH"],
    ["CL plus sign", post11("Content-Length: +5"), 400, "INVALID_CONTENT_LENGTH"],
    ["CL hex", post11("Content-Length: 0x5"), 400, "INVALID_CONTENT_LENGTH"],
    ["CL inner space", post11("Content-Length: 5 5"), 400, "INVALID_CONTENT_LENGTH"],
    ["CL empty", post11("Content-Length:"), 400, "INVALID_CONTENT_LENGTH"],
    ["CL only spaces", post11("Content-Length:   "), 400, "INVALID_CONTENT_LENGTH"],
    ["CL trailing comma", post11("Content-Length: 5,"), 400, "INVALID_CONTENT_LENGTH"],
    ["CL leading comma", post11("Content-Length: ,5"), 400, "INVALID_CONTENT_LENGTH"],
    ["CL double comma", post11("Content-Length: 5,,5"), 400, "INVALID_CONTENT_LENGTH"],
    ["CL exponent", post11("Content-Length: 1e3"), 400, "INVALID_CONTENT_LENGTH"],
    ["CL decimal", post11("Content-Length: 5.0"), 400, "INVALID_CONTENT_LENGTH"],
    ["CL semicolon", post11("Content-Length: 5;"), 400, "INVALID_CONTENT_LENGTH"],
    ["CL 16 digits", post11("Content-Length: 1000000000000000"), 400, "CONTENT_LENGTH_TOO_LARGE"],
    [
      "CL 16 digits zero-padded",
      post11("Content-Length: 0000000000000005"),
      400,
      "CONTENT_LENGTH_TOO_LARGE",
    ],
    ["CL differing list", post11("Content-Length: 5, 6"), 400, "CONFLICTING_CONTENT_LENGTH"],
    [
      "CL differing fields",
      post11("Content-Length: 5", "Content-Length: 6"),
      400,
      "CONFLICTING_CONTENT_LENGTH",
    ],
    [
      "CL 5 vs 05",
      post11("Content-Length: 5", "content-length: 05"),
      400,
      "CONFLICTING_CONTENT_LENGTH",
    ],
    // Transfer-Encoding (RFC 9112 §6.1, §6.3)
    [
      "CL then TE",
      post11("Content-Length: 5", "Transfer-Encoding: chunked"),
      400,
      "CONTENT_LENGTH_WITH_TRANSFER_ENCODING",
    ],
    [
      "TE then CL",
      post11("Transfer-Encoding: chunked", "Content-Length: 5"),
      400,
      "CONTENT_LENGTH_WITH_TRANSFER_ENCODING",
    ],
    [
      "CL 0 with TE",
      post11("Content-Length: 0", "Transfer-Encoding: chunked"),
      400,
      "CONTENT_LENGTH_WITH_TRANSFER_ENCODING",
    ],
    [
      "TE in HTTP/1.0",
      req("POST / HTTP/1.0", "Transfer-Encoding: chunked"),
      400,
      "TRANSFER_ENCODING_HTTP10",
    ],
    ["TE gzip only", post11("Transfer-Encoding: gzip"), 400, "CHUNKED_NOT_FINAL"],
    ["TE chunked then gzip", post11("Transfer-Encoding: chunked, gzip"), 400, "CHUNKED_NOT_FINAL"],
    [
      "TE fields chunked then gzip",
      post11("Transfer-Encoding: chunked", "Transfer-Encoding: gzip"),
      400,
      "CHUNKED_NOT_FINAL",
    ],
    ["TE unknown only", post11("Transfer-Encoding: foo"), 400, "CHUNKED_NOT_FINAL"],
    ["TE chunked twice", post11("Transfer-Encoding: chunked, chunked"), 400, "DUPLICATE_CHUNKED"],
    [
      "TE chunked in two fields",
      post11("Transfer-Encoding: chunked", "Transfer-Encoding: chunked"),
      400,
      "DUPLICATE_CHUNKED",
    ],
    [
      "TE unknown coding",
      post11("Transfer-Encoding: foo, chunked"),
      501,
      "UNKNOWN_TRANSFER_CODING",
    ],
    ["TE identity", post11("Transfer-Encoding: identity, chunked"), 501, "UNKNOWN_TRANSFER_CODING"],
    [
      "TE unknown, chunked's length",
      post11("Transfer-Encoding: chunkex, chunked"),
      501,
      "UNKNOWN_TRANSFER_CODING",
    ],
    [
      "TE unknown, gzip's length",
      post11("Transfer-Encoding: gzap, chunked"),
      501,
      "UNKNOWN_TRANSFER_CODING",
    ],
    ["TE trailing comma", post11("Transfer-Encoding: chunked,"), 400, "EMPTY_TRANSFER_CODING"],
    ["TE leading comma", post11("Transfer-Encoding: , chunked"), 400, "EMPTY_TRANSFER_CODING"],
    ["TE double comma", post11("Transfer-Encoding: gzip,,chunked"), 400, "EMPTY_TRANSFER_CODING"],
    ["TE empty", post11("Transfer-Encoding:"), 400, "EMPTY_TRANSFER_CODING"],
    ["TE parameter", post11("Transfer-Encoding: chunked;q=1"), 400, "INVALID_TRANSFER_ENCODING"],
    ["TE two words", post11("Transfer-Encoding: gzip chunked"), 400, "INVALID_TRANSFER_ENCODING"],
    ["TE quoted", post11('Transfer-Encoding: "chunked"'), 400, "INVALID_TRANSFER_ENCODING"],
    // HTAB is OWS around the framing fields' values, never inside an element (RFC 9110 §5.6.3).
    [
      "TE HTAB inside a coding",
      post11("Transfer-Encoding: chunked\tx"),
      400,
      "INVALID_TRANSFER_ENCODING",
    ],
    [
      "TE HTAB between codings",
      post11("Transfer-Encoding: gzip\tchunked"),
      400,
      "INVALID_TRANSFER_ENCODING",
    ],
    ["TE VT after the value", post11("Transfer-Encoding: chunked\x0b"), 400, "INVALID_FIELD_VALUE"],
    ["CL HTAB inside the digits", post11("Content-Length: 4\t2"), 400, "INVALID_CONTENT_LENGTH"],
    [
      "CL HTAB before a comma-less value",
      post11("Content-Length: 42\t42"),
      400,
      "INVALID_CONTENT_LENGTH",
    ],
    [
      "CL HTAB list differs",
      post11("Content-Length:\t42\t,\t43\t"),
      400,
      "CONFLICTING_CONTENT_LENGTH",
    ],
    ["CL obs-fold with HTAB", post11("Content-Length: 4", "\t2"), 400, "OBS_FOLD"],
    ["CL HTAB before colon", post11("Content-Length\t: 42"), 400, "WHITESPACE_BEFORE_COLON"],
    ["CL FF as whitespace", post11("Content-Length: \x0c42"), 400, "INVALID_FIELD_VALUE"],
    // Host (RFC 9112 §3.2)
    ["no Host in 1.1", req("GET / HTTP/1.1", "X: a"), 400, "MISSING_HOST"],
    ["two Hosts", get11("Host: b"), 400, "MULTIPLE_HOST"],
    ["two identical Hosts", get11("host: a"), 400, "MULTIPLE_HOST"],
    ["two Hosts in 1.0", req("GET / HTTP/1.0", "Host: a", "Host: a"), 400, "MULTIPLE_HOST"],
    ["empty Host", req("GET / HTTP/1.1", "Host:"), 400, "EMPTY_HOST"],
    ["Host with SP", req("GET / HTTP/1.1", "Host: a b"), 400, "INVALID_HOST"],
    ["Host with slash", req("GET / HTTP/1.1", "Host: a/b"), 400, "INVALID_HOST"],
    ["Host with userinfo", req("GET / HTTP/1.1", "Host: u@a"), 400, "INVALID_HOST"],
    ["Host with query", req("GET / HTTP/1.1", "Host: a?b"), 400, "INVALID_HOST"],
    ["Host with fragment", req("GET / HTTP/1.1", "Host: a#b"), 400, "INVALID_HOST"],
    ["Host with backslash", req("GET / HTTP/1.1", "Host: a\\b"), 400, "INVALID_HOST"],
    ["Host with obs-text", req("GET / HTTP/1.1", "Host: \xe9.com"), 400, "INVALID_HOST"],
    ["Host with HTAB", req("GET / HTTP/1.1", "Host: a\tb"), 400, "INVALID_HOST"],
    // Connection (RFC 9110 §7.6.1)
    ["Connection two words", get11("Connection: close x"), 400, "INVALID_CONNECTION"],
    ["Connection semicolon", get11("Connection: a;b"), 400, "INVALID_CONNECTION"],
    ["Connection quoted", get11('Connection: "close"'), 400, "INVALID_CONNECTION"],
    [
      "Connection names CL",
      get11("Connection: Content-Length"),
      400,
      "CONNECTION_NAMES_FRAMING_FIELD",
    ],
    [
      "Connection names TE",
      get11("Connection: keep-alive, transfer-encoding"),
      400,
      "CONNECTION_NAMES_FRAMING_FIELD",
    ],
    ["Connection names Host", get11("Connection: HOST"), 400, "CONNECTION_NAMES_FRAMING_FIELD"],
  ];

  it.each(cases)("%s", (_name, raw, status, reason) => {
    const err = parseError(raw);
    expect({ status: err.status, reason: err.reason }).toEqual({ status, reason });
    expect(PARSE_REASONS).toHaveProperty(reason);
  });

  it.each(cases)("%s, also when the head is fed byte by byte", (_name, raw, status, reason) => {
    // Errors must surface no later than the full head and never as a different verdict.
    const buf = bytes(raw);
    let error: HttpParseError | undefined;
    for (let end = 1; end <= buf.length && error === undefined; end++) {
      try {
        expect(parseRequestHead(buf, 0, end, DEFAULT_HEAD_LIMITS)).toBeNull();
      } catch (err) {
        error = err as HttpParseError;
      }
    }
    expect(error).toBeInstanceOf(HttpParseError);
    expect({ status: error?.status, reason: error?.reason }).toEqual({ status, reason });
  });
});

describe("parseRequestHead accepts", () => {
  const cases: [name: string, raw: string, expected: Partial<RequestHead>][] = [
    [
      "a plain GET",
      req("GET /a?b=c HTTP/1.1", "Host: example.com", "Accept: */*"),
      {
        method: "GET",
        target: "/a?b=c",
        minor: 1,
        host: "example.com",
        headers: ["Host", "example.com", "Accept", "*/*"],
        contentLength: -1,
        chunked: false,
        close: false,
        connectionTokens: [],
        upgrade: undefined,
        expectContinue: false,
      },
    ],
    ["HTTP/1.0 without Host", req("GET / HTTP/1.0"), { minor: 0, host: undefined, close: true }],
    ["HTTP/1.0 keep-alive", req("GET / HTTP/1.0", "Connection: Keep-Alive"), { close: false }],
    [
      "HTTP/1.0 keep-alive, close",
      req("GET / HTTP/1.0", "Connection: keep-alive, close"),
      { close: true },
    ],
    ["HTTP/1.1 close", get11("Connection: close"), { close: true, connectionTokens: [] }],
    ["HTTP/1.1 CLOSE upper-case", get11("Connection: CLOSE"), { close: true }],
    [
      "close wins over keep-alive",
      get11("Connection: keep-alive", "Connection: close"),
      { close: true },
    ],
    [
      "empty Connection elements",
      get11("Connection: , ,close ,"),
      { close: true, connectionTokens: [] },
    ],
    ["empty Connection", get11("Connection:"), { close: false, connectionTokens: [] }],
    [
      "other Connection tokens lower-cased",
      get11("Connection: X-Foo,  TE", "Connection: keep-alive"),
      { connectionTokens: ["x-foo", "te"], close: false },
    ],
    [
      "Upgrade with Connection: upgrade",
      get11("Connection: Upgrade", "Upgrade: websocket"),
      { upgrade: "websocket", connectionTokens: ["upgrade"] },
    ],
    ["Upgrade without Connection: upgrade", get11("Upgrade: websocket"), { upgrade: undefined }],
    [
      "several Upgrade fields combine",
      get11("Upgrade: h2c", "Connection: upgrade", "Upgrade: websocket"),
      { upgrade: "h2c, websocket" },
    ],
    [
      "Expect: 100-continue",
      post11("Expect: 100-continue", "Content-Length: 1"),
      { expectContinue: true },
    ],
    ["Expect case-insensitive", post11("expect: 100-Continue"), { expectContinue: true }],
    ["Expect something else", post11("Expect: 100-continue-please"), { expectContinue: false }],
    ["Expect other", post11("Expect: foo"), { expectContinue: false }],
    ["CL 5", post11("Content-Length: 5"), { contentLength: 5, chunked: false }],
    ["CL 0", post11("Content-Length: 0"), { contentLength: 0 }],
    ["CL with OWS", post11("Content-Length:   5  "), { contentLength: 5 }],
    ["CL identical list", post11("Content-Length: 5, 5,5"), { contentLength: 5 }],
    ["CL identical fields", post11("Content-Length: 7", "content-length: 7"), { contentLength: 7 }],
    ["CL leading zeros", post11("Content-Length: 005"), { contentLength: 5 }],
    ["CL 15 digits", post11("Content-Length: 999999999999999"), { contentLength: 999999999999999 }],
    ["TE chunked", post11("Transfer-Encoding: chunked"), { chunked: true, contentLength: -1 }],
    ["TE Chunked mixed case", post11("Transfer-Encoding: ChUnKeD"), { chunked: true }],
    ["TE gzip, chunked", post11("Transfer-Encoding: gzip, chunked"), { chunked: true }],
    ["TE with OWS", post11("Transfer-Encoding:  deflate ,  CHUNKED  "), { chunked: true }],
    // RFC 9110 §5.6.3: OWS is SP or HTAB, in the framing fields as in any other (issue 14).
    ["CL HTAB OWS", post11("Content-Length:\t42\t"), { contentLength: 42 }],
    ["CL mixed OWS", post11("Content-Length: \t 42 \t "), { contentLength: 42 }],
    ["CL HTAB around list commas", post11("Content-Length: 42\t,\t42"), { contentLength: 42 }],
    ["TE HTAB OWS", post11("Transfer-Encoding:\tchunked\t"), { chunked: true }],
    ["TE HTAB around commas", post11("Transfer-Encoding: gzip\t,\tchunked"), { chunked: true }],

    [
      "TE all known codings",
      post11("Transfer-Encoding: x-gzip,compress,x-compress,deflate,gzip,chunked"),
      { chunked: true },
    ],
    [
      "TE across fields",
      post11("Transfer-Encoding: gzip", "transfer-encoding: chunked"),
      { chunked: true },
    ],
    [
      "Host with port",
      req("GET / HTTP/1.1", "Host: example.com:8080"),
      { host: "example.com:8080" },
    ],
    ["Host IPv6 literal", req("GET / HTTP/1.1", "Host: [::1]:80"), { host: "[::1]:80" }],
    [
      "Host reg-name chars",
      req("GET / HTTP/1.1", "Host: a-b.c_d~e%41!$&'()*+,;="),
      { host: "a-b.c_d~e%41!$&'()*+,;=" },
    ],
    ["Host OWS trimmed", req("GET / HTTP/1.1", "Host:  a.b  "), { host: "a.b" }],
    ["asterisk-form", req("OPTIONS * HTTP/1.1", "Host: a"), { method: "OPTIONS", target: "*" }],
    ["absolute-form", req("GET http://a/b?c HTTP/1.1", "Host: a"), { target: "http://a/b?c" }],
    [
      "authority-form",
      req("CONNECT a:443 HTTP/1.1", "Host: a:443"),
      { method: "CONNECT", target: "a:443" },
    ],
    ["extension method", req("M-SEARCH * HTTP/1.1", "Host: a"), { method: "M-SEARCH" }],
    ["lower-case method kept", req("get / HTTP/1.1", "Host: a"), { method: "get" }],
    ["common methods", req("DELETE /x HTTP/1.1", "Host: a"), { method: "DELETE" }],
    [
      "target with all VCHAR",
      req('GET /"<>{}|\\^`[] HTTP/1.1', "Host: a"),
      { target: '/"<>{}|\\^`[]' },
    ],
    [
      "values trimmed, inner whitespace kept, names keep case",
      get11("X-Mixed-Case:   a \t b  ", "x-empty:", "x-tab:\tv\t"),
      { headers: ["Host", "a", "X-Mixed-Case", "a \t b", "x-empty", "", "x-tab", "v"] },
    ],
    ["obs-text value as latin1", get11("X: caf\xe9"), { headers: ["Host", "a", "X", "caf\u00e9"] }],
    ["value with colons", get11("X: a:b: c"), { headers: ["Host", "a", "X", "a:b: c"] }],
    [
      "token chars in name",
      get11("!#$%&'*+-.^_`|~09Az: v"),
      { headers: ["Host", "a", "!#$%&'*+-.^_`|~09Az", "v"] },
    ],
  ];

  it.each(cases)("%s", (_name, raw, expected) => {
    const head = parse(raw);
    expect(head).not.toBeNull();
    expect(head).toMatchObject(expected);
    expect(head?.headLength).toBe(bytes(raw).length);
  });

  it.each(cases)("%s: null for every proper prefix", (_name, raw) => {
    const buf = bytes(raw);
    for (let end = 0; end < buf.length; end++) {
      expect(parseRequestHead(buf, 0, end, DEFAULT_HEAD_LIMITS)).toBeNull();
    }
  });
});

describe("parseRequestHead framing of the bytes around the head", () => {
  it("headLength stops at the empty line with a body and a pipelined request after it", () => {
    const head = req("POST /p HTTP/1.1", "Host: a", "Content-Length: 5");
    const buf = bytes(`${head}hello${get11()}`);
    const parsed = parse(buf);
    expect(parsed?.headLength).toBe(head.length);
    expect(parsed?.contentLength).toBe(5);
    const next = parseRequestHead(buf, head.length + 5, buf.length, DEFAULT_HEAD_LIMITS);
    expect(next?.method).toBe("GET");
    expect(next?.headLength).toBe(get11().length);
  });

  it("headLength of a body-less head when the next request's bytes follow", () => {
    const buf = bytes(`${get11()}${get11("X: 2")}`);
    expect(parse(buf)?.headers).toEqual(["Host", "a"]);
    expect(parse(buf)?.headLength).toBe(get11().length);
  });

  it("parses from a non-zero start and ignores bytes at or after end", () => {
    const raw = get11("X: y");
    const buf = bytes(`garbage\n\0${raw}\nmore\0garbage`);
    const start = "garbage\n\0".length;
    const head = parseRequestHead(buf, start, start + raw.length, DEFAULT_HEAD_LIMITS);
    expect(head?.headers).toEqual(["Host", "a", "X", "y"]);
    expect(head?.headLength).toBe(raw.length);
    // Cut one byte short: the bytes beyond `end` (a "\n") must not complete or break it.
    expect(parseRequestHead(buf, start, start + raw.length - 1, DEFAULT_HEAD_LIMITS)).toBeNull();
  });

  it("ignores a stale empty line past end", () => {
    const buf = bytes("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    expect(parseRequestHead(buf, 0, buf.length - 2, DEFAULT_HEAD_LIMITS)).toBeNull();
  });

  it("skips leading empty lines and counts them in headLength", () => {
    const raw = `\r\n\r\n${get11()}`;
    const head = parse(raw);
    expect(head?.method).toBe("GET");
    expect(head?.headLength).toBe(raw.length);
    expect(parse("\r\n")).toBeNull();
    expect(parse("\r")).toBeNull();
  });

  it("returns null for a partial head, then the full head when the rest arrives", () => {
    const raw = post11("Transfer-Encoding: chunked");
    expect(parse(raw.slice(0, 30))).toBeNull();
    expect(parse(raw)?.chunked).toBe(true);
  });
});

describe("parseRequestHead limits", () => {
  const raw = get11("X-Pad: 0123456789");
  const size = bytes(raw).length;

  it.each([
    ["head of exactly maxHeadBytes is accepted", size, true],
    ["head of maxHeadBytes + 1 is 431", size - 1, false],
  ] as const)("%s", (_name, maxHeadBytes, ok) => {
    const limits = { maxHeadBytes, maxTargetBytes: 100 };
    if (ok) expect(parse(raw, limits)?.headLength).toBe(size);
    else expect(parseError(raw, limits)).toMatchObject({ status: 431, reason: "HEAD_TOO_LARGE" });
  });

  it("an incomplete head is 431 once maxHeadBytes are buffered, null one byte before", () => {
    const limits = { maxHeadBytes: 40, maxTargetBytes: 100 };
    const partial = bytes(`GET / HTTP/1.1\r\nHost: a\r\nX-Long: ${"v".repeat(100)}`);
    expect(parseRequestHead(partial, 0, 39, limits)).toBeNull();
    expect(() => parseRequestHead(partial, 0, 40, limits)).toThrow(
      expect.objectContaining({ status: 431, reason: "HEAD_TOO_LARGE" }),
    );
  });

  it("leading empty lines count toward maxHeadBytes", () => {
    const fits = { maxHeadBytes: size + 2, maxTargetBytes: 100 };
    expect(parse(`\r\n${raw}`, fits)?.headLength).toBe(size + 2);
    const tooSmall = { maxHeadBytes: size + 1, maxTargetBytes: 100 };
    expect(parseError(`\r\n${raw}`, tooSmall)).toMatchObject({ status: 431 });
  });

  const target = (n: number): string => `/${"t".repeat(n - 1)}`;
  const targetLimits = { maxHeadBytes: 64 * 1024, maxTargetBytes: 50 };

  it("target of exactly maxTargetBytes is accepted", () => {
    expect(parse(req(`GET ${target(50)} HTTP/1.1`, "Host: a"), targetLimits)?.target).toBe(
      target(50),
    );
  });

  it("target of maxTargetBytes + 1 is 414", () => {
    expect(parseError(req(`GET ${target(51)} HTTP/1.1`, "Host: a"), targetLimits)).toMatchObject({
      status: 414,
      reason: "URI_TOO_LONG",
    });
  });

  it("414 as soon as maxTargetBytes + 1 target bytes are buffered, before the line ends", () => {
    expect(parse(`GET ${target(50)}`, targetLimits)).toBeNull();
    expect(parseError(`GET ${target(51)}`, targetLimits)).toMatchObject({ status: 414 });
  });

  it("414 takes precedence over 431 for a long target", () => {
    const limits = { maxHeadBytes: 60, maxTargetBytes: 50 };
    expect(parseError(`GET ${target(200)}`, limits)).toMatchObject({ status: 414 });
  });
});

describe("parseRequestHead on heads larger than PRESCAN_BYTES", () => {
  const pad = Array.from({ length: 60 }, (_, i) => `X-Pad-${i}: ${"v".repeat(50)}`);
  const big = get11(...pad);

  it("parses a large head and returns null for every proper prefix", () => {
    expect(big.length).toBeGreaterThan(PRESCAN_BYTES);
    const buf = bytes(big);
    expect(parse(buf)?.headers.length).toBe(2 * 61);
    for (let end = 0; end < buf.length; end++) {
      expect(parseRequestHead(buf, 0, end, DEFAULT_HEAD_LIMITS)).toBeNull();
    }
  });

  it("reports a field error of a large head once its empty line arrives", () => {
    const raw = get11(...pad.slice(0, 30), "Bad Name: x", ...pad.slice(30));
    const buf = bytes(raw);
    // Past PRESCAN_BYTES and still incomplete: nothing to report yet (documented).
    expect(parseRequestHead(buf, 0, buf.length - 1, DEFAULT_HEAD_LIMITS)).toBeNull();
    expect(parseError(raw)).toMatchObject({ reason: "WHITESPACE_BEFORE_COLON" });
  });

  it("reports a large bare-LF-terminated head without waiting for 431", () => {
    expect(parseError(`${big.slice(0, -2)}\n`)).toMatchObject({ reason: "BARE_LF" });
  });

  it("never examines bytes past start + maxHeadBytes", () => {
    const raw = `GET / HTTP/1.1\r\nHost: a\r\nX: ${"v".repeat(100)}\0\r\n\r\n`;
    const limits = { maxHeadBytes: raw.indexOf("\0"), maxTargetBytes: 100 };
    expect(parseError(raw, limits)).toMatchObject({ status: 431 });
    expect(parseError(raw, { ...limits, maxHeadBytes: raw.length })).toMatchObject({
      reason: "INVALID_FIELD_VALUE",
    });
  });
});

describe("PARSE_REASONS", () => {
  it("every reason is UPPER_SNAKE and unique by construction", () => {
    for (const reason of Object.keys(PARSE_REASONS)) expect(reason).toMatch(/^[A-Z0-9_]+$/);
    expect(new Set(Object.values(PARSE_REASONS)).size).toBe(Object.keys(PARSE_REASONS).length);
  });
});
