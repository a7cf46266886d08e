/**
 * Certificate rotation under an inbound STRICT listener of a real remora process: the mounted
 * Secret is updated the way the kubelet does it (a new `..data` directory swapped in by one
 * rename), with a TLS connection open across the swap.
 */
import { X509Certificate } from "node:crypto";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect, type TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type CertificateAndKey, createCa, issueWorkloadCertificate } from "../tls/ca.js";
import {
  type HttpBackend,
  httpBackend,
  type ParsedResponse,
  parseResponse,
  type SpawnedRemora,
  spawnRemora,
} from "./harness.js";

const SERVER = { namespace: "default", serviceAccount: "reviews" };

describe("inbound STRICT: rotating the certificate with a connection open", () => {
  let dir: string;
  let secret: string;
  let ca: CertificateAndKey;
  let client: CertificateAndKey;
  let app: HttpBackend;
  let remora: SpawnedRemora;
  const sockets: TLSSocket[] = [];

  /** Writes a version directory of the Secret and points `..data` at it (kubelet's swap). */
  const publish = (version: string): string => {
    const issued = issueWorkloadCertificate({ ca, ...SERVER });
    const at = join(secret, version);
    mkdirSync(at);
    writeFileSync(join(at, "tls.crt"), issued.certPem);
    writeFileSync(join(at, "tls.key"), issued.keyPem, { mode: 0o600 });
    writeFileSync(join(at, "ca.crt"), issued.caPem);
    symlinkSync(version, join(secret, "..data_tmp"));
    renameSync(join(secret, "..data_tmp"), join(secret, "..data"));
    return new X509Certificate(issued.certPem).serialNumber;
  };

  const open = () =>
    new Promise<TLSSocket>((resolve, reject) => {
      const socket = connect({
        host: "127.0.0.1",
        port: remora.ports.get("inbound")!,
        cert: client.certPem,
        key: client.keyPem,
        ca: ca.certPem,
        ALPNProtocols: ["istio-http/1.1", "http/1.1"],
        // The server's certificate names a SPIFFE ID, not a host: the chain is still verified.
        checkServerIdentity: () => undefined,
      });
      sockets.push(socket);
      socket.once("secureConnect", () => resolve(socket));
      socket.once("error", reject);
    });

  /** One keep-alive request on `socket`; resolves with the parsed response. */
  const request = (socket: TLSSocket, path: string) =>
    new Promise<ParsedResponse>((resolve, reject) => {
      let buffer = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        buffer = Buffer.concat([buffer, chunk]);
        const response = parseResponse(buffer, false);
        if (response === null) return;
        socket.off("data", onData);
        resolve(response);
      };
      socket.on("data", onData);
      socket.once("close", () =>
        reject(new Error(`connection closed before a response to ${path}`)),
      );
      socket.write(`GET ${path} HTTP/1.1\r\nHost: reviews\r\n\r\n`);
    });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "remora-rotation-"));
    secret = join(dir, "secret");
    mkdirSync(secret);
    ca = createCa();
    client = issueWorkloadCertificate({ ca, namespace: "shop", serviceAccount: "frontend" });
    app = await httpBackend();
    for (const name of ["tls.crt", "tls.key", "ca.crt"]) {
      symlinkSync(join("..data", name), join(secret, name));
    }
    const config = join(dir, "remora.yaml");
    writeFileSync(
      config,
      [
        "admin: { port: 0 }",
        "probes: { port: null }",
        "metrics: { port: null }",
        "tls: { certFile: secret/tls.crt, keyFile: secret/tls.key, caFile: secret/ca.crt }",
        "listeners:",
        `  - { name: inbound, kind: inbound, address: 127.0.0.1, port: 0, app: "${app.address}", tls: { mode: STRICT } }`,
        "services: []",
        "",
      ].join("\n"),
    );
    firstSerial = publish("..v1");
    remora = await spawnRemora(["run", "-c", config]);
  });

  let firstSerial: string;

  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await remora?.stop();
    await app?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("an open connection keeps its certificate and keeps working; a new one gets the new serial", async () => {
    const old = await open();
    expect(old.authorized).toBe(true);
    expect(old.getPeerCertificate().serialNumber).toBe(firstSerial);
    expect((await request(old, "/before")).status).toBe(200);

    const secondSerial = publish("..v2");
    rmSync(join(secret, "..v1"), { recursive: true });
    expect(secondSerial).not.toBe(firstSerial);
    // The proxy logs the swap once it has validated and installed the new set.
    await vi.waitFor(() => expect(remora.stderr()).toContain(`"newSerial":"${secondSerial}"`), {
      timeout: 10_000,
    });

    const fresh = await open();
    expect(fresh.authorized).toBe(true);
    expect(fresh.getPeerCertificate().serialNumber).toBe(secondSerial);
    const onFresh = await request(fresh, "/fresh");
    expect(onFresh.status).toBe(200);
    expect(JSON.parse(onFresh.body.toString()).url).toBe("/fresh");

    // The connection opened before the rotation: same socket, still the old certificate.
    const onOld = await request(old, "/after");
    expect(onOld.status).toBe(200);
    expect(JSON.parse(onOld.body.toString()).url).toBe("/after");
    expect(old.destroyed).toBe(false);
    expect(old.getPeerCertificate().serialNumber).toBe(firstSerial);
    expect(remora.stderr()).not.toContain('"level":50');
  });
});
