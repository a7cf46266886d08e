/**
 * 100 MB through a real remora process both ways: the bytes arrive intact and the proxy's peak
 * resident memory stays far below the body size (bodies are streamed, never buffered).
 */
import { createHash } from "node:crypto";
import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type HttpBackend,
  httpBackend,
  peakRss,
  type SpawnedRemora,
  spawnRemora,
} from "./harness.js";

const SIZE = 100 * 1024 * 1024;
const CHUNK = Buffer.alloc(256 * 1024, "remora-");
/** Far below SIZE: a buffered body would blow through it. Node itself takes ~45–60 MB. */
const RSS_LIMIT = 120 * 1024 * 1024;

let backend: HttpBackend;
let remora: SpawnedRemora;

beforeAll(async () => {
  backend = await httpBackend((req, res, body) => {
    if (req.method === "GET") {
      res.writeHead(200, { "content-length": SIZE });
      let sent = 0;
      const pump = () => {
        while (sent < SIZE) {
          sent += CHUNK.length;
          if (!res.write(CHUNK)) return void res.once("drain", pump);
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

describe("large bodies", () => {
  it("streams a 100 MB download in bounded memory", async () => {
    const hash = createHash("sha256");
    const received = await new Promise<number>((resolve, reject) => {
      const req = request(
        { host: "127.0.0.1", port: port(), path: "/", headers: { host: "big" } },
        (res) => {
          let n = 0;
          res.on("data", (d: Buffer) => {
            n += d.length;
            hash.update(d);
          });
          res.on("end", () => resolve(n));
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      req.end();
    });
    expect(received).toBe(SIZE);
    const expected = createHash("sha256");
    for (let sent = 0; sent < SIZE; sent += CHUNK.length) expected.update(CHUNK);
    expect(hash.digest("hex")).toBe(expected.digest("hex"));
    expect(await peakRss(remora.child.pid!)).toBeLessThan(RSS_LIMIT);
  });

  it("streams a 100 MB chunked upload in bounded memory", async () => {
    const expected = createHash("sha256");
    const reply = await new Promise<string>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port: port(),
          method: "POST",
          path: "/up",
          headers: { host: "big", "transfer-encoding": "chunked" },
        },
        (res) => {
          let text = "";
          res.on("data", (d: Buffer) => {
            text += d.toString();
          });
          res.on("end", () => resolve(text));
        },
      );
      req.on("error", reject);
      let sent = 0;
      const pump = () => {
        while (sent < SIZE) {
          sent += CHUNK.length;
          expected.update(CHUNK);
          if (!req.write(CHUNK)) return void req.once("drain", pump);
        }
        req.end();
      };
      pump();
    });
    // The backend buffers (to hash); the proxy must not.
    expect(JSON.parse(reply)).toEqual({ length: SIZE, sha256: expected.digest("hex") });
    expect(await peakRss(remora.child.pid!)).toBeLessThan(RSS_LIMIT);
  });
});
