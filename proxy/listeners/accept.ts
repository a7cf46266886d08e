import type { AddressInfo, Server } from "node:net";

/**
 * Listening sockets for one listener.
 *
 * libuv accepts one connection per event-loop turn (since libuv 1.45, libuv PR #3696). Under load
 * a turn takes milliseconds, so a burst of new connections waits in the kernel's accept queue:
 * measured here, 500 connections arriving while 250 others kept remora busy were accepted over
 * 1.4 s (Node 20) and 2.8 s (Node 22, one socket), one per turn. So a listener binds several
 * sockets to its port with SO_REUSEPORT (`server.listen({ reusePort })`, Node 22.12+; remora needs 22.19+
 * Node remora supports); the kernel spreads new connections across them and every turn accepts
 * one per socket. Where the platform has no SO_REUSEPORT for Node (macOS, Windows) it binds one.
 *
 * SO_REUSEPORT would also let a second process of the same user bind the port silently, so the
 * port is first bound exclusively (which fails as usual when it is taken) and only then shared.
 */
export class ListenerSockets {
  readonly #make: () => Server;
  readonly #servers: Server[] = [];
  readonly #onAcceptError: (error: NodeJS.ErrnoException) => void;

  /**
   * `make` creates one server with the listener's connection handler. `onAcceptError` hears the
   * errors a bound socket reports: Node emits accept() failures as the server's 'error', and one
   * with no listener would throw and end the process. libuv keeps accepting after one by itself.
   * EMFILE and ENFILE rarely arrive here: libuv closes a reserved descriptor, accepts and closes
   * the waiting connections with it, and reports nothing (uv__emfile_trick, deps/uv/src/unix/
   * stream.c); overload/ counts those through its connection cap and descriptor probe instead.
   */
  constructor(
    make: () => Server,
    onAcceptError: (error: NodeJS.ErrnoException) => void = () => {},
  ) {
    this.#make = make;
    this.#onAcceptError = onAcceptError;
  }

  /** How many sockets are bound (1 where SO_REUSEPORT is not available). */
  get count(): number {
    return this.#servers.length;
  }

  /** Bind `wanted` sockets (fewer when unsupported); resolves with the bound address. */
  async listen(host: string, port: number, wanted = LISTEN_SOCKETS): Promise<AddressInfo> {
    // Bound exclusively first: an error here is the familiar EADDRINUSE; port 0 picks a free port.
    const first = this.#make();
    const probe = await bind(first, { host, port, backlog: BACKLOG }, this.#onAcceptError);
    if (wanted <= 1 || !reusePortSupported()) {
      this.#servers.push(first);
      return probe;
    }
    await new Promise<void>((resolve) => first.close(() => resolve()));
    let bound: AddressInfo | undefined;
    try {
      for (let i = 0; i < wanted; i++) {
        const server = this.#make();
        const options = { host, port: probe.port, backlog: BACKLOG, reusePort: true };
        bound = await bind(server, options, this.#onAcceptError);
        this.#servers.push(server);
      }
    } catch (error) {
      this.close();
      this.#servers.length = 0;
      throw error;
    }
    return bound!;
  }

  /** Stop accepting on every socket. */
  close(): void {
    for (const server of this.#servers) server.close();
  }
}

/** Sockets per listener where they can share a port: accepts per event-loop turn. */
export const LISTEN_SOCKETS = 4;

/** Room in the kernel's accept queue per socket for a burst of connections. */
const BACKLOG = 4096;

/**
 * SO_REUSEPORT through server.listen({ reusePort }): Linux, on Node 22.12+ / 23.1+. Every Node
 * remora supports has it (node-version.ts); the version test remains for the benchmark, which
 * runs remora on an older Node (REMORA_ALLOW_UNSUPPORTED_NODE) to measure the difference.
 */
export function reusePortSupported(
  version: string = process.versions.node,
  platform: string = process.platform,
): boolean {
  if (platform !== "linux") return false;
  const [major = 0, minor = 0] = version.split(".").map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

function bind(
  server: Server,
  options: { host: string; port: number; backlog: number; reusePort?: boolean },
  onAcceptError: (error: NodeJS.ErrnoException) => void,
): Promise<AddressInfo> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options, () => {
      server.off("error", reject);
      server.on("error", onAcceptError);
      resolve(server.address() as AddressInfo);
    });
  });
}
