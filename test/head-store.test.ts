/**
 * Request heads past 32 KiB move into pooled head stores (proxy/head-store.ts) that oversized,
 * rejected heads give back. These tests interleave rejected floods with valid large heads that
 * arrive in many reads, so a store reused while something still pointed into it would show up
 * as a wrong header value at the backend.
 */

import type { Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type InProcessRemora,
  outboundConfig,
  type RawBackend,
  RawClient,
  rawBackend,
  startRemora,
} from "./harness.js";

let backend: RawBackend;
let remora: InProcessRemora;

/**
 * Answers each request head (these requests have no bodies) with 200 and the head exactly as
 * it arrived as the body. A raw backend: node:http refuses heads over 16 KiB.
 */
const answered = new WeakMap<Socket, number>();
function echoHeads(socket: Socket, _data: Buffer, all: Buffer): void {
  let pos = answered.get(socket) ?? 0;
  for (let end = all.indexOf("\r\n\r\n", pos); end !== -1; end = all.indexOf("\r\n\r\n", pos)) {
    const head = all.subarray(pos, end + 4);
    socket.write(`HTTP/1.1 200 OK\r\ncontent-length: ${head.length}\r\n\r\n`);
    socket.write(head);
    pos = end + 4;
  }
  answered.set(socket, pos);
}

beforeAll(async () => {
  backend = await rawBackend(echoHeads);
  remora = await startRemora(outboundConfig([backend.address]));
});

afterAll(async () => {
  await remora?.stop();
  await backend?.close();
});

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Write `bytes` in pieces with a pause between, so remora reads them one by one. */
async function trickle(client: RawClient, bytes: Buffer, piece: number): Promise<void> {
  for (let at = 0; at < bytes.length; at += piece) {
    client.write(bytes.subarray(at, at + piece));
    await pause(2);
  }
}

/** A valid GET whose head is about `kib` KiB: fields filled with `fill`, named by `tag`. */
function bigHead(tag: string, fill: string, kib: number): { wire: Buffer; value: string } {
  const value = fill.repeat(Math.ceil((kib * 1024) / 4 / fill.length)).slice(0, 4000);
  const fields = Array.from({ length: Math.ceil((kib * 1024) / 4020) }, (_, i) => {
    return `x-${tag}-${i}: ${value}\r\n`;
  }).join("");
  return {
    wire: Buffer.from(`GET /${tag} HTTP/1.1\r\nHost: hello\r\n${fields}\r\n`, "latin1"),
    value,
  };
}

/** The field lines of a forwarded head whose names start with `prefix`, as [name, value]. */
function forwardedFields(body: Buffer, prefix: string): [string, string][] {
  return body
    .toString("latin1")
    .split("\r\n")
    .map((line) => {
      const colon = line.indexOf(":");
      return [line.slice(0, colon).toLowerCase(), line.slice(colon + 1).trim()] as [string, string];
    })
    .filter(([name]) => name.startsWith(prefix));
}

async function oversizedFlood(port: number): Promise<number> {
  const client = await RawClient.open(port);
  const line = Buffer.from(`GET / HTTP/1.1\r\nHost: hello\r\nX-Flood: ${"z".repeat(70_000)}`);
  await trickle(client, line, 16 * 1024);
  const response = await client.response();
  client.close();
  return response.status;
}

describe("large request heads and the head store", () => {
  it("heads past 32 KiB arriving in many reads reach the backend intact, between rejected floods", async () => {
    const port = remora.port();
    for (let round = 0; round < 4; round++) {
      const fill = String.fromCharCode(97 + round).repeat(3) + String(round);
      const { wire, value } = bigHead(`r${round}`, fill, 48);
      const client = await RawClient.open(port);
      // A flood rejected on another connection while this head is half sent: its store is
      // given back and may be the next one taken.
      const half = wire.length >> 1;
      await trickle(client, wire.subarray(0, half), 7 * 1024);
      expect(await oversizedFlood(port)).toBe(431);
      await trickle(client, wire.subarray(half), 7 * 1024);
      const response = await client.response();
      expect(response.status).toBe(200);
      expect(response.body.toString("latin1")).toMatch(new RegExp(`^GET /r${round} HTTP/1.1\r\n`));
      const sent = forwardedFields(response.body, `x-r${round}-`);
      expect(sent.length).toBe(Math.ceil((48 * 1024) / 4020));
      for (const [, v] of sent) expect(v).toBe(value);
      client.close();
    }
  });

  it("two large pipelined heads on one connection are answered in order with their own fields", async () => {
    const first = bigHead("first", "1234", 40);
    const second = bigHead("second", "wxyz", 40);
    const client = await RawClient.open(remora.port());
    await trickle(client, Buffer.concat([first.wire, second.wire]), 10 * 1024);
    for (const { tag, value } of [
      { tag: "first", value: first.value },
      { tag: "second", value: second.value },
    ]) {
      const response = await client.response();
      expect(response.status).toBe(200);
      expect(response.body.toString("latin1")).toMatch(new RegExp(`^GET /${tag} HTTP/1.1\r\n`));
      const fields = forwardedFields(response.body, `x-${tag}-`);
      expect(fields.length).toBeGreaterThan(8);
      for (const [, v] of fields) expect(v).toBe(value);
    }
    client.close();
  });

  it("a head of exactly 64 KiB arriving in many reads is forwarded; one byte more is 431", async () => {
    for (const [total, status] of [
      [64 * 1024, 200],
      [64 * 1024 + 1, 431],
    ] as const) {
      const start = Buffer.from("GET / HTTP/1.1\r\nHost: hello\r\n", "latin1");
      const field = `x-a: ${"b".repeat(total - start.length - 9)}\r\n\r\n`;
      const head = Buffer.concat([start, Buffer.from(field, "latin1")]);
      expect(head.length).toBe(total);
      const client = await RawClient.open(remora.port());
      await trickle(client, head, 9 * 1024);
      expect((await client.response()).status).toBe(status);
      client.close();
    }
  });
});
