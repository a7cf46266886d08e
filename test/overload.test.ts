/**
 * Overload protection and descriptor exhaustion (issue 14, items 1 and 3) against a real remora
 * in a child process: `ulimit -n` in a shell that then execs node, so the limit is the child's.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CLI, type HttpBackend, httpBackend, RawClient, startRemora } from "./harness.js";

interface Child {
  readonly child: ChildProcess;
  readonly port: number;
  readonly adminPort: number;
  /** Log lines (JSON) so far. */
  lines(): { msg: string; [key: string]: unknown }[];
  stop(): Promise<void>;
}

const running: Child[] = [];
const backends: HttpBackend[] = [];
const clients: Socket[] = [];

afterEach(async () => {
  for (const socket of clients.splice(0)) socket.destroy();
  for (const child of running.splice(0)) await child.stop();
  for (const backend of backends.splice(0)) await backend.close();
});

/** remora with `files` descriptors at most, from a config file it watches. */
async function spawnLimited(configPath: string, files: number): Promise<Child> {
  const child = spawn(
    "sh",
    ["-c", `ulimit -n ${files} && exec "$0" "$@"`, process.execPath, CLI, "run", "-c", configPath],
    {
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let stderr = "";
  const lines = () =>
    stderr
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as { msg: string; [key: string]: unknown });
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on("data", (d: Buffer) => {
      stderr += d.toString();
      const ready = lines();
      if (
        ready.some((l) => l.msg === "listener ready") &&
        ready.some((l) => l.msg === "admin API listening")
      )
        resolve();
    });
    child.once("exit", (code) => reject(new Error(`remora exited ${code}: ${stderr}`)));
  });
  const all = lines();
  const handle: Child = {
    child,
    port: all.find((l) => l.msg === "listener ready")!.port as number,
    adminPort: all.find((l) => l.msg === "admin API listening")!.port as number,
    lines,
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill("SIGKILL");
      await once(child, "exit");
    },
  };
  running.push(handle);
  return handle;
}

function writeConfig(backend: HttpBackend, overload: string): string {
  const dir = mkdtempSync(join(tmpdir(), "remora-overload-"));
  const path = join(dir, "remora.yaml");
  writeFileSync(path, configText(backend, overload));
  return path;
}

function configText(backend: HttpBackend, overload: string): string {
  return `
admin: { port: 0 }
probes: { port: null }
metrics: { port: null }
listeners:
  - { name: outbound, kind: outbound, port: 0 }
services:
  - name: web
    endpoints: [{ address: "${backend.address}" }]
${overload}
`;
}

/** Poll until `check` holds (no fixed sleeps in assertions; the deadline only bounds a failure). */
async function until(
  check: () => boolean | Promise<boolean>,
  what: string,
  ms = 15_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Open `count` connections; each reports whether the server has closed it. */
async function openMany(
  port: number,
  count: number,
): Promise<{ socket: Socket; closed: boolean }[]> {
  const opened = await Promise.all(
    Array.from({ length: count }, async () => {
      const socket = connect(port, "127.0.0.1");
      socket.on("error", () => {});
      clients.push(socket);
      const entry = { socket, closed: false };
      socket.on("close", () => (entry.closed = true));
      await Promise.race([once(socket, "connect"), once(socket, "close")]);
      return entry;
    }),
  );
  return opened;
}

async function get(port: number, close = true): Promise<{ status: number; head: string }> {
  const response = await RawClient.exchange(
    port,
    `GET / HTTP/1.1\r\nHost: web\r\n${close ? "Connection: close\r\n" : ""}\r\n`,
  );
  return { status: response.status, head: response.head };
}

async function scrape(adminPort: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${adminPort}/stats/prometheus`);
  return response.text();
}

function sample(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

describe("descriptor exhaustion (ulimit -n 128)", () => {
  it("the default connection cap, derived from the limit, refuses connections past it: counted, logged with a count; requests still work", async () => {
    const backend = await httpBackend();
    backends.push(backend);
    const remora = await spawnLimited(writeConfig(backend, ""), 128);
    const start = remora.lines().find((l) => l.msg === "overload protection")!;
    // (128 - 64) / 2: the reserve, then half for the upstream side.
    expect(start).toMatchObject({ maxDownstreamConnections: 32, descriptorLimit: 128 });

    const opened = await openMany(remora.port, 150);
    await until(() => opened.filter((c) => c.closed).length === 150 - 32, "118 refused");
    // A held connection still gets its request through: descriptors remain for the upstream.
    const held = opened.find((c) => !c.closed)!.socket;
    held.write("GET / HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n");
    const [reply] = (await once(held, "data")) as [Buffer];
    expect(reply.toString("latin1")).toMatch(/^HTTP\/1\.1 200 /);

    const refusedTotal = () =>
      remora
        .lines()
        .filter((l) => l.msg.startsWith("downstream connections refused"))
        .reduce((sum, l) => sum + (l.count as number), 0);
    await until(() => refusedTotal() === 118, "refusal log lines adding up to 118");
    const limitLines = remora
      .lines()
      .filter((l) => l.msg.startsWith("overload: downstream connection limit reached"));
    expect(limitLines).toHaveLength(1);
    expect(remora.lines().some((l) => l.msg.startsWith("file descriptors exhausted"))).toBe(false);

    for (const c of opened) c.socket.destroy();
    await until(
      async () => (await get(remora.port)).status === 200,
      "a request after the clients left",
    );
    const text = await scrape(remora.adminPort);
    expect(sample(text, 'remora_downstream_connections_rejected_total{listener="outbound"}')).toBe(
      118,
    );
    expect(sample(text, "remora_overload_max_downstream_connections")).toBe(32);
    expect(sample(text, "remora_descriptor_limit")).toBe(128);
  });

  it("with the cap raised past the limit, exhaustion is detected and logged, upstream EMFILE says so, and accepting resumes", async () => {
    const backend = await httpBackend();
    backends.push(backend);
    const remora = await spawnLimited(
      writeConfig(backend, "overload: { maxDownstreamConnections: 100000 }"),
      128,
    );
    const opened = await openMany(remora.port, 200);
    // The runtime (libuv) closes what it cannot accept, without telling remora: the probe sees it.
    await until(
      () => remora.lines().some((l) => l.msg.startsWith("file descriptors exhausted")),
      "the exhaustion log line",
    );
    const exhausted = remora.lines().find((l) => l.msg.startsWith("file descriptors exhausted"))!;
    expect(exhausted).toMatchObject({ code: "EMFILE", descriptorLimit: 128 });
    // A held connection's request needs an upstream connection: no descriptor, so 502 UF, and
    // the log says why.
    const held = opened.find((c) => !c.closed)!.socket;
    held.write("GET / HTTP/1.1\r\nHost: web\r\n\r\n");
    const [reply] = (await once(held, "data")) as [Buffer];
    expect(reply.toString("latin1")).toMatch(/^HTTP\/1\.1 502 [\s\S]*x-remora-response-flags: UF/);
    await until(
      () =>
        remora.lines().some((l) => l.msg === "upstream connects failed: no file descriptor left"),
      "the upstream EMFILE log line",
    );
    // One per attempt: the default retry policy retries a connect failure.
    const upstream = remora
      .lines()
      .filter((l) => l.msg === "upstream connects failed: no file descriptor left");
    expect(upstream.every((l) => l.code === "EMFILE")).toBe(true);
    const upstreamFailures = upstream.reduce((sum, l) => sum + (l.count as number), 0);
    expect(upstreamFailures).toBeGreaterThanOrEqual(1);

    for (const c of opened) c.socket.destroy();
    await until(
      () => remora.lines().some((l) => l.msg === "file descriptors available again"),
      "the recovery log line",
    );
    expect((await get(remora.port)).status).toBe(200);
    const text = await scrape(remora.adminPort);
    expect(sample(text, "remora_descriptors_exhausted_total")).toBe(1);
    expect(sample(text, "remora_descriptors_exhausted")).toBe(0);
    expect(sample(text, 'remora_upstream_connect_descriptor_errors_total{code="EMFILE"}')).toBe(
      upstreamFailures,
    );
  });
});

describe("overload protection", () => {
  it("closes connections past maxDownstreamConnections at once, counts them, and accepts again once others close", async () => {
    const backend = await httpBackend();
    backends.push(backend);
    const remora = await startRemora(
      configText(backend, "overload: { maxDownstreamConnections: 3 }"),
    );
    try {
      const port = remora.port();
      const held = await Promise.all([1, 2, 3].map(() => RawClient.open(port)));
      // Each is served: the cap counts open connections, not requests.
      for (const client of held) {
        client.write("GET / HTTP/1.1\r\nHost: web\r\n\r\n");
        expect((await client.response()).status).toBe(200);
      }
      const refused = await Promise.all([1, 2].map(() => RawClient.open(port)));
      for (const client of refused) {
        client.write("GET / HTTP/1.1\r\nHost: web\r\n\r\n");
        expect(await client.waitClosed()).toBe(true);
        expect(client.take()).toBe("");
      }
      const text = await remora.runtime.metrics!.exposition();
      expect(
        sample(text, 'remora_downstream_connections_rejected_total{listener="outbound"}'),
      ).toBe(2);
      expect(sample(text, 'remora_overload_active{action="reject_incoming_connections"}')).toBe(1);
      expect(sample(text, "remora_overload_downstream_connections")).toBe(3);

      held[0]!.close();
      await until(() => remora.runtime.overload.open === 2, "the released connection");
      expect((await get(port)).status).toBe(200);
      for (const client of held) client.close();
    } finally {
      await remora.stop();
    }
  });

  it("past maxHeapMb answers 503 OM with Connection: close; a reload raising it brings 200 back", async () => {
    const backend = await httpBackend();
    backends.push(backend);
    // 1 MiB: far below any Node process's heap, so the first sample enters the state.
    const path = writeConfig(backend, "overload: { maxHeapMb: 1 }");
    const remora = await spawnLimited(path, 1024);
    await until(
      () => remora.lines().some((l) => l.msg.startsWith("overload: heap above")),
      "the heap transition log line",
    );
    const refused = await get(remora.port, false);
    expect(refused.status).toBe(503);
    expect(refused.head).toMatch(/x-remora-response-flags: OM/);
    expect(refused.head).toMatch(/connection: close/i);

    writeFileSync(path, configText(backend, "overload: { maxHeapMb: 100000 }"));
    const reload = await fetch(`http://127.0.0.1:${remora.adminPort}/reload`, { method: "POST" });
    expect(reload.status).toBe(200);
    await until(
      () => remora.lines().some((l) => l.msg.startsWith("overload: heap back under")),
      "the recovery log line",
    );
    const served = await get(remora.port, false);
    expect(served.status).toBe(200);
    expect(served.head).not.toMatch(/connection: close/i);
    expect(remora.lines().filter((l) => l.msg.startsWith("overload: heap above"))).toHaveLength(1);
    const text = await scrape(remora.adminPort);
    expect(sample(text, 'remora_overload_active{action="stop_accepting_requests"}')).toBe(0);
    expect(sample(text, "remora_overload_heap_entered_total")).toBe(1);
    // Istio's request metric carries the flag, so dashboards see the refused request.
    expect(text).toMatch(
      /istio_requests_total\{[^}]*response_code="503"[^}]*response_flags="OM"[^}]*\} 1\n/,
    );
  });
});
