/**
 * The load client of `tls-handshake`: every request on a new mTLS connection. Each of
 * `connections` loops connects, completes a full handshake presenting the client certificate
 * (no session is ever offered for resumption), sends one request with `Connection: close`, reads
 * the response until the server closes, and starts over. What it measures is the proxy's cost of
 * a TLS handshake (plus a TCP connect and one small exchange): handshakes per second.
 *
 * One secure context for the whole run, so the client parses its key and trust bundle once. It
 * checks that the server's certificate chains to the trust bundle but not the host name, as a
 * mesh client checks a SPIFFE ID rather than a DNS name.
 */
import { readFileSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { connect, createSecureContext, type SecureContext, type TLSSocket } from "node:tls";
import type { LoadRequest, LoadResult } from "./load.js";
import { latencyFromSamples } from "./report.js";
import { CLIENT_GROUPS } from "./tls-material.js";

/** What a run of the handshake client adds to a run sample. */
export interface HandshakeResult extends LoadResult {
  readonly handshakes: number;
  readonly negotiated: string | null;
}

/** A growable list of latencies in ms. */
class Latencies {
  #values = new Float64Array(1 << 14);
  count = 0;

  push(ms: number): void {
    if (this.count === this.#values.length) {
      const bigger = new Float64Array(this.#values.length * 2);
      bigger.set(this.#values);
      this.#values = bigger;
    }
    this.#values[this.count++] = ms;
  }

  get values(): Float64Array {
    return this.#values;
  }
}

/**
 * The session's parameters, as the report prints them so a reader sees that both proxies
 * negotiated the same: "TLSv1.3 TLS_AES_256_GCM_SHA384, X25519, ALPN http/1.1, server key rsa 2048".
 */
export function describeSession(socket: TLSSocket): string {
  const cipher = socket.getCipher();
  const kx = socket.getEphemeralKeyInfo();
  const key = socket.getPeerX509Certificate()?.publicKey;
  const details = key?.asymmetricKeyDetails;
  const keyText =
    key === undefined
      ? "no server certificate"
      : `server key ${key.asymmetricKeyType}${details?.modulusLength ? ` ${details.modulusLength}` : ""}${details?.namedCurve ? ` ${details.namedCurve}` : ""}`;
  const kxName = kx !== null && "name" in kx && kx.name !== undefined ? kx.name : "?";
  return `${socket.getProtocol() ?? "?"} ${cipher.standardName ?? cipher.name}, ${kxName}, ALPN ${socket.alpnProtocol || "none"}, ${keyText}`;
}

export function runHandshakeLoad(
  req: LoadRequest,
  onTick: (completed: number, bytes: number) => void,
): Promise<HandshakeResult> {
  const tls = req.tls;
  if (tls === undefined) {
    return Promise.reject(new Error("the handshake client needs a target that speaks mTLS"));
  }
  const secureContext: SecureContext = createSecureContext({
    cert: readFileSync(tls.certFile),
    key: readFileSync(tls.keyFile),
    ca: readFileSync(tls.caFile),
    ecdhCurve: CLIENT_GROUPS,
  });
  const url = new URL(req.url);
  const port = Number(url.port);
  const host = url.hostname;
  const request = Buffer.from(
    `${req.method} ${req.path} HTTP/1.1\r\nHost: ${req.headers.host ?? url.host}\r\nConnection: close\r\n\r\n`,
    "latin1",
  );
  const latencies = new Latencies();
  let handshakes = 0;
  let completed = 0;
  let non2xx = 0;
  let errors = 0;
  let totalBytes = 0;
  let tickCount = 0;
  let tickBytes = 0;
  let negotiated: string | null = null;
  let measuring = true;
  const started = performance.now();

  return new Promise((resolve) => {
    let loops = req.connections;
    const loopEnded = (): void => {
      if (--loops > 0) return;
      clearInterval(ticker);
      const durationSec = (endedAt - started) / 1000;
      resolve({
        requestsPerSec: completed / durationSec,
        bytesPerSec: totalBytes / durationSec,
        latency: latencyFromSamples(latencies.values, latencies.count),
        latencySource: "exact",
        completed,
        non2xx,
        errors,
        totalBytes,
        durationSec,
        handshakes,
        negotiated,
      });
    };

    /** One connection: handshake, one exchange, close; then the next, until the run is over. */
    const once = (): void => {
      if (!measuring) {
        loopEnded();
        return;
      }
      const connectedAt = performance.now();
      let status = 0;
      let bytes = 0;
      let secure = false;
      const socket = connect({
        host,
        port,
        secureContext,
        ALPNProtocols: ["http/1.1"],
        // The chain is checked (rejectUnauthorized), the name is not: see the file comment.
        checkServerIdentity: () => undefined,
      });
      socket.setTimeout(req.timeoutSec * 1000, () => socket.destroy());
      socket.once("secureConnect", () => {
        secure = true;
        if (measuring) handshakes++;
        negotiated ??= describeSession(socket);
        socket.write(request);
      });
      socket.on("data", (chunk: Buffer) => {
        if (status === 0 && chunk.length >= 12) status = Number(chunk.toString("latin1", 9, 12));
        bytes += chunk.length;
      });
      socket.on("error", () => {});
      socket.once("close", () => {
        if (measuring) {
          if (!secure || status === 0) {
            errors++;
          } else {
            completed++;
            if (status < 200 || status >= 300) non2xx++;
            else latencies.push(performance.now() - connectedAt);
            totalBytes += bytes;
            tickCount++;
            tickBytes += bytes;
          }
        }
        once();
      });
    };

    const ticker = setInterval(() => {
      onTick(tickCount, tickBytes);
      tickCount = 0;
      tickBytes = 0;
    }, 1000);
    let endedAt = started;
    setTimeout(() => {
      measuring = false;
      endedAt = performance.now();
    }, req.durationSec * 1000);
    for (let i = 0; i < req.connections; i++) once();
  });
}
