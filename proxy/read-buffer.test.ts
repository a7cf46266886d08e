import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { type AddressInfo, connect, createServer, type Server, Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { adoptAccepted, connectReading, copyOf, ReadBuffer } from "./read-buffer.js";

const servers: Server[] = [];
const sockets: Socket[] = [];

afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
  for (const s of servers.splice(0)) s.close();
});

/** A paused-on-connect server whose sockets are adopted into ReadBuffers. */
async function adoptingServer(): Promise<{
  port: number;
  accepted: Promise<{ socket: Socket; reader: ReadBuffer; chunks: Buffer[] }>;
}> {
  let resolve!: (v: { socket: Socket; reader: ReadBuffer; chunks: Buffer[] }) => void;
  const accepted = new Promise<{ socket: Socket; reader: ReadBuffer; chunks: Buffer[] }>(
    (r) => (resolve = r),
  );
  const server = createServer({ pauseOnConnect: true }, (raw) => {
    const reader = new ReadBuffer();
    const chunks: Buffer[] = [];
    reader.sink = (chunk) => chunks.push(chunk);
    const socket = adoptAccepted(raw, reader, { allowHalfOpen: true, writableHighWaterMark: 1 });
    // Fails loudly if a Node upgrade makes the listener fall back to 'data' events.
    if (socket === undefined) throw new Error("adoptAccepted fell back on this Node");
    sockets.push(socket);
    resolve({ socket, reader, chunks });
  });
  servers.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return { port: (server.address() as AddressInfo).port, accepted };
}

/** A connected socket whose writes stay queued (corked) until `release` returns what arrives. */
async function stalledDestination(): Promise<{ socket: Socket; release(): Promise<string> }> {
  let received = "";
  let closed!: Promise<unknown>;
  const server = createServer((peer) => {
    peer.on("data", (d: Buffer) => (received += d.toString("latin1")));
    closed = once(peer, "end");
  });
  servers.push(server);
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const socket = connect((server.address() as AddressInfo).port, "127.0.0.1");
  sockets.push(socket);
  await once(socket, "connect");
  socket.cork();
  return {
    socket,
    release: async () => {
      socket.uncork();
      socket.end();
      await closed;
      return received;
    },
  };
}

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(check()).toBe(true);
}

describe("ReadBuffer", () => {
  it("adopts accepted sockets on this Node; quiet sockets share one buffer", async () => {
    const { port, accepted } = await adoptingServer();
    const a = connect(port, "127.0.0.1");
    sockets.push(a);
    const first = await accepted;
    a.write("first");
    await until(() => first.chunks.length === 1);
    // Kept past the callback, so copied: the next read anywhere overwrites the buffer.
    const kept = copyOf(first.chunks[0]!);
    const second = await adoptingServer();
    const b = connect(second.port, "127.0.0.1");
    sockets.push(b);
    const other = await second.accepted;
    b.write("second");
    await until(() => other.chunks.length === 1);
    expect(kept.toString()).toBe("first");
    expect(other.chunks[0]!.toString()).toBe("second");
    expect(other.chunks[0]!.buffer).toBe(first.chunks[0]!.buffer);
    expect(first.chunks[0]!.toString()).toBe("secon");
    expect(first.reader.shared).toBe(true);
  });

  it("moves to a 64 KiB buffer of its own while a body streams, and back after a short read", async () => {
    const { port, accepted } = await adoptingServer();
    const client = connect(port, "127.0.0.1");
    sockets.push(client);
    const { reader } = await accepted;
    const sizes: number[] = [];
    let total = 0;
    reader.sink = (c) => {
      sizes.push(c.buffer.byteLength);
      total += c.length;
    };
    client.write(Buffer.alloc(4 * 1024 * 1024, 1));
    await until(() => total === 4 * 1024 * 1024);
    expect(sizes[0]).toBe(16384);
    expect(sizes).toContain(65536);
    client.write("x");
    await until(() => total === 4 * 1024 * 1024 + 1);
    client.write("y");
    await until(() => total === 4 * 1024 * 1024 + 2);
    expect(sizes.at(-1)).toBe(16384);
    expect(reader.shared).toBe(true);
  });

  it("stays on the shared buffer through full reads while its owner expects no body", async () => {
    const { port, accepted } = await adoptingServer();
    const client = connect(port, "127.0.0.1");
    sockets.push(client);
    const { reader } = await accepted;
    let asked = 0;
    reader.mayStream = () => {
      asked++;
      return false;
    };
    const sizes = new Set<number>();
    let total = 0;
    reader.sink = (c) => {
      sizes.add(c.buffer.byteLength);
      total += c.length;
    };
    client.write(Buffer.alloc(1024 * 1024, 1));
    await until(() => total === 1024 * 1024);
    expect([...sizes]).toEqual([16384]);
    expect(asked).toBeGreaterThan(0);
    expect(reader.shared).toBe(true);
  });

  it("discard() releases its own buffer: later reads land in one buffer all discarders share", async () => {
    const first = await adoptingServer();
    const a = connect(first.port, "127.0.0.1");
    sockets.push(a);
    const one = await first.accepted;
    const buffers: ArrayBufferLike[] = [];
    let total = 0;
    one.reader.sink = (c) => {
      buffers.push(c.buffer);
      total += c.length;
    };
    a.write(Buffer.alloc(1024 * 1024, 1));
    await until(() => total === 1024 * 1024);
    expect(one.reader.shared).toBe(false); // streaming: a 64 KiB buffer of its own
    const own = buffers.at(-1)!;
    one.reader.discard();
    expect(one.reader.shared).toBe(true);
    buffers.length = 0;
    a.write(Buffer.alloc(512 * 1024, 2));
    await until(() => total === 1536 * 1024);
    // The read already queued into its own buffer comes first; after it, the discard buffer.
    const discardBuffer = buffers.at(-1)!;
    expect(discardBuffer.byteLength).toBe(65536);
    expect(discardBuffer).not.toBe(own);
    expect(buffers.filter((b) => b !== own && b !== discardBuffer)).toEqual([]);

    const second = await adoptingServer();
    const b = connect(second.port, "127.0.0.1");
    sockets.push(b);
    const two = await second.accepted;
    two.reader.discard();
    const seen = new Set<ArrayBufferLike>();
    let got = 0;
    two.reader.sink = (c) => {
      seen.add(c.buffer);
      got += c.length;
    };
    b.write(Buffer.alloc(256 * 1024, 3));
    await until(() => got === 256 * 1024);
    // Its first read went to the shared 16 KiB buffer (set before discard()); then the same one.
    expect([...seen].filter((x) => x.byteLength === 65536)).toEqual([discardBuffer]);
  });

  it("write() copies a chunk of the shared buffer, so a pending write keeps its bytes", async () => {
    const { port, accepted } = await adoptingServer();
    const client = connect(port, "127.0.0.1");
    sockets.push(client);
    const { reader, chunks } = await accepted;
    const dest = await stalledDestination();
    reader.sink = (chunk) => {
      chunks.push(chunk);
      if (chunks.length === 1) reader.write(dest.socket, chunk);
    };
    client.write("kept");
    await until(() => chunks.length === 1);
    client.write("over"); // lands in the same shared buffer
    await until(() => chunks.length === 2);
    expect(dest.socket.writableLength).toBe(4);
    expect(await dest.release()).toBe("kept");
  });

  it("write() from a buffer of its own lends it until the write is done", async () => {
    const { port, accepted } = await adoptingServer();
    const client = connect(port, "127.0.0.1");
    sockets.push(client);
    const { reader } = await accepted;
    const dest = await stalledDestination();
    let total = 0;
    let written = "";
    reader.sink = (chunk) => {
      total += chunk.length;
      // The first chunk read into a buffer of its own goes to the stalled destination.
      if (written === "" && !reader.shared) {
        written = chunk.toString("latin1");
        reader.write(dest.socket, chunk);
      }
    };
    const body = randomBytes(1_000_000);
    client.write(body);
    await until(() => total === body.length);
    expect(await dest.release()).toBe(written);
  });

  it("connectReading delivers chunks and then 'end' on the peer's FIN", async () => {
    const server = createServer((s) => s.end("bye"));
    servers.push(server);
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const reader = new ReadBuffer();
    const got: string[] = [];
    reader.sink = (chunk) => got.push(chunk.toString());
    const socket = connectReading(
      { host: "127.0.0.1", port: (server.address() as AddressInfo).port },
      reader,
    );
    sockets.push(socket);
    await once(socket, "end");
    expect(got.join("")).toBe("bye");
  });

  it("adoptAccepted declines a socket without a handle", () => {
    expect(adoptAccepted(new Socket(), new ReadBuffer(), ADOPT)).toBeUndefined();
  });
});

const ADOPT = { allowHalfOpen: true, writableHighWaterMark: 1 };
