/** `remora status` through the real CLI: against a live remora, a closed port, and strangers. */
import { execFile } from "node:child_process";
import { once } from "node:events";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { promisify } from "node:util";
import { afterEach, describe, expect, it } from "vitest";
import { CLI, httpBackend, RawClient, type SpawnedRemora, spawnRemora } from "./harness.js";

const run = promisify(execFile);

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close();
});

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  server.close();
  await once(server, "close");
  return port;
}

describe("remora status", () => {
  it("prints a table of services and endpoints from a live remora, and --json", async () => {
    const ok = await httpBackend((_req, res) => res.end("ok"));
    const failing = await httpBackend((_req, res) => {
      res.statusCode = 500;
      res.end("down");
    });
    cleanup.push(
      () => ok.close(),
      () => failing.close(),
    );
    const remora: SpawnedRemora = await spawnRemora([
      "run",
      "--listen",
      "0",
      "--admin-port",
      "0",
      "--service",
      `hello=${ok.address},${failing.address}`,
    ]);
    cleanup.push(() => remora.stop("SIGKILL"));
    const port = remora.ports.get("outbound")!;
    for (let i = 0; i < 8; i++)
      await RawClient.exchange(port, "GET / HTTP/1.1\r\nHost: hello\r\n\r\n");
    const admin = `http://127.0.0.1:${remora.adminPort}`;

    const table = await cli(["status", "--admin", admin]);
    expect(table.stderr).toBe("");
    expect(table.code).toBe(0);
    const lines = table.stdout.split("\n");
    expect(lines[0]).toMatch(new RegExp(`^remora at ${admin}: LIVE, up \\d+s, Node v\\d+`));
    expect(lines[1]).toMatch(/^config [0-9a-f]{16}, applied .*; reloads 0 ok, 0 failed$/);
    expect(lines[3]).toBe(`listeners: outbound (outbound) 127.0.0.1:${port}`);
    const rows = lines.slice(5, -1).map((line) => line.split(/\s+/));
    expect(rows[0]).toEqual([
      "SERVICE",
      "ENDPOINT",
      "HEALTH",
      "REQ/S",
      "ERRORS",
      "P50",
      "P99",
      "FLAGS",
    ]);
    const [all, first, second] = rows.slice(1);
    expect(all!.slice(0, 3)).toEqual(["hello.default", "(all)", "2/2"]);
    expect(Number(all![3])).toBeGreaterThan(0);
    expect(all![4]).toBe("50.0%");
    expect(all![6]).toMatch(/^[\d.]+m?s$/);
    expect(first!.slice(0, 3)).toEqual(["hello.default", ok.address, "HEALTHY"]);
    expect(first![4]).toBe("0.0%");
    expect(second!.slice(0, 3)).toEqual(["hello.default", failing.address, "HEALTHY"]);
    expect(second![4]).toBe("100.0%");
    expect(rows).toHaveLength(4);

    // A bare port means 127.0.0.1.
    const byPort = await cli(["status", "--admin", String(remora.adminPort)]);
    expect(byPort.code).toBe(0);
    expect(byPort.stdout).toContain(`${failing.address}  HEALTHY`);

    const json = await cli(["status", "--admin", admin, "--json"]);
    expect(json.code).toBe(0);
    const snapshot = JSON.parse(json.stdout);
    expect(snapshot.services[0].name).toBe("hello.default");
    expect(snapshot.services[0].lastMinute.requests).toBe(8);
    expect(snapshot.services[0].endpoints.map((e: { address: string }) => e.address)).toEqual([
      ok.address,
      failing.address,
    ]);
  });

  it("exits 1 with a clear message when nothing listens", async () => {
    const port = await closedPort();
    const res = await cli(["status", "--admin", `http://127.0.0.1:${port}`]);
    expect(res.code).toBe(1);
    expect(res.stdout).toBe("");
    expect(res.stderr).toBe(
      `remora status: nothing answers at http://127.0.0.1:${port} (connection refused). Is remora running? Its admin API listens on admin.port (default 15000); point --admin at it.\n`,
    );
  });

  it("gives up after --timeout when a server accepts and never answers", async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => sockets.add(socket));
    silent.listen(0, "127.0.0.1");
    await once(silent, "listening");
    cleanup.push(async () => {
      for (const s of sockets) s.destroy();
      silent.close();
    });
    const { port } = silent.address() as AddressInfo;
    const res = await cli(["status", "--admin", `127.0.0.1:${port}`, "--timeout", "300ms"]);
    expect(res.code).toBe(1);
    expect(res.stderr).toBe(
      `remora status: no answer from http://127.0.0.1:${port} within 0.3s (--timeout).\n`,
    );
  });

  it("says when what answers is not a remora admin API", async () => {
    const other = await httpBackend((_req, res) => {
      res.statusCode = 404;
      res.end("not here");
    });
    cleanup.push(() => other.close());
    const res = await cli(["status", "--admin", `http://${other.address}`]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain(`http://${other.address}/dashboard.json answered 404`);
  });

  it("has help, and rejects a bad --timeout with exit 2", async () => {
    const help = await cli(["status", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("remora status [--admin URL] [--json]");
    const bad = await cli(["status", "--timeout", "soon"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--timeout: expected a duration like 5s, got "soon"');
  });
});
