import { describe, expect, it } from "vitest";
import {
  type RequestHeadOptions,
  type SerializedRequestHead,
  serializeRequestHead,
} from "./forward-headers.js";
import { DEFAULT_HEAD_LIMITS } from "./http/head.js";
import { parseRequestHead } from "./http/request-parser.js";

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
