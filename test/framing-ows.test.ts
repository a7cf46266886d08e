/**
 * Issue 14, item 5: HTAB is optional whitespace around Content-Length and Transfer-Encoding
 * (RFC 9110 §5.6.3), and remora forwards the framing it parsed, normalised, so the backend
 * never sees the client's whitespace. The backend here records raw bytes.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type InProcessRemora,
  outboundConfig,
  type RawBackend,
  RawClient,
  rawBackend,
  startRemora,
} from "./harness.js";

const OK = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/** What the backend received for the latest request (upstream connections are reused). */
function lastRequest(backend: RawBackend): string {
  const all = backend.all();
  return all.slice(all.lastIndexOf("POST / HTTP/1.1\r\n"));
}

describe("framing fields with HTAB OWS", () => {
  let backend: RawBackend;
  let remora: InProcessRemora;

  beforeAll(async () => {
    // Answers once the request (head and body) has arrived: these bodies end in "!".
    backend = await rawBackend((socket, _data, all) => {
      if (all.toString("latin1").endsWith("!") || all.toString("latin1").endsWith("0\r\n\r\n")) {
        socket.write(OK);
      }
    });
    remora = await startRemora(outboundConfig([backend.address]));
  });

  afterAll(async () => {
    await remora?.stop();
    await backend?.close();
  });

  it("Content-Length:<HTAB>42<HTAB> is 42 and goes upstream as `content-length: 42`", async () => {
    const body = `${"x".repeat(41)}!`;
    const res = await RawClient.exchange(
      remora.port(),
      `POST / HTTP/1.1\r\nHost: hello\r\nContent-Length:\t42\t\r\n\r\n${body}`,
    );
    expect(res.status).toBe(200);
    const sent = lastRequest(backend);
    const framing = sent
      .split("\r\n")
      .filter((l) => /^(content-length|transfer-encoding)/i.test(l));
    expect(framing).toEqual(["content-length: 42"]);
    expect(sent).not.toContain("\t");
    expect(sent.endsWith(`\r\n\r\n${body}`)).toBe(true);
  });

  it("Transfer-Encoding:<HTAB>chunked<HTAB> goes upstream as `transfer-encoding: chunked`", async () => {
    const res = await RawClient.exchange(
      remora.port(),
      "POST / HTTP/1.1\r\nHost: hello\r\nTransfer-Encoding:\tchunked\t\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
    );
    expect(res.status).toBe(200);
    const sent = lastRequest(backend);
    const framing = sent
      .split("\r\n")
      .filter((l) => /^(content-length|transfer-encoding)/i.test(l));
    expect(framing).toEqual(["transfer-encoding: chunked"]);
    expect(sent).not.toContain("\t");
  });

  it("HTAB inside the value is still 400 and reaches no backend", async () => {
    const before = backend.connections;
    const res = await RawClient.exchange(
      remora.port(),
      "POST / HTTP/1.1\r\nHost: hello\r\nTransfer-Encoding: chunked\tx\r\n\r\n0\r\n\r\n",
    );
    expect(res.status).toBe(400);
    expect(backend.connections).toBe(before);
  });
});
