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

async function until(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(check()).toBe(true);
}

describe("ReadBuffer", () => {
  it("adopts an accepted socket on this Node and reads into one reused buffer", async () => {
    const { port, accepted } = await adoptingServer();
    const client = connect(port, "127.0.0.1");
    sockets.push(client);
    const { chunks } = await accepted;
    client.write("first");
    await until(() => chunks.length === 1);
    // Kept past the callback, so copied: the next read overwrites the buffer.
    const first = copyOf(chunks[0]!);
    client.write("second");
    await until(() => chunks.length === 2);
    expect(first.toString()).toBe("first");
    expect(chunks[1]!.toString()).toBe("second");
    expect(chunks[1]!.buffer).toBe(chunks[0]!.buffer);
    expect(chunks[0]!.toString()).toBe("secon");
  });

  it("grows to 64 KiB while a body streams and shrinks back after a short read", async () => {
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
    expect(sizes[0]).toBe(4096);
    expect(sizes).toContain(65536);
    client.write("x");
    await until(() => total === 4 * 1024 * 1024 + 1);
    client.write("y");
    await until(() => total === 4 * 1024 * 1024 + 2);
    expect(sizes.at(-1)).toBe(4096);
  });

  it("reads into a new buffer once a chunk is lent to a write that has not finished", async () => {
    const { port, accepted } = await adoptingServer();
    const client = connect(port, "127.0.0.1");
    sockets.push(client);
    const { socket, reader, chunks } = await accepted;
    // A destination that never reads: writes to it stay queued (writableHighWaterMark is 1).
    const sink = createServer({ pauseOnConnect: true }, () => {});
    servers.push(sink);
    sink.listen(0, "127.0.0.1");
    await once(sink, "listening");
    const dest = connect((sink.address() as AddressInfo).port, "127.0.0.1");
    sockets.push(dest);
    await once(dest, "connect");
    dest.cork(); // nothing leaves: the write below is certainly still pending

    // As in the proxy: the chunk is written on, and noted, inside the read callback.
    reader.sink = (chunk) => {
      chunks.push(chunk);
      if (chunks.length === 1) {
        dest.write(chunk);
        reader.noteWrite(dest);
      }
    };
    client.write("lent");
    await until(() => chunks.length === 1);
    client.write("next");
    await until(() => chunks.length === 2);
    expect(chunks[1]!.buffer).not.toBe(chunks[0]!.buffer);
    expect(chunks[0]!.toString()).toBe("lent");
    expect(socket.destroyed).toBe(false);
  });

  it("keeps the buffer when the write finished at once", async () => {
    const { port, accepted } = await adoptingServer();
    const client = connect(port, "127.0.0.1");
    sockets.push(client);
    const { reader, chunks } = await accepted;
    const idle = new Socket(); // nothing queued: writableLength is 0
    reader.sink = (chunk) => {
      chunks.push(chunk);
      reader.noteWrite(idle);
    };
    client.write("a");
    await until(() => chunks.length === 1);
    client.write("b");
    await until(() => chunks.length === 2);
    expect(chunks[1]!.buffer).toBe(chunks[0]!.buffer);
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
