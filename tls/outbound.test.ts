/**
 * The connector against real node TLS servers on 127.0.0.1: session resumption, the handshake
 * timeout, a refused server's ticket never reused, and rotation read per connection.
 */
import { once } from "node:events";
import { type AddressInfo, createServer as createTcpServer, type Server } from "node:net";
import { createSecureContext, createServer, type TLSSocket } from "node:tls";
import { afterEach, describe, expect, it } from "vitest";
import type { RemoraError } from "../proxy/errors.js";
import { ReadBuffer } from "../proxy/read-buffer.js";
import type { ConnectTarget } from "../proxy/upstream/connector.js";
import { createCa, issueWorkloadCertificate } from "./ca.js";
import type { ClientTlsSettings } from "./client-tls-settings.js";
import { type ClientIdentity, OutboundTlsConnector } from "./outbound.js";
import { type TlsFailureReason, UpstreamTlsFailures } from "./outbound-failures.js";

const ca = createCa();
const serverCert = issueWorkloadCertificate({ ca, namespace: "prod", serviceAccount: "reviews" });
const clientCert = issueWorkloadCertificate({
  ca,
  namespace: "prod",
  serviceAccount: "productpage",
});
const REVIEWS = "spiffe://cluster.local/ns/prod/sa/reviews";

const identity: ClientIdentity = {
  secureContext: createSecureContext({
    cert: clientCert.certPem,
    key: clientCert.keyPem,
    ca: ca.certPem,
  }),
  spiffeId: "spiffe://cluster.local/ns/prod/sa/productpage",
  certificate: { issuer: "CN=remora CA" },
  files: { caFile: "ca.crt" },
};

const closers: (() => void)[] = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

async function listen(server: Server): Promise<number> {
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  closers.push(() => server.close());
  return (server.address() as AddressInfo).port;
}

/** An mTLS server of the mesh; `reused` records isSessionReused() per accepted connection. */
async function meshServer(): Promise<{ port: number; reused: boolean[] }> {
  const reused: boolean[] = [];
  const server = createServer(
    {
      cert: serverCert.certPem,
      key: serverCert.keyPem,
      ca: ca.certPem,
      requestCert: true,
      rejectUnauthorized: true,
    },
    (socket: TLSSocket) => {
      reused.push(socket.isSessionReused());
      socket.on("error", () => {});
    },
  );
  return { port: await listen(server), reused };
}

function connector(settings: Partial<ClientTlsSettings> = {}) {
  const reasons: TlsFailureReason[] = [];
  const failures = new UpstreamTlsFailures({
    warn: (fields) => reasons.push(fields.reason as TlsFailureReason),
  });
  const made = new OutboundTlsConnector({
    settings: { mode: "ISTIO_MUTUAL", subjectAltNames: [REVIEWS], ...settings },
    service: { name: "reviews", namespace: "prod", key: "reviews.prod" },
    identity,
    failures,
  });
  return { connector: made, reasons };
}

/** One connect: the ready socket (closed at once) or the error. */
function open(
  made: OutboundTlsConnector,
  target: ConnectTarget,
  timeoutMs = 5000,
): Promise<{ reused: boolean } | RemoraError> {
  return new Promise((resolve) => {
    made.open(target, new ReadBuffer(), timeoutMs, {
      ready: (socket) => {
        const reused = (socket as TLSSocket).isSessionReused();
        // end, not destroy: the server must see our Finished to count the connection.
        socket.end();
        resolve({ reused });
      },
      failed: resolve,
    });
  });
}

describe("OutboundTlsConnector", () => {
  it("resumes the TLS session with the ticket the pool kept", async () => {
    const server = await meshServer();
    const { connector: made } = connector();
    const target: ConnectTarget = { host: "127.0.0.1", port: server.port, tlsSession: undefined };
    expect(await open(made, target)).toEqual({ reused: false });
    expect(target.tlsSession).toBeInstanceOf(Buffer);
    expect(await open(made, target)).toEqual({ reused: true });
    // The server agrees: a full handshake, then a resumed one.
    for (let i = 0; i < 100 && server.reused.length < 2; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(server.reused).toEqual([false, true]);
  });

  it("a target without a ticket does a full handshake (tickets are per pool)", async () => {
    const server = await meshServer();
    const { connector: made } = connector();
    await open(made, { host: "127.0.0.1", port: server.port, tlsSession: undefined });
    expect(
      await open(made, { host: "127.0.0.1", port: server.port, tlsSession: undefined }),
    ).toEqual({ reused: false });
  });

  it("keeps no ticket from a server that failed verification", async () => {
    const server = await meshServer();
    const { connector: made, reasons } = connector({
      subjectAltNames: ["spiffe://cluster.local/ns/prod/sa/other"],
    });
    const target: ConnectTarget = { host: "127.0.0.1", port: server.port, tlsSession: undefined };
    const result = await open(made, target);
    expect((result as RemoraError).code).toBe("REMORA_ERR_UPSTREAM_TLS");
    expect(reasons).toEqual(["identity_mismatch"]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(target.tlsSession).toBeUndefined();
  });

  it("a server that accepts TCP but never answers the handshake: reason timeout", async () => {
    const silent = createTcpServer((socket) => {
      socket.on("error", () => {});
      closers.push(() => socket.destroy());
    });
    const port = await listen(silent);
    const { connector: made, reasons } = connector();
    const result = await open(made, { host: "127.0.0.1", port, tlsSession: undefined }, 100);
    expect((result as RemoraError).code).toBe("REMORA_ERR_UPSTREAM_TLS");
    expect(reasons).toEqual(["timeout"]);
  });

  it("a refused TCP connect is a plain connect failure, not a TLS one", async () => {
    const closed = createTcpServer();
    const port = await listen(closed);
    closed.close();
    await once(closed, "close");
    const { connector: made, reasons } = connector();
    const result = await open(made, { host: "127.0.0.1", port, tlsSession: undefined });
    expect((result as RemoraError).code).toBe("REMORA_ERR_UPSTREAM_CONNECT");
    expect(reasons).toEqual([]);
  });
});
