import { once } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { LISTEN_SOCKETS, ListenerSockets, reusePortSupported } from "./accept.js";

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** ListenerSockets whose servers record which of them accepted each connection. */
function recording(): { sockets: ListenerSockets; acceptedBy: number[] } {
  const acceptedBy: number[] = [];
  let made = 0;
  const sockets = new ListenerSockets(() => {
    const index = made++;
    return createServer((socket: Socket) => {
      acceptedBy.push(index);
      socket.destroy();
    });
  });
  cleanups.push(() => sockets.close());
  return { sockets, acceptedBy };
}

async function connectMany(port: number, n: number): Promise<void> {
  await Promise.all(
    Array.from({ length: n }, async () => {
      const client = connect(port, "127.0.0.1");
      client.on("error", () => {});
      await once(client, "close");
    }),
  );
}

describe("reusePortSupported", () => {
  it.each([
    ["20.20.0", "linux", false],
    ["22.11.0", "linux", false],
    ["22.12.0", "linux", true],
    ["23.0.0", "linux", false],
    ["23.1.0", "linux", true],
    ["24.9.0", "linux", true],
    ["24.9.0", "darwin", false],
  ])("Node %s on %s: %s", (version, platform, expected) => {
    expect(reusePortSupported(version, platform)).toBe(expected);
  });
});

describe("ListenerSockets", () => {
  it("binds one socket per listener, or several where the port can be shared", async () => {
    const { sockets, acceptedBy } = recording();
    const address = await sockets.listen("127.0.0.1", 0, LISTEN_SOCKETS);
    expect(address.port).toBeGreaterThan(0);
    // Every supported Node (22.12+) shares the port on Linux: the normal path, not an option.
    expect(sockets.count).toBe(process.platform === "linux" ? LISTEN_SOCKETS : 1);
    await connectMany(address.port, 8);
    expect(acceptedBy.length).toBe(8);
  });

  it("still fails with EADDRINUSE when another server holds the port", async () => {
    const other: Server = createServer();
    other.listen(0, "127.0.0.1");
    await once(other, "listening");
    cleanups.push(() => other.close());
    const port = (other.address() as { port: number }).port;
    const { sockets } = recording();
    await expect(sockets.listen("127.0.0.1", port, LISTEN_SOCKETS)).rejects.toMatchObject({
      code: "EADDRINUSE",
    });
  });

  it("does not share its port with a second listener (exclusive bind first)", async () => {
    const first = recording();
    const { port } = await first.sockets.listen("127.0.0.1", 0, LISTEN_SOCKETS);
    const second = recording();
    await expect(second.sockets.listen("127.0.0.1", port, LISTEN_SOCKETS)).rejects.toMatchObject({
      code: "EADDRINUSE",
    });
  });

  it.skipIf(!reusePortSupported())(
    "spreads a burst of connections over its sockets (Node 22.12+ on Linux)",
    async () => {
      const { sockets, acceptedBy } = recording();
      const { port } = await sockets.listen("127.0.0.1", 0, LISTEN_SOCKETS);
      await connectMany(port, 64);
      expect(acceptedBy.length).toBe(64);
      expect(new Set(acceptedBy).size).toBeGreaterThan(1);
    },
  );
});
