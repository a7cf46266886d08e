/**
 * 100 MB through a real remora process both ways: the bytes arrive intact and the proxy's peak
 * resident memory stays far below the body size (bodies are streamed, never buffered). Each
 * direction stalls once so that remora's writes back up while it keeps reading into its reused
 * read buffers (ReadBuffer's lending rule is what keeps those bytes intact).
 */
import { createHash, randomBytes } from "node:crypto";
import { type ClientRequest, request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type HttpBackend,
  httpBackend,
  peakRss,
  type SpawnedRemora,
  spawnRemora,
} from "./harness.js";

const SIZE = 100 * 1024 * 1024;
/**
 * Random bytes with a prime period: a read buffer overwritten by a later read never holds the
 * same bytes by chance, so corruption changes the hash.
 */
const PATTERN = randomBytes(65_521);
const STALL_MS = 300;

function* bodyChunks(): Generator<Buffer> {
  for (let sent = 0; sent < SIZE; sent += PATTERN.length) {
    yield SIZE - sent >= PATTERN.length ? PATTERN : PATTERN.subarray(0, SIZE - sent);
  }
}

function expectedHash(): string {
  const hash = createHash("sha256");
  for (const chunk of bodyChunks()) hash.update(chunk);
  return hash.digest("hex");
}
/** Far below SIZE: a buffered body would blow through it. Node itself takes ~45–60 MB. */
const RSS_LIMIT = 120 * 1024 * 1024;

let backend: HttpBackend;
let remora: SpawnedRemora;

beforeAll(async () => {
  backend = await httpBackend((req, res, body) => {
    if (req.method === "GET") {
      res.writeHead(200, { "content-length": SIZE });
      const chunks = bodyChunks();
      const pump = () => {
        // next(), not for-of: leaving a for-of loop would close the generator.
        for (let c = chunks.next(); !c.done; c = chunks.next()) {
          if (!res.write(c.value)) return void res.once("drain", pump);
        }
        res.end();
      };
      pump();
      return;
    }
    res.end(
      JSON.stringify({
        length: body.length,
        sha256: createHash("sha256").update(body).digest("hex"),
      }),
    );
  });
  // Uploads: the backend reads nothing for a while, so remora's upstream writes back up.
  backend.server.prependListener("request", (req) => {
    if (req.method !== "POST") return;
    req.pause();
    setTimeout(() => req.resume(), STALL_MS);
  });
  remora = await spawnRemora([
    "run",
    "--listen",
    "0",
    "--admin-port",
    "0",
    "--service",
    `big=${backend.address}`,
  ]);
});

afterAll(async () => {
  await remora?.stop();
  await backend?.close();
});

function port(): number {
  return remora.ports.values().next().value as number;
}

/**
 * A chunked POST through remora; `send` writes the body (and ends the request). Resolves with
 * the backend's reply: the length and SHA-256 of what it received.
 */
function upload(path: string, send: (req: ClientRequest) => void): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: "127.0.0.1",
        port: port(),
        method: "POST",
        path,
        headers: { host: "big", "transfer-encoding": "chunked" },
      },
      (res) => {
        let text = "";
        res.on("data", (d: Buffer) => (text += d.toString()));
        res.on("end", () => resolve(JSON.parse(text)));
      },
    );
    req.on("error", reject);
    send(req);
  });
}

describe("large bodies", () => {
  it("streams a 100 MB download in bounded memory", async () => {
    const hash = createHash("sha256");
    const received = await new Promise<number>((resolve, reject) => {
      const req = request(
        { host: "127.0.0.1", port: port(), path: "/", headers: { host: "big" } },
        (res) => {
          let n = 0;
          let stalled = false;
          res.on("data", (d: Buffer) => {
            n += d.length;
            hash.update(d);
            if (!stalled && n > 8 * 1024 * 1024) {
              // The client stops reading for a while: remora's client writes back up.
              stalled = true;
              res.pause();
              setTimeout(() => res.resume(), STALL_MS);
            }
          });
          res.on("end", () => resolve(n));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end();
    });
    expect(received).toBe(SIZE);
    expect(hash.digest("hex")).toBe(expectedHash());
    expect(await peakRss(remora.child.pid!)).toBeLessThan(RSS_LIMIT);
  });

  it("streams a 100 MB chunked upload in bounded memory", async () => {
    const reply = await upload("/up", (req) => {
      const chunks = bodyChunks();
      const pump = () => {
        for (let c = chunks.next(); !c.done; c = chunks.next()) {
          if (!req.write(c.value)) return void req.once("drain", pump);
        }
        req.end();
      };
      pump();
    });
    // The backend buffers (to hash); the proxy must not.
    expect(reply).toEqual({ length: SIZE, sha256: expectedHash() });
    expect(await peakRss(remora.child.pid!)).toBeLessThan(RSS_LIMIT);
  });

  it("keeps bytes of many small reads intact while the upstream is stalled", async () => {
    // Small client writes arrive as small reads in remora's shared read buffer; with the
    // backend not reading, the upstream writes back up and must not point into that buffer.
    const slowly = (body: Buffer) =>
      upload("/small", (req) => {
        let at = 0;
        // One small write per event-loop turn, so remora sees them as small reads.
        const pump = () => {
          if (at >= body.length) return void req.end();
          const piece = body.subarray(at, at + 1000);
          at += piece.length;
          if (req.write(piece)) setImmediate(pump);
          else req.once("drain", pump);
        };
        pump();
      });
    const bodies = [randomBytes(6_000_000), randomBytes(6_000_000)];
    const replies = await Promise.all(bodies.map(slowly));
    for (let i = 0; i < bodies.length; i++) {
      expect(replies[i]).toEqual({
        length: bodies[i]!.length,
        sha256: createHash("sha256").update(bodies[i]!).digest("hex"),
      });
    }
  });
});
