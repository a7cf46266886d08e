import { describe, expect, it } from "vitest";
import {
  codingsBeforeChunked,
  FRAMING_CHUNKED,
  FRAMING_LENGTH,
  type RequestHeadOptions,
  type SerializedRequestHead,
  serializeRequestHead,
  serializeResponseHead,
} from "./forward-headers.js";
import { DEFAULT_HEAD_LIMITS } from "./http/head.js";
import { parseRequestHead } from "./http/request-parser.js";
import { parseResponseHead } from "./http/response-parser.js";

const RAW =
  "GET /a HTTP/1.1\r\nHost: reviews\r\nX-Forwarded-Client-Cert: By=spiffe://evil\r\n" +
  "x-forwarded-client-cert: Hash=00\r\nx-request-id: r1\r\n\r\n";

function serialize(clientCert: string | undefined, proto = "http"): string {
  const buf = Buffer.from(RAW, "latin1");
  const head = parseRequestHead(buf, 0, buf.length, DEFAULT_HEAD_LIMITS)!;
  const opts: RequestHeadOptions = {
    path: "/a",
    host: undefined,
    clientAddress: "10.0.0.1",
    proto,
    expectHandled: false,
    upgrade: undefined,
    clientCert,
  };
  const out: SerializedRequestHead = { text: "", requestId: "", userAgent: "", forwardedFor: "" };
  serializeRequestHead(head, opts, out);
  return out.text;
}

describe("serializeRequestHead: x-forwarded-client-cert", () => {
  it("outbound (undefined): the client's fields pass unchanged", () => {
    const text = serialize(undefined);
    expect(text).toContain("X-Forwarded-Client-Cert: By=spiffe://evil\r\n");
    expect(text).toContain("x-forwarded-client-cert: Hash=00\r\n");
  });

  it('inbound plaintext (""): every client field is removed and none is added', () => {
    expect(serialize("").toLowerCase()).not.toContain("x-forwarded-client-cert");
  });

  it("inbound mTLS: the client's fields are replaced by the verified peer's, once", () => {
    const text = serialize("By=spiffe://td/ns/a/sa/b;Hash=ab;URI=spiffe://td/ns/c/sa/d", "https");
    const lines = text
      .split("\r\n")
      .filter((l) => l.toLowerCase().startsWith("x-forwarded-client-cert"));
    expect(lines).toEqual([
      "x-forwarded-client-cert: By=spiffe://td/ns/a/sa/b;Hash=ab;URI=spiffe://td/ns/c/sa/d",
    ]);
    expect(text).toContain("x-forwarded-proto: https\r\n");
  });
});

/** The head serializeRequestHead sends upstream for `raw`, parsed as a client would send it. */
function forwarded(raw: string): string {
  const buf = Buffer.from(raw, "latin1");
  const head = parseRequestHead(buf, 0, buf.length, DEFAULT_HEAD_LIMITS)!;
  const out: SerializedRequestHead = { text: "", requestId: "", userAgent: "", forwardedFor: "" };
  serializeRequestHead(
    head,
    {
      path: head.target,
      host: undefined,
      clientAddress: "10.0.0.1",
      proto: "http",
      expectHandled: false,
      upgrade: undefined,
      clientCert: undefined,
    },
    out,
  );
  return out.text;
}

/** Its framing lines, as sent. */
function framingLines(text: string): string[] {
  return text.split("\r\n").filter((l) => /^(content-length|transfer-encoding)\s*:/i.test(l));
}

describe("serializeRequestHead: framing is re-declared, never copied (issue 14)", () => {
  it.each([
    ["Content-Length:\t42\t", ["content-length: 42"]],
    ["Content-Length: \t 42 \t ", ["content-length: 42"]],
    ["Content-Length: 42\t,\t42", ["content-length: 42"]],
    ["Content-Length: 42\r\ncontent-length:\t42", ["content-length: 42"]],
    ["Transfer-Encoding:\tchunked\t", ["transfer-encoding: chunked"]],
    ["Transfer-Encoding: CHUNKED", ["transfer-encoding: chunked"]],
    ["Transfer-Encoding:\tGZip\t,\tchunked\t", ["transfer-encoding: gzip, chunked"]],
    ["Transfer-Encoding: gzip\r\ntransfer-encoding: chunked", ["transfer-encoding: gzip, chunked"]],
    [
      "Transfer-Encoding: x-gzip,deflate , chunked",
      ["transfer-encoding: x-gzip, deflate, chunked"],
    ],
  ])("%j goes out as %j", (field, lines) => {
    const text = forwarded(`POST / HTTP/1.1\r\nHost: a\r\n${field}\r\n\r\n`);
    expect(framingLines(text)).toEqual(lines);
    expect(text).not.toContain("\t");
  });
});

describe("codingsBeforeChunked", () => {
  it("is empty for chunked alone, in any case", () => {
    expect(codingsBeforeChunked(["Transfer-Encoding", "chunked"])).toBe("");
    expect(codingsBeforeChunked(["transfer-encoding", "Chunked", "X", "gzip"])).toBe("");
  });

  it("keeps the codings applied before chunked, in order, across lines", () => {
    expect(
      codingsBeforeChunked([
        "Transfer-Encoding",
        "gzip",
        "TRANSFER-ENCODING",
        " Deflate\t,chunked",
      ]),
    ).toBe("gzip, deflate, ");
  });
});

describe("serializeResponseHead: the transfer codings survive re-framing", () => {
  function response(raw: string, framing: number): string {
    const buf = Buffer.from(raw, "latin1");
    const head = parseResponseHead(buf, 0, buf.length, DEFAULT_HEAD_LIMITS)!;
    return serializeResponseHead(head, framing, "");
  }

  it("chunked with gzip before it", () => {
    const raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding:\tgzip ,\tchunked\r\n\r\n";
    expect(framingLines(response(raw, FRAMING_CHUNKED))).toEqual([
      "transfer-encoding: gzip, chunked",
    ]);
  });

  it("a close-delimited gzip response re-chunked for the client", () => {
    const raw = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n";
    expect(framingLines(response(raw, FRAMING_CHUNKED))).toEqual([
      "transfer-encoding: gzip, chunked",
    ]);
  });

  it("Content-Length with HTAB OWS", () => {
    const raw = "HTTP/1.1 200 OK\r\nContent-Length:\t42\t\r\n\r\n";
    expect(framingLines(response(raw, FRAMING_LENGTH))).toEqual(["content-length: 42"]);
  });
});

describe("serializeRequestHead: Host", () => {
  // Regression (fuzzer, issue 14): `GET / HTTP/1.0` without Host went out as HTTP/1.1 without
  // Host, which a Node.js backend answers with 400.
  it("an HTTP/1.0 request without Host goes out as HTTP/1.1 with an empty Host", () => {
    const text = forwarded("GET / HTTP/1.0\r\nX: y\r\n\r\n");
    expect(text.startsWith("GET / HTTP/1.1\r\nhost: \r\n")).toBe(true);
  });

  it("a request with Host keeps it, once", () => {
    const text = forwarded("GET / HTTP/1.0\r\nHost: a\r\n\r\n");
    expect(text.split("\r\n").filter((l) => /^host:/i.test(l))).toEqual(["Host: a"]);
  });
});
