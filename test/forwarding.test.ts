/**
 * The forwarding path end to end with real sockets on 127.0.0.1: framing, keep-alive,
 * pipelining, header rewriting, interim responses, upgrades and routing.
 */
import type { Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  httpBackend,
  type InProcessRemora,
  outboundConfig,
  RawClient,
  rawBackend,
  rawRequest,
  startRemora,
} from "./harness.js";

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function proxyTo(endpoints: string[], extra = ""): Promise<InProcessRemora> {
  const remora = await startRemora(outboundConfig(endpoints, extra));
  cleanups.push(() => remora.stop());
  return remora;
}

async function echo() {
  const backend = await httpBackend();
  cleanups.push(() => backend.close());
  return backend;
}

/** A GET to `hello` is answered by remora itself with this status and response flag. */
async function expectLocalReply(port: number, status: number, flag: string, idleMs: number) {
  const { text } = await rawRequest(port, "GET / HTTP/1.1\r\nHost: hello\r\n\r\n", idleMs);
  expect(text).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
  expect(text).toContain(`x-remora-response-flags: ${flag}`);
}

function json(body: Buffer) {
  return JSON.parse(body.toString("latin1"));
}

describe("request forwarding", () => {
  it("forwards a GET and relays the response", async () => {
    const backend = await echo();
    const remora = await proxyTo([backend.address]);
    const res = await RawClient.exchange(
      remora.port(),
      "GET /a/b?c=d HTTP/1.1\r\nHost: hello\r\nUser-Agent: t\r\n\r\n",
    );
    expect(res.status).toBe(200);
    const seen = json(res.body);
    expect(seen.method).toBe("GET");
    expect(seen.url).toBe("/a/b?c=d");
    expect(seen.headers.host).toBe("hello");
    expect(seen.headers["user-agent"]).toBe("t");
  });

  it("streams a Content-Length body and a chunked body with trailers", async () => {
    const backend = await echo();
    const remora = await proxyTo([backend.address]);
    const client = await RawClient.open(remora.port());
    client.write("POST /x HTTP/1.1\r\nHost: hello\r\nContent-Length: 11\r\n\r\nhello world");
    const a = await client.response();
    expect(json(a.body).body).toBe("hello world");
    client.write(
      "POST /y HTTP/1.1\r\nHost: hello\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    );
    client.write("6\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n");
    const b = await client.response();
    client.close();
    const seen = json(b.body);
    expect(seen.body).toBe("hello world");
    expect(seen.headers["transfer-encoding"]).toBe("chunked");
    expect(seen.trailers).toEqual({ "x-checksum": "abc" });
  });

  it("reuses upstream connections across requests (keep-alive both sides)", async () => {
    const backend = await echo();
    const remora = await proxyTo([backend.address]);
    const client = await RawClient.open(remora.port());
    for (let i = 0; i < 5; i++) {
      client.write(`GET /${i} HTTP/1.1\r\nHost: hello\r\n\r\n`);
      const res = await client.response();
      expect(json(res.body).url).toBe(`/${i}`);
    }
    client.close();
    expect(backend.connectionPorts.length).toBe(1);
  });

  it("answers pipelined requests in order", async () => {
    // The backend answers the first request slowly, so order is not an accident of timing.
    const backend = await httpBackend((req, res) => {
      const delay = req.url === "/slow" ? 150 : 0;
      setTimeout(() => res.end(req.url), delay);
    });
    cleanups.push(() => backend.close());
    const remora = await proxyTo([backend.address]);
    const client = await RawClient.open(remora.port());
    client.write(
      "GET /slow HTTP/1.1\r\nHost: hello\r\n\r\nGET /fast HTTP/1.1\r\nHost: hello\r\n\r\nGET /last HTTP/1.1\r\nHost: hello\r\n\r\n",
    );
    const bodies = [];
    for (let i = 0; i < 3; i++) bodies.push((await client.response()).body.toString());
    client.close();
    expect(bodies).toEqual(["/slow", "/fast", "/last"]);
  });

  it("honours Connection: close from the client", async () => {
    const backend = await echo();
    const remora = await proxyTo([backend.address]);
    const client = await RawClient.open(remora.port());
    client.write("GET / HTTP/1.1\r\nHost: hello\r\nConnection: close\r\n\r\n");
    const res = await client.response();
    expect(res.status).toBe(200);
    expect(res.header("connection")).toBe("close");
    expect(await client.waitClosed()).toBe(true);
  });

  it("keeps an HTTP/1.0 keep-alive client open and closes a plain one", async () => {
    // Content-Length responses: a chunked one could not be relayed to HTTP/1.0 without a close.
    const backend = await httpBackend((req, res) => {
      const body = JSON.stringify({ url: req.url });
      res.writeHead(200, { "content-length": Buffer.byteLength(body) });
      res.end(body);
    });
    cleanups.push(() => backend.close());
    const remora = await proxyTo([backend.address]);
    const ka = await RawClient.open(remora.port());
    ka.write("GET /1 HTTP/1.0\r\nHost: hello\r\nConnection: keep-alive\r\n\r\n");
    const first = await ka.response();
    expect(first.header("connection")).toBe("keep-alive");
    ka.write("GET /2 HTTP/1.0\r\nHost: hello\r\nConnection: keep-alive\r\n\r\n");
    expect(json((await ka.response()).body).url).toBe("/2");
    ka.close();
    const plain = await rawRequest(remora.port(), "GET /3 HTTP/1.0\r\nHost: hello\r\n\r\n", 2000);
    expect(plain.text).toMatch(/^HTTP\/1\.1 200/);
    expect(plain.closed).toBe(true);
  });

  it("removes hop-by-hop fields and those named by Connection; adds forwarding fields", async () => {
    const backend = await echo();
    const remora = await proxyTo([backend.address]);
    const res = await RawClient.exchange(
      remora.port(),
      "GET / HTTP/1.1\r\nHost: hello\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\nKeep-Alive: timeout=5\r\n" +
        "Proxy-Connection: keep-alive\r\nTE: trailers\r\nTrailer: X-T\r\nX-Forwarded-For: 10.0.0.1\r\n" +
        "X-Forwarded-Proto: https\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n" +
        "tracestate: congo=t61rcWkgMzE\r\n\r\n",
    );
    const h = json(res.body).headers;
    for (const gone of ["x-secret", "keep-alive", "proxy-connection", "te", "trailer"]) {
      expect(h[gone], gone).toBeUndefined();
    }
    expect(h.connection).toBeUndefined();
    expect(h["x-forwarded-for"]).toBe("10.0.0.1, 127.0.0.1");
    expect(h["x-forwarded-proto"]).toBe("http");
    expect(h["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    expect(h.traceparent).toBe("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    expect(h.tracestate).toBe("congo=t61rcWkgMzE");
  });

  it("keeps a client's X-Request-Id", async () => {
    const backend = await echo();
    const remora = await proxyTo([backend.address]);
    const { text } = await rawRequest(
      remora.port(),
      "GET / HTTP/1.1\r\nHost: hello\r\nX-Request-Id: abc-123\r\nConnection: close\r\n\r\n",
      1000,
    );
    expect(text).toContain('"x-request-id":"abc-123"');
    expect(remora.records.at(-1)?.requestId).toBe("abc-123");
  });

  it("removes hop-by-hop fields from responses", async () => {
    const backend = await httpBackend((_req, res) => {
      res.setHeader("Connection", "keep-alive, X-Internal");
      res.setHeader("X-Internal", "1");
      res.setHeader("Keep-Alive", "timeout=5");
      res.setHeader("X-Kept", "yes");
      res.end("ok");
    });
    cleanups.push(() => backend.close());
    const remora = await proxyTo([backend.address]);
    const res = await RawClient.exchange(remora.port(), "GET / HTTP/1.1\r\nHost: hello\r\n\r\n");
    expect(res.header("x-internal")).toBeUndefined();
    expect(res.header("keep-alive")).toBeUndefined();
    expect(res.header("x-kept")).toBe("yes");
    expect(res.body.toString()).toBe("ok");
  });

  it("parses a head that arrives one byte at a time", async () => {
    const backend = await echo();
    const remora = await proxyTo([backend.address]);
    const client = await RawClient.open(remora.port());
    client.socket.setNoDelay(true);
    const head = `GET /slow HTTP/1.1\r\nHost: hello\r\nX-Pad: ${"p".repeat(300)}\r\n\r\n`;
    for (const byte of head) {
      client.write(byte);
      await new Promise((r) => setImmediate(r));
    }
    const res = await client.response();
    client.close();
    expect(json(res.body).headers["x-pad"]).toBe("p".repeat(300));
  });

  it("answers 414 for an over-long target that trickles in without a line end", async () => {
    const backend = await rawBackend();
    cleanups.push(() => backend.close());
    const remora = await proxyTo([backend.address]);
    const client = await RawClient.open(remora.port());
    client.write("GET /");
    for (let i = 0; i < 10; i++) {
      client.write("a".repeat(1024));
      await new Promise((r) => setTimeout(r, 5));
    }
    const res = await client.response();
    client.close();
    expect(res.status).toBe(414);
    expect(backend.connections).toBe(0);
  });
});

describe("response framing", () => {
  it("sends no body for HEAD, 204 and 304, keeping the connection usable", async () => {
    const backend = await rawBackend((socket, _data, all) => {
      const text = all.toString("latin1");
      const count = text.split("\r\n\r\n").length - 1;
      const replies = [
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", // HEAD: length of the GET body, no body
        "HTTP/1.1 204 No Content\r\n\r\n",
        'HTTP/1.1 304 Not Modified\r\nETag: "x"\r\n\r\n',
        "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone",
      ];
      if (count >= 1 && count <= 4 && (socket as Socket & { n?: number }).n !== count) {
        (socket as Socket & { n?: number }).n = count;
        socket.write(replies[count - 1]!);
      }
    });
    cleanups.push(() => backend.close());
    const remora = await proxyTo([backend.address]);
    const client = await RawClient.open(remora.port());
    client.write("HEAD / HTTP/1.1\r\nHost: hello\r\n\r\n");
    const head = await client.response(5000, true);
    expect(head.status).toBe(200);
    expect(head.header("content-length")).toBe("5");
    client.write("GET /204 HTTP/1.1\r\nHost: hello\r\n\r\n");
    expect((await client.response()).status).toBe(204);
    client.write("GET /304 HTTP/1.1\r\nHost: hello\r\n\r\n");
    expect((await client.response()).status).toBe(304);
    client.write("GET /last HTTP/1.1\r\nHost: hello\r\n\r\n");
    const last = await client.response();
    client.close();
    expect(last.body.toString()).toBe("done");
  });

  it("keeps Transfer-Encoding on a HEAD response without sending a body", async () => {
    const backend = await rawBackend((socket) => {
      socket.write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    });
    cleanups.push(() => backend.close());
    const remora = await proxyTo([backend.address]);
    const client = await RawClient.open(remora.port());
    client.write("HEAD / HTTP/1.1\r\nHost: hello\r\n\r\n");
    const res = await client.response(5000, true);
    expect(res.header("transfer-encoding")).toBe("chunked");
    await new Promise((r) => setTimeout(r, 100));
    expect(client.take()).toBe("");
    client.close();
  });

  it("re-frames a close-delimited response as chunked for HTTP/1.1 clients", async () => {
    const backend = await rawBackend((socket) => {
      socket.end("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end");
    });
    cleanups.push(() => backend.close());
    const remora = await proxyTo([backend.address]);
    const client = await RawClient.open(remora.port());
    client.write("GET / HTTP/1.1\r\nHost: hello\r\n\r\n");
    const res = await client.response();
    expect(res.header("transfer-encoding")).toBe("chunked");
    expect(res.body.toString()).toBe("until the end");
    // The client connection stays open for another request.
    client.write("GET / HTTP/1.1\r\nHost: hello\r\n\r\n");
    expect((await client.response()).body.toString()).toBe("until the end");
    client.close();
  });

  it("decodes a chunked response for an HTTP/1.0 client and closes to end it", async () => {
    const backend = await rawBackend((socket) => {
      socket.write(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
      );
    });
    cleanups.push(() => backend.close());
    const remora = await proxyTo([backend.address]);
    const { text, closed } = await rawRequest(
      remora.port(),
      "GET / HTTP/1.0\r\nHost: hello\r\n\r\n",
      2000,
    );
    expect(closed).toBe(true);
    expect(text).not.toMatch(/transfer-encoding/i);
    expect(text.endsWith("\r\n\r\nabcde")).toBe(true);
  });

  it("passes chunked responses with trailers through", async () => {
    const backend = await rawBackend((socket) => {
      socket.write(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nwxyz\r\n0\r\nX-Sum: 9\r\n\r\n",
      );
    });
    cleanups.push(() => backend.close());
    const remora = await proxyTo([backend.address]);
    const res = await RawClient.exchange(remora.port(), "GET / HTTP/1.1\r\nHost: hello\r\n\r\n");
    expect(res.body.toString()).toBe("wxyz");
    expect(res.headers.get("__trailers")?.[0]).toContain("X-Sum: 9");
  });

  it("relays 103 Early Hints and answers Expect: 100-continue itself", async () => {
    const backend = await rawBackend((socket, _d, all) => {
      const text = all.toString("latin1");
      if (text.includes("\r\n\r\npayload")) {
        socket.write("HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n");
        socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
      }
    });
    cleanups.push(() => backend.close());
    const remora = await proxyTo([backend.address]);
    const client = await RawClient.open(remora.port());
    client.write(
      "POST / HTTP/1.1\r\nHost: hello\r\nContent-Length: 7\r\nExpect: 100-continue\r\n\r\n",
    );
    const cont = await client.response();
    expect(cont.status).toBe(100);
    client.write("payload");
    const hints = await client.response();
    expect(hints.status).toBe(103);
    expect(hints.header("link")).toBe("</s.css>; rel=preload");
    const final = await client.response();
    client.close();
    expect(final.status).toBe(200);
    expect(backend.all()).not.toMatch(/expect:/i);
  });

  it("answers 502 for an invalid status line and for Content-Length with Transfer-Encoding", async () => {
    for (const reply of [
      "HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
      "garbage\r\n\r\n",
    ]) {
      const backend = await rawBackend((socket) => socket.write(reply));
      const remora = await proxyTo([backend.address]);
      const { text } = await rawRequest(
        remora.port(),
        "GET / HTTP/1.1\r\nHost: hello\r\n\r\n",
        500,
      );
      expect(text, reply).toMatch(/^HTTP\/1\.1 502 /);
      expect(text).toContain("x-remora-response-flags: UPE");
      await backend.close();
    }
  });

  it("resets the client when the upstream dies mid-body", async () => {
    const backend = await rawBackend((socket) => {
      socket.write("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
      setTimeout(() => socket.destroy(), 50);
    });
    cleanups.push(() => backend.close());
    const remora = await proxyTo([backend.address]);
    const { text, closed } = await rawRequest(
      remora.port(),
      "GET / HTTP/1.1\r\nHost: hello\r\n\r\n",
      2000,
    );
    expect(text).toContain("partial");
    expect(closed).toBe(true);
    expect(remora.records.at(-1)?.flags).toBe("UC");
  });
});

describe("upgrades", () => {
  it("tunnels bytes both ways after 101", async () => {
    const backend = await rawBackend((socket, data) => {
      const text = data.toString("latin1");
      if (text.startsWith("GET /ws")) {
        expect(text).toMatch(/\r\nconnection: upgrade\r\n/i);
        expect(text).toMatch(/\r\nupgrade: websocket\r\n/i);
        socket.write(
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nserver-hello",
        );
      } else {
        socket.write(`echo:${text}`);
      }
    });
    cleanups.push(() => backend.close());
    const remora = await proxyTo([backend.address]);
    const client = await RawClient.open(remora.port());
    client.write(
      "GET /ws HTTP/1.1\r\nHost: hello\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    const res = await client.response();
    expect(res.status).toBe(101);
    expect(res.header("upgrade")).toBe("websocket");
    expect(res.header("connection")).toBe("upgrade");
    client.write("ping-1");
    await new Promise((r) => setTimeout(r, 200));
    const rest = client.take();
    client.close();
    expect(rest).toContain("server-hello");
    expect(rest).toContain("echo:ping-1");
  });

  it("never forwards an h2c upgrade", async () => {
    const backend = await echo();
    const remora = await proxyTo([backend.address]);
    const res = await RawClient.exchange(
      remora.port(),
      "GET / HTTP/1.1\r\nHost: hello\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
    );
    const h = json(res.body).headers;
    expect(h.upgrade).toBeUndefined();
    expect(h["http2-settings"]).toBeUndefined();
  });
});

describe("routing", () => {
  it("routes every service name form, with and without port, any case", async () => {
    const backend = await echo();
    const remora = await startRemora(`
admin: { port: 0 }
probes: { port: null }
metrics: { port: null }
listeners: [{ name: out, kind: outbound, port: 0 }]
services:
  - { name: hello, namespace: shop, endpoints: [{ address: "${backend.address}" }] }
`);
    cleanups.push(() => remora.stop());
    const hosts = [
      "hello.shop",
      "hello.shop.svc",
      "hello.shop.svc.cluster.local",
      "HELLO.Shop.SVC.cluster.local:8080",
      "hello.shop:80",
      "hello.shop.svc.cluster.local.",
    ];
    for (const host of hosts) {
      const { text } = await rawRequest(
        remora.port(),
        `GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`,
        1000,
      );
      expect(text, host).toMatch(/^HTTP\/1\.1 200/);
    }
    // A bare name resolves in the proxy's own namespace ("default" here), not "shop".
    const bare = await rawRequest(
      remora.port(),
      "GET / HTTP/1.1\r\nHost: hello\r\nConnection: close\r\n\r\n",
      1000,
    );
    expect(bare.text).toMatch(/^HTTP\/1\.1 404/);
  });

  it("routes absolute-form targets (HTTP_PROXY style) and rewrites Host", async () => {
    const backend = await echo();
    const remora = await proxyTo([backend.address]);
    const res = await RawClient.exchange(
      remora.port(),
      "GET http://hello.default.svc.cluster.local:80/p?q=1 HTTP/1.1\r\nHost: ignored\r\n\r\n",
    );
    const seen = json(res.body);
    expect(seen.url).toBe("/p?q=1");
    expect(seen.headers.host).toBe("hello.default.svc.cluster.local:80");
  });

  it("answers 404 for an unknown service and 503 for a service without endpoints", async () => {
    const remora = await startRemora(`
admin: { port: 0 }
probes: { port: null }
metrics: { port: null }
listeners: [{ name: out, kind: outbound, port: 0 }]
services: [{ name: empty }]
`);
    cleanups.push(() => remora.stop());
    const client = await RawClient.open(remora.port());
    client.write("GET / HTTP/1.1\r\nHost: nowhere\r\n\r\n");
    const nr = await client.response();
    expect(nr.status).toBe(404);
    expect(nr.header("content-type")).toContain("text/plain");
    expect(nr.body.toString()).toContain("no route");
    client.write("GET / HTTP/1.1\r\nHost: empty\r\n\r\n");
    const uh = await client.response();
    client.close();
    expect(uh.status).toBe(503);
    expect(uh.header("x-remora-response-flags")).toBe("UH");
  });

  it("round-robins across endpoints", async () => {
    const backends = [];
    for (let i = 0; i < 3; i++) {
      const b = await httpBackend((_req, res) => res.end(String(i)));
      cleanups.push(() => b.close());
      backends.push(b);
    }
    const remora = await proxyTo(backends.map((b) => b.address));
    const client = await RawClient.open(remora.port());
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) {
      client.write("GET / HTTP/1.1\r\nHost: hello\r\n\r\n");
      seen.push((await client.response()).body.toString());
    }
    client.close();
    expect(new Set(seen).size).toBe(3);
    expect(seen.slice(0, 3).sort()).toEqual(["0", "1", "2"]);
    expect(seen.slice(3)).toEqual(seen.slice(0, 3));
  });
});

describe("upstream failures and timeouts", () => {
  it("answers 502 UF when the endpoint refuses connections", async () => {
    const dead = await rawBackend();
    const address = dead.address;
    await dead.close();
    const remora = await proxyTo([address]);
    await expectLocalReply(remora.port(), 502, "UF", 1000);
  });

  it("retries a failed connect on other endpoints (Istio's default connect-failure retries)", async () => {
    const live = await httpBackend((_req, res) => res.end("live"));
    cleanups.push(() => live.close());
    const dead: string[] = [];
    for (let i = 0; i < 3; i++) {
      const b = await rawBackend();
      dead.push(b.address);
      await b.close();
    }
    // One live endpoint among two dead ones: every request succeeds.
    const remora = await proxyTo([dead[0]!, live.address, dead[1]!]);
    const client = await RawClient.open(remora.port());
    for (let i = 0; i < 6; i++) {
      client.write("POST / HTTP/1.1\r\nHost: hello\r\nContent-Length: 2\r\n\r\nhi");
      const res = await client.response();
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe("live");
    }
    client.close();
    expect(remora.records.every((r) => r.endpoint === live.address)).toBe(true);
    // Four dead endpoints: the first try and two retries fail, then 502 UF.
    const allDead = await proxyTo([...dead, dead[0]!.replace(/:\d+$/, ":1")]);
    await expectLocalReply(allDead.port(), 502, "UF", 1000);
  });

  it("answers 502 UC when the upstream closes without a response", async () => {
    const backend = await rawBackend((socket) => socket.destroy());
    cleanups.push(() => backend.close());
    const remora = await proxyTo([backend.address]);
    await expectLocalReply(remora.port(), 502, "UC", 1000);
  });

  it("answers 504 UT when the per-request timeout passes", async () => {
    const backend = await rawBackend(); // never answers
    cleanups.push(() => backend.close());
    const remora = await startRemora(`
admin: { port: 0 }
probes: { port: null }
metrics: { port: null }
listeners: [{ name: out, kind: outbound, port: 0 }]
services:
  - { name: hello, timeout: 200ms, endpoints: [{ address: "${backend.address}" }] }
`);
    cleanups.push(() => remora.stop());
    await expectLocalReply(remora.port(), 504, "UT", 1500);
  });

  it("retries once on a fresh connection when a reused one turns out closed", async () => {
    // The backend closes each connection right after reading a second request on it, without
    // answering: the stale keep-alive race, made deterministic.
    let served = 0;
    const backend = await rawBackend((socket, _d, all) => {
      const requests = all.toString("latin1").split("\r\n\r\n").length - 1;
      if (requests === 1) {
        served++;
        socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n${served}`);
      } else socket.destroy();
    });
    cleanups.push(() => backend.close());
    const remora = await proxyTo([backend.address]);
    const client = await RawClient.open(remora.port());
    client.write("GET / HTTP/1.1\r\nHost: hello\r\n\r\n");
    expect((await client.response()).status).toBe(200);
    client.write("GET / HTTP/1.1\r\nHost: hello\r\n\r\n");
    const second = await client.response();
    client.close();
    expect(second.status).toBe(200);
    expect(second.body.toString()).toBe("2");
    expect(backend.connections).toBe(2);
  });

  it("does not retry a POST whose body went out on the dead connection", async () => {
    const backend = await rawBackend((socket, _d, all) => {
      const text = all.toString("latin1");
      if (text.split("\r\n\r\n").length - 1 === 1)
        socket.write("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
      else if (text.endsWith("body")) socket.destroy();
    });
    cleanups.push(() => backend.close());
    const remora = await proxyTo([backend.address]);
    const client = await RawClient.open(remora.port());
    client.write("GET / HTTP/1.1\r\nHost: hello\r\n\r\n");
    await client.response();
    client.write("POST / HTTP/1.1\r\nHost: hello\r\nContent-Length: 4\r\n\r\nbody");
    const res = await client.response();
    client.close();
    expect(res.status).toBe(502);
    expect(backend.connections).toBe(1);
  });

  it("closes idle upstream connections after the pool's idle timeout", async () => {
    const backend = await echo();
    const remora = await proxyTo(
      [backend.address],
      `
    trafficPolicy: { connectionPool: { http: { idleTimeout: 100ms } } }`,
    );
    const client = await RawClient.open(remora.port());
    client.write("GET / HTTP/1.1\r\nHost: hello\r\n\r\n");
    await client.response();
    const upstream = remora.runtime.clusters.get("hello.default")!;
    expect(upstream.poolStats(backend.address).idle).toBe(1);
    await new Promise((r) => setTimeout(r, 400));
    expect(upstream.poolStats(backend.address)).toEqual({ open: 0, idle: 0, connecting: 0 });
    client.write("GET / HTTP/1.1\r\nHost: hello\r\n\r\n");
    expect((await client.response()).status).toBe(200);
    client.close();
    expect(backend.connectionPorts.length).toBe(2);
  });

  it("sends 408 when a request head is not complete in time (slowloris)", async () => {
    const backend = await rawBackend();
    cleanups.push(() => backend.close());
    const remora = await startRemora(`
admin: { port: 0 }
probes: { port: null }
metrics: { port: null }
listeners: [{ name: out, kind: outbound, port: 0, timeouts: { requestHeaders: 200ms } }]
services: [{ name: hello, endpoints: [{ address: "${backend.address}" }] }]
`);
    cleanups.push(() => remora.stop());
    const client = await RawClient.open(remora.port());
    client.write("GET / HTTP/1.1\r\nHost: hel");
    for (let i = 0; i < 5; i++) {
      await new Promise((r) => setTimeout(r, 60));
      if (!client.closed) client.write("l");
    }
    expect(await client.waitClosed(2000)).toBe(true);
    const res = await client.response().catch(() => null);
    expect(res?.status ?? 408).toBe(408);
    expect(backend.connections).toBe(0);
  });

  it("closes idle downstream connections after the idle timeout", async () => {
    const backend = await echo();
    const remora = await startRemora(`
admin: { port: 0 }
probes: { port: null }
metrics: { port: null }
listeners: [{ name: out, kind: outbound, port: 0, timeouts: { idle: 150ms } }]
services: [{ name: hello, endpoints: [{ address: "${backend.address}" }] }]
`);
    cleanups.push(() => remora.stop());
    const client = await RawClient.open(remora.port());
    client.write("GET / HTTP/1.1\r\nHost: hello\r\n\r\n");
    expect((await client.response()).status).toBe(200);
    expect(await client.waitClosed(2000)).toBe(true);
  });

  it("does not apply the idle timeout to an exchange in flight", async () => {
    // Regression guard for the single per-session deadline: each phase sets its own timeout.
    const backend = await rawBackend((socket) => {
      setTimeout(() => socket.write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), 400);
    });
    cleanups.push(() => backend.close());
    const remora = await startRemora(`
admin: { port: 0 }
probes: { port: null }
metrics: { port: null }
listeners: [{ name: out, kind: outbound, port: 0, timeouts: { idle: 150ms } }]
services: [{ name: hello, timeout: 600ms, endpoints: [{ address: "${backend.address}" }] }]
`);
    cleanups.push(() => remora.stop());
    const client = await RawClient.open(remora.port());
    for (let i = 0; i < 2; i++) {
      client.write("GET / HTTP/1.1\r\nHost: hello\r\n\r\n");
      const res = await client.response();
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe("ok");
    }
    expect(await client.waitClosed(2000)).toBe(true);
  });
});

describe("backpressure", () => {
  it("pauses the upstream while a client does not read", async () => {
    const size = 32 * 1024 * 1024;
    const backend = await httpBackend((_req, res) => {
      res.writeHead(200, { "content-length": size });
      const chunk = Buffer.alloc(64 * 1024, 97);
      let sent = 0;
      const pump = () => {
        while (sent < size) {
          sent += chunk.length;
          if (!res.write(chunk)) return void res.once("drain", pump);
        }
        res.end();
      };
      pump();
    });
    cleanups.push(() => backend.close());
    const remora = await proxyTo([backend.address]);
    const client = await RawClient.open(remora.port());
    client.socket.pause();
    client.write("GET / HTTP/1.1\r\nHost: hello\r\n\r\n");
    await new Promise((r) => setTimeout(r, 500));
    // With the client not reading, what the proxy holds stays far below the body size.
    const before = process.memoryUsage().rss;
    await new Promise((r) => setTimeout(r, 300));
    const grown = process.memoryUsage().rss - before;
    expect(grown).toBeLessThan(16 * 1024 * 1024);
    let received = 0;
    client.socket.removeAllListeners("data");
    client.socket.on("data", (d: Buffer) => {
      received += d.length;
    });
    client.socket.resume();
    const deadline = Date.now() + 10_000;
    while (received < size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    client.close();
    expect(received).toBeGreaterThan(size);
  });
});

describe("listeners", () => {
  it("inbound forwards every request to the local app", async () => {
    const app = await echo();
    const remora = await startRemora(`
admin: { port: 0 }
probes: { port: null }
metrics: { port: null }
listeners:
  - { name: inbound, kind: inbound, port: 0, address: 127.0.0.1, app: "${app.address}" }
`);
    cleanups.push(() => remora.stop());
    const { text } = await rawRequest(
      remora.port(),
      "GET /in HTTP/1.1\r\nHost: anything.example\r\nConnection: close\r\n\r\n",
      1000,
    );
    expect(text).toMatch(/^HTTP\/1\.1 200/);
    expect(text).toContain('"url":"/in"');
  });

  it("tcp proxies opaque bytes both ways, including half-close", async () => {
    const backend = await rawBackend((socket, data) => {
      socket.write(Buffer.from(data.toString("latin1").toUpperCase(), "latin1"));
    });
    cleanups.push(() => backend.close());
    const remora = await startRemora(`
admin: { port: 0 }
probes: { port: null }
metrics: { port: null }
listeners: [{ name: db, kind: tcp, port: 0, service: postgres }]
services: [{ name: postgres, endpoints: [{ address: "${backend.address}" }] }]
`);
    cleanups.push(() => remora.stop());
    const { text } = await rawRequest(remora.port(), "\x00\x01not http at all", 500);
    expect(text).toBe("\x00\x01NOT HTTP AT ALL");
    expect(backend.connections).toBe(1);
  });
});

describe("drain", () => {
  it("finishes the in-flight exchange with Connection: close and stops accepting", async () => {
    const backend = await httpBackend((_req, res) => setTimeout(() => res.end("late"), 200));
    cleanups.push(() => backend.close());
    const remora = await proxyTo([backend.address]);
    const port = remora.port();
    const client = await RawClient.open(port);
    client.write("GET / HTTP/1.1\r\nHost: hello\r\n\r\n");
    await new Promise((r) => setTimeout(r, 50));
    remora.runtime.drain();
    const res = await client.response();
    expect(res.body.toString()).toBe("late");
    expect(res.header("connection")).toBe("close");
    expect(await client.waitClosed()).toBe(true);
    const refused = await RawClient.open(port).then(
      (c) => {
        c.close();
        return false;
      },
      () => true,
    );
    expect(refused).toBe(true);
  });
});
