import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer as createHttpServer, type IncomingHttpHeaders } from "node:http";
import { type AddressInfo, createServer as createTcpServer, type Socket } from "node:net";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Agent, Dispatcher } from "undici";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { chiSquare, seededRandom } from "../lb/testing.js";
import {
  type ActiveCheckEvent,
  ActiveHealthChecker,
  type ActiveHealthCheckerOptions,
  type CheckLogger,
  type CheckTarget,
  DEFAULT_HEALTH_CHECK_SETTINGS,
  type HealthCheckSettings,
} from "./active-checker.js";
import { type FlagReason, HealthFlag, type HealthFlagSink } from "./health.js";

// ---------------------------------------------------------------------------------------------
// Plumbing
// ---------------------------------------------------------------------------------------------

/** Every sink call in order: "set ID REASON" or "clear ID"; `onSet`/`onClear` run inside. */
class RecordingSink implements HealthFlagSink {
  readonly calls: string[] = [];
  readonly flags = new Map<string, FlagReason>();
  onSet: ((id: string) => void) | undefined;
  onClear: ((id: string) => void) | undefined;

  set(endpointId: string, reason: FlagReason): void {
    this.calls.push(`set ${endpointId} ${reason.reason}`);
    this.flags.set(endpointId, reason);
    this.onSet?.(endpointId);
  }

  clear(endpointId: string, flag: HealthFlag): void {
    expect(flag).toBe(HealthFlag.FAILED_ACTIVE_CHECK);
    this.calls.push(`clear ${endpointId}`);
    this.flags.delete(endpointId);
    this.onClear?.(endpointId);
  }
}

/** Log lines as "warn MSG ENDPOINT REASON". */
class RecordingLogger implements CheckLogger {
  readonly lines: string[] = [];
  warn(obj: { endpoint?: string; reason?: string }, msg: string): void {
    this.lines.push(`warn ${msg} ${obj.endpoint} ${obj.reason}`);
  }
  info(obj: { endpoint?: string; reason?: string }, msg: string): void {
    this.lines.push(`info ${msg} ${obj.endpoint} ${obj.reason}`);
  }
}

interface SeenRequest {
  /** Which connection (numbered in accept order) carried it. */
  readonly connection: number;
  readonly method: string | undefined;
  readonly url: string | undefined;
  readonly headers: IncomingHttpHeaders;
}

interface Backend extends CheckTarget {
  readonly requests: SeenRequest[];
  /** Connections accepted / closed so far. */
  readonly opened: () => number;
  readonly closed: () => number;
  close(): Promise<void>;
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/**
 * A real HTTP server on 127.0.0.1:0. `answer(n)` picks the status of the n-th request (0-based),
 * or "hang" (never answer) or "hang-body" (send the head, never the end of the body).
 */
async function httpBackend(
  answer: (n: number) => number | "hang" | "hang-body",
  address = "127.0.0.1",
): Promise<Backend> {
  const requests: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  const numbers = new WeakMap<Socket, number>();
  let opened = 0;
  let closed = 0;
  const server = createHttpServer((req, res) => {
    const n = requests.length;
    const connection = numbers.get(req.socket) ?? -1;
    requests.push({ connection, method: req.method, url: req.url, headers: req.headers });
    const what = answer(n);
    if (what === "hang") return;
    if (what === "hang-body") {
      res.writeHead(200, { "content-length": "10" });
      res.write("12345");
      return;
    }
    res.writeHead(what, { "content-type": "text/plain" });
    res.end(`status ${what}\n`);
  });
  server.on("connection", (socket: Socket) => {
    numbers.set(socket, opened++);
    sockets.add(socket);
    socket.on("close", () => {
      closed++;
      sockets.delete(socket);
    });
  });
  server.listen(0, address);
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  const backend: Backend = {
    id: address.includes(":") ? `[${address}]:${port}` : `${address}:${port}`,
    host: address,
    port,
    requests,
    opened: () => opened,
    closed: () => closed,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, "close");
    },
  };
  cleanups.push(() => backend.close());
  return backend;
}

/** A port nobody listens on (bound once, then released). */
async function closedPort(): Promise<CheckTarget> {
  const server = createTcpServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const port = (server.address() as AddressInfo).port;
  server.close();
  await once(server, "close");
  return { id: `127.0.0.1:${port}`, host: "127.0.0.1", port };
}

/** Short real intervals: outcomes are awaited with `waitFor`, never timed. */
function settings(over: Partial<HealthCheckSettings> = {}): HealthCheckSettings {
  return { ...DEFAULT_HEALTH_CHECK_SETTINGS, intervalMs: 20, timeoutMs: 5_000, ...over };
}

function checker(
  over: Partial<HealthCheckSettings>,
  sink: HealthFlagSink,
  options: ActiveHealthCheckerOptions = {},
): ActiveHealthChecker {
  const created = new ActiveHealthChecker(settings(over), sink, options);
  cleanups.push(() => created.close());
  return created;
}

/**
 * Poll `condition` with real timers until it holds. The deadline is only a safety net for a
 * broken feature (the test fails with `what`); no test asserts how long anything took.
 */
async function waitFor(
  condition: () => boolean,
  what: string | (() => string),
  deadlineMs = 15_000,
): Promise<void> {
  const start = Date.now();
  while (!condition()) {
    if (Date.now() - start > deadlineMs) {
      throw new Error(`gave up waiting for ${typeof what === "string" ? what : what()}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

// ---------------------------------------------------------------------------------------------
// Real servers, real timers
// ---------------------------------------------------------------------------------------------

describe("ActiveHealthChecker over HTTP (real servers)", () => {
  it("marks an endpoint answering 500 unhealthy after exactly unhealthyThreshold checks, and healthy again after exactly healthyThreshold passes", async () => {
    let status = 500;
    const backend = await httpBackend(() => status);
    const sink = new RecordingSink();
    const logger = new RecordingLogger();
    const events: ActiveCheckEvent[] = [];
    const hc = checker({ unhealthyThreshold: 3, healthyThreshold: 2 }, sink, {
      logger,
      onEvent: (event) => events.push(event),
    });
    let atSet: unknown;
    let atClear: unknown;
    sink.onSet = () => {
      // Checks of one endpoint never overlap, so the server has seen exactly the checks so far.
      atSet = { requests: backend.requests.length, ...hc.stats, ...hc.describe(backend.id) };
      status = 200;
    };
    sink.onClear = () => {
      atClear = { requests: backend.requests.length, ...hc.stats, ...hc.describe(backend.id) };
    };
    hc.update([backend]);
    expect(hc.describe(backend.id)).toEqual({
      healthy: true, // new endpoints take traffic until checks say otherwise
      consecutiveFailures: 0,
      consecutiveSuccesses: 0,
      lastCheckMs: undefined,
      lastError: undefined,
    });
    await waitFor(() => sink.calls.length >= 2, "unhealthy, then healthy again");

    expect(sink.calls).toEqual([
      `set ${backend.id} GET /healthz answered 500`,
      `clear ${backend.id}`,
    ]);
    expect(atSet).toMatchObject({
      requests: 3,
      checks: 3,
      failures: 3,
      healthy: false,
      consecutiveFailures: 3,
      consecutiveSuccesses: 0,
      lastError: "GET /healthz answered 500",
    });
    expect(atClear).toMatchObject({
      requests: 5,
      checks: 5,
      failures: 3,
      healthy: true,
      consecutiveFailures: 0,
      consecutiveSuccesses: 2,
      lastError: "GET /healthz answered 500", // the last failure stays visible
    });
    expect(sink.flags.size).toBe(0);
    expect(events).toEqual([
      { kind: "unhealthy", endpointId: backend.id, reason: "GET /healthz answered 500" },
      { kind: "healthy", endpointId: backend.id, reason: "GET /healthz passed 2 checks in a row" },
    ]);
    expect(logger.lines).toEqual([
      `warn active health check: endpoint unhealthy ${backend.id} GET /healthz answered 500`,
      `info active health check: endpoint healthy again ${backend.id} GET /healthz passed 2 checks in a row`,
    ]);
  });

  it("counts only consecutive results: a pass resets the failures and a failure resets the passes", async () => {
    const script = [500, 500, 200, 500, 500, 503, 200, 404, 200, 200];
    const backend = await httpBackend((n) => script[n] ?? 200);
    const sink = new RecordingSink();
    const hc = checker({ unhealthyThreshold: 3, healthyThreshold: 2 }, sink);
    const at: number[] = [];
    sink.onSet = sink.onClear = () => at.push(backend.requests.length);
    hc.update([backend]);
    await waitFor(() => sink.calls.length >= 2, "unhealthy, then healthy again");
    expect(sink.calls).toEqual([
      `set ${backend.id} GET /healthz answered 503`,
      `clear ${backend.id}`,
    ]);
    expect(at).toEqual([6, 10]);
  });

  it("sends GET path with the Host header (the endpoint's id by default), its user-agent and connection: close", async () => {
    const a = await httpBackend(() => 200);
    const b = await httpBackend(() => 200);
    const sink = new RecordingSink();
    checker({}, sink).update([a]);
    checker({ path: "/ready?full=1", host: "api.internal" }, sink).update([b]);
    await waitFor(() => a.requests.length >= 2 && b.requests.length >= 2, "two checks each");
    expect(a.requests[0]).toMatchObject({
      method: "GET",
      url: "/healthz",
      headers: { host: a.id, "user-agent": "remora-health-check", connection: "close" },
    });
    expect(b.requests[0]).toMatchObject({
      method: "GET",
      url: "/ready?full=1",
      headers: { host: "api.internal", "user-agent": "remora-health-check", connection: "close" },
    });
    // A fresh connection per check, closed after it: no keep-alive sockets between checks.
    expect(new Set(a.requests.map((r) => r.connection)).size).toBe(a.requests.length);
    await waitFor(() => a.closed() >= 2, "the first two connections closed");
    expect(sink.calls).toEqual([]);
  });

  it("checks IPv6 endpoints (bracketed in the origin and the default Host)", async () => {
    const v6 = await httpBackend(() => 200, "::1");
    const hc = checker({}, new RecordingSink());
    hc.update([v6]);
    await waitFor(() => (hc.describe(v6.id)?.consecutiveSuccesses ?? 0) >= 1, "a pass");
    expect(v6.requests[0]?.headers.host).toBe(`[::1]:${v6.port}`);
  });

  it("fails a refused connect with the error's code", async () => {
    const refused = await closedPort();
    const sink = new RecordingSink();
    const hc = checker({ unhealthyThreshold: 1 }, sink);
    hc.update([refused]);
    await waitFor(() => sink.calls.length >= 1, "unhealthy");
    expect(sink.calls).toEqual([`set ${refused.id} GET /healthz: connect ECONNREFUSED`]);
    expect(sink.flags.get(refused.id)).toEqual({
      flag: HealthFlag.FAILED_ACTIVE_CHECK,
      source: "active-check",
      reason: "GET /healthz: connect ECONNREFUSED",
      untilMs: 0,
    });
    expect(hc.stats).toMatchObject({ checks: 1, failures: 1 });
  });

  it("fails an endpoint that never answers when the timeout passes, and closes its connection", async () => {
    const hanging = await httpBackend(() => "hang");
    const sink = new RecordingSink();
    const hc = checker({ unhealthyThreshold: 1, timeoutMs: 100 }, sink);
    hc.update([hanging]);
    await waitFor(() => sink.calls.length >= 1, "unhealthy");
    expect(sink.calls).toEqual([`set ${hanging.id} GET /healthz timed out after 100ms`]);
    expect(hc.describe(hanging.id)?.lastError).toBe("GET /healthz timed out after 100ms");
    // The timed-out check's socket is destroyed, not left open behind the next check.
    await waitFor(() => hanging.closed() >= 1, "the first check's connection closed");
  });

  it("fails an endpoint that sends a good head but never finishes the body", async () => {
    const slow = await httpBackend(() => "hang-body");
    const sink = new RecordingSink();
    const hc = checker({ unhealthyThreshold: 1, timeoutMs: 100 }, sink);
    let atSet: unknown;
    sink.onSet = () => {
      atSet = hc.stats;
    };
    hc.update([slow]);
    await waitFor(() => sink.calls.length >= 1, "unhealthy");
    expect(sink.calls).toEqual([`set ${slow.id} GET /healthz timed out after 100ms`]);
    expect(atSet).toEqual({ checks: 1, failures: 1 }); // the very first check failed
  });

  it("passes statuses inside any expectedStatuses range (inclusive) and fails the rest", async () => {
    const statuses = [200, 201, 299, 300, 302, 303, 503] as const;
    const tested = await Promise.all(statuses.map((s) => httpBackend(() => s)));
    const sink = new RecordingSink();
    const hc = checker(
      {
        unhealthyThreshold: 1,
        expectedStatuses: [
          [200, 200],
          [300, 302],
        ],
      },
      sink,
    );
    hc.update(tested);
    await waitFor(
      () => tested.every((b) => hc.describe(b.id)?.lastCheckMs !== undefined),
      "one check of every endpoint",
    );
    const verdicts = tested.map((b, i) => `${statuses[i]} ${hc.describe(b.id)?.healthy}`);
    expect(verdicts).toEqual([
      "200 true",
      "201 false",
      "299 false",
      "300 true",
      "302 true",
      "303 false",
      "503 false",
    ]);
    expect(sink.flags.get(tested[1]!.id)?.reason).toBe("GET /healthz answered 201");
  });

  it("defaults to any 2xx", async () => {
    const backends = await Promise.all([200, 204, 299, 300].map((s) => httpBackend(() => s)));
    const sink = new RecordingSink();
    const hc = checker({ unhealthyThreshold: 1 }, sink);
    hc.update(backends);
    await waitFor(
      () => backends.every((b) => hc.describe(b.id)?.lastCheckMs !== undefined),
      "one check of every endpoint",
    );
    expect(sink.calls).toEqual([`set ${backends[3]!.id} GET /healthz answered 300`]);
  });
});

describe("ActiveHealthChecker over TCP (real sockets)", () => {
  it("passes when the port accepts and fails when it refuses", async () => {
    let accepted = 0;
    const server = createTcpServer((socket) => {
      accepted++;
      socket.on("error", () => {});
      socket.end();
    });
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    cleanups.push(() => {
      server.close();
    });
    const port = (server.address() as AddressInfo).port;
    const open: CheckTarget = { id: `127.0.0.1:${port}`, host: "127.0.0.1", port };
    const refused = await closedPort();
    const sink = new RecordingSink();
    const hc = checker({ tcp: true, unhealthyThreshold: 2 }, sink);
    hc.update([open, refused]);
    await waitFor(
      () => sink.calls.length >= 1 && (hc.describe(open.id)?.consecutiveSuccesses ?? 0) >= 3,
      "the closed port unhealthy and three passes on the open one",
    );
    expect(sink.calls).toEqual([`set ${refused.id} tcp connect refused`]);
    expect(hc.describe(open.id)).toMatchObject({ healthy: true, lastError: undefined });
    expect(accepted).toBeGreaterThanOrEqual(3);
  });
});

describe("ActiveHealthChecker.update and close (real servers)", () => {
  it("stops checking departed endpoints and starts new ones", async () => {
    const a = await httpBackend(() => 200);
    const b = await httpBackend(() => 200);
    const c = await httpBackend(() => 200);
    const sink = new RecordingSink();
    const hc = checker({}, sink);
    hc.update([a, b]);
    await waitFor(() => a.requests.length >= 2 && b.requests.length >= 2, "a and b checked");
    hc.update([b, c]);
    const aSeen = a.requests.length;
    expect(hc.describe(a.id)).toBeUndefined();
    const bSeen = b.requests.length;
    // b keeps its schedule; by the time it has had five more checks, a would have had some too.
    await waitFor(
      () => b.requests.length >= bSeen + 5 && c.requests.length >= 5,
      "five more checks of b and five of c",
    );
    expect(a.requests.length).toBe(aSeen);
    expect(sink.calls).toEqual([]);
  });

  it("aborts the running check of a departed endpoint and ignores its result", async () => {
    const hanging = await httpBackend(() => "hang");
    const other = await httpBackend(() => 200);
    const sink = new RecordingSink();
    const hc = checker({ unhealthyThreshold: 1, timeoutMs: 60_000 }, sink);
    hc.update([hanging, other]);
    await waitFor(() => hanging.requests.length === 1, "a check in flight on the hanging endpoint");
    hc.update([other]);
    await waitFor(() => hanging.closed() === 1, "the in-flight check's connection closed");
    const otherSeen = other.requests.length;
    await waitFor(() => other.requests.length >= otherSeen + 5, "five more checks of the other");
    expect(hc.stats.failures).toBe(0);
    expect(sink.calls).toEqual([]);
    expect(hanging.requests.length).toBe(1);
  });

  it("keeps the state of endpoints that stay, and clears its flag when an unhealthy endpoint departs", async () => {
    const refused = await closedPort();
    const ok = await httpBackend(() => 200);
    const sink = new RecordingSink();
    const hc = checker({ unhealthyThreshold: 1 }, sink);
    hc.update([refused, ok]);
    await waitFor(() => sink.calls.length === 1, "unhealthy");
    hc.update([refused, ok]); // the same set again: nothing changes
    expect(hc.describe(refused.id)?.healthy).toBe(false);
    hc.update([ok]);
    expect(sink.calls).toEqual([
      `set ${refused.id} GET /healthz: connect ECONNREFUSED`,
      `clear ${refused.id}`,
    ]);
    // Back again: a new endpoint, healthy until checks say otherwise, so the flag is set anew.
    hc.update([ok, refused]);
    expect(hc.describe(refused.id)).toMatchObject({ healthy: true, consecutiveFailures: 0 });
    await waitFor(() => sink.calls.length === 3, "unhealthy again");
    expect(sink.calls[2]).toBe(`set ${refused.id} GET /healthz: connect ECONNREFUSED`);
  });

  it("stops for good when the sink reacts to a state change by removing the endpoint", async () => {
    const failing = await httpBackend(() => 500);
    const other = await httpBackend(() => 200);
    const sink = new RecordingSink();
    const hc = checker({ unhealthyThreshold: 1 }, sink);
    // A cluster may rebuild synchronously inside set() and hand the checker a new set at once.
    sink.onSet = () => hc.update([other]);
    hc.update([failing, other]);
    await waitFor(() => sink.calls.length === 2, "unhealthy, then dropped");
    expect(sink.calls).toEqual([
      `set ${failing.id} GET /healthz answered 500`,
      `clear ${failing.id}`,
    ]);
    const otherSeen = other.requests.length;
    await waitFor(() => other.requests.length >= otherSeen + 5, "five more checks of the other");
    expect(failing.requests.length).toBe(1);
  });

  it("stays consistent when the sink calls update() from inside an update", async () => {
    const refused = await closedPort();
    const a = await httpBackend(() => 200);
    const b = await httpBackend(() => 200);
    const sink = new RecordingSink();
    const hc = checker({ unhealthyThreshold: 1 }, sink);
    hc.update([refused, a]);
    await waitFor(() => sink.calls.length === 1, "unhealthy");
    // Dropping `refused` clears its flag; the cluster answers with a newer set at once.
    sink.onClear = () => hc.update([a, b]);
    hc.update([a]);
    expect(sink.calls).toEqual([
      `set ${refused.id} GET /healthz: connect ECONNREFUSED`,
      `clear ${refused.id}`,
    ]);
    expect(hc.describe(refused.id)).toBeUndefined();
    const aSeen = a.requests.length;
    await waitFor(
      () => a.requests.length >= aSeen + 3 && b.requests.length >= 3,
      "a still checked and b checked",
    );
  });

  it("close() aborts running checks, clears its flags, destroys its own undici Agent, and ignores later updates", async () => {
    const destroy = vi.spyOn(Agent.prototype, "destroy");
    cleanups.push(() => destroy.mockRestore());
    const hanging = await httpBackend(() => "hang");
    const refused = await closedPort();
    const sink = new RecordingSink();
    const hc = checker({ unhealthyThreshold: 1, timeoutMs: 60_000 }, sink);
    hc.update([hanging, refused]);
    await waitFor(
      () => hanging.requests.length === 1 && sink.calls.length === 1,
      "a check in flight and a flag set",
    );
    await hc.close();
    // destroy lives on undici's DispatcherBase (the Agent's clients call it too, and the
    // promise form calls itself with a callback): count distinct agents.
    const agents = [...new Set(destroy.mock.contexts)].filter(
      (context) => context instanceof Agent,
    );
    expect(agents).toHaveLength(1);
    const agent = agents[0] as Agent;
    expect(agent.destroyed).toBe(true);
    expect(sink.calls).toEqual([
      `set ${refused.id} GET /healthz: connect ECONNREFUSED`,
      `clear ${refused.id}`,
    ]);
    await waitFor(() => hanging.closed() === 1, "the in-flight check's connection closed");
    // The refused endpoint may have been checked again before close() on a loaded machine;
    // what matters is that nothing is checked after it.
    const atClose = { ...hc.stats };
    expect(atClose.checks).toBeGreaterThanOrEqual(1);
    expect(atClose.failures).toBe(atClose.checks);
    hc.update([hanging]);
    await new Promise((r) => setTimeout(r, 50));
    expect(hc.describe(hanging.id)).toBeUndefined();
    expect(hc.stats).toEqual(atClose);
    await hc.close(); // idempotent
  });

  it("close() leaves nothing that keeps a process alive (a child process exits on its own)", async () => {
    const built = fileURLToPath(new URL("../dist/health/active-checker.js", import.meta.url));
    const hanging = await httpBackend(() => "hang");
    const ok = await httpBackend(() => 200);
    // Checks one endpoint that never answers and one that does; closes when its stdin ends (the
    // hanging check is in flight by then) and must then exit without process.exit.
    const script = `
      import { ActiveHealthChecker, DEFAULT_HEALTH_CHECK_SETTINGS } from ${JSON.stringify(pathToFileURL(built).href)};
      const sink = { set() {}, clear() {} };
      const hc = new ActiveHealthChecker(
        { ...DEFAULT_HEALTH_CHECK_SETTINGS, intervalMs: 20, timeoutMs: 60000 }, sink);
      hc.update(JSON.parse(process.env.TARGETS));
      process.stdin.resume();
      process.stdin.on("end", async () => {
        await hc.close();
        process.stdout.write("closed " + hc.stats.checks + "\\n");
      });
    `;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      env: { ...process.env, TARGETS: JSON.stringify([hanging, ok]) },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (chunk) => {
      out += chunk;
    });
    child.stderr.on("data", (chunk) => {
      out += chunk;
    });
    let exit: number | null | undefined;
    child.on("exit", (code) => {
      exit = code;
    });
    cleanups.push(() => {
      if (exit === undefined) child.kill("SIGKILL");
    });
    await waitFor(
      () => hanging.requests.length === 1 && ok.requests.length >= 3,
      () => `a check in flight on the hanging endpoint and three on the other (output: ${out})`,
    );
    child.stdin.end();
    await waitFor(
      () => exit !== undefined,
      () => `the child to exit after close() (output: ${out})`,
    );
    expect(out).toMatch(/^closed \d+\n$/);
    expect(exit).toBe(0);
    expect(hanging.requests.length).toBe(1);
    await waitFor(() => hanging.closed() === 1, "the hanging check's connection closed");
  });

  it("never closes a dispatcher it was given", async () => {
    const agent = new Agent();
    cleanups.push(() => agent.destroy());
    const backend = await httpBackend(() => 200);
    const hc = checker({}, new RecordingSink(), { dispatcher: agent });
    hc.update([backend]);
    await waitFor(() => hc.stats.checks >= 1, "a check through the given agent");
    await hc.close();
    expect(agent.closed).toBe(false);
    expect(agent.destroyed).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// Scheduling, with fake timers and a fake dispatcher (no I/O)
// ---------------------------------------------------------------------------------------------

interface FakeCall {
  readonly at: number;
  readonly origin: string;
  readonly path: string;
  aborted: boolean;
}

/**
 * An undici Dispatcher that answers from `respond` synchronously (a status), or never
 * ("hang"), and records when each request was dispatched on the (fake) clock.
 */
class FakeDispatcher extends Dispatcher {
  readonly calls: FakeCall[] = [];
  /**
   * The status (default 503) or "hang". Fake-timer tests use failing statuses: a passing check
   * waits for the body's 'end', which nextTick delivers, and advanceTimersByTimeAsync does not
   * let nextTicks run before the next fake timer.
   */
  respond: (call: FakeCall) => number | "hang" = () => 503;
  destroyed = 0;

  override dispatch(
    options: Dispatcher.DispatchOptions,
    handler: Dispatcher.DispatchHandler,
  ): boolean {
    const call: FakeCall = {
      at: performance.now(),
      origin: String(options.origin),
      path: options.path,
      aborted: false,
    };
    this.calls.push(call);
    const controller = {
      aborted: false,
      paused: false,
      reason: null as unknown,
      rawHeaders: [],
      rawTrailers: [],
      abort(reason: Error) {
        if (controller.aborted) return;
        controller.aborted = true;
        call.aborted = true;
        handler.onResponseError?.(controller as never, reason);
      },
      pause() {},
      resume() {},
    };
    handler.onRequestStart?.(controller as never, {});
    const status = this.respond(call);
    if (status !== "hang") {
      handler.onResponseStart?.(controller as never, status, {}, "");
      handler.onResponseEnd?.(controller as never, {});
    }
    return true;
  }

  override close(): Promise<void> {
    return Promise.resolve();
  }

  override destroy(): Promise<void> {
    this.destroyed++;
    return Promise.resolve();
  }
}

/** Random values from a list, then 0.5 (no jitter). */
function scripted(...values: number[]): () => number {
  return () => values.shift() ?? 0.5;
}

describe("ActiveHealthChecker scheduling (fake timers)", () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "performance"] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  function target(i: number): CheckTarget {
    return { id: `10.0.0.1:${i}`, host: "10.0.0.1", port: i };
  }

  function fakeChecker(
    over: Partial<HealthCheckSettings>,
    random: () => number,
    dispatcher = new FakeDispatcher(),
    sink: HealthFlagSink = new RecordingSink(),
  ) {
    const hc = new ActiveHealthChecker({ ...DEFAULT_HEALTH_CHECK_SETTINGS, ...over }, sink, {
      random,
      dispatcher,
    });
    cleanups.push(() => hc.close());
    return { hc, dispatcher };
  }

  it("spreads the first checks of 100 endpoints uniformly over the first interval", async () => {
    const { hc, dispatcher } = fakeChecker({ intervalMs: 10_000 }, seededRandom(7));
    const start = performance.now();
    hc.update(Array.from({ length: 100 }, (_, i) => target(i + 1)));
    const tenths: number[] = [];
    for (let tenth = 0; tenth < 10; tenth++) {
      const before = dispatcher.calls.length;
      await vi.advanceTimersByTimeAsync(1_000);
      tenths.push(dispatcher.calls.length - before);
    }
    // Every endpoint started within the interval, and each tenth got its share.
    expect(new Set(dispatcher.calls.map((c) => c.origin)).size).toBe(100);
    expect(Math.max(...dispatcher.calls.map((c) => c.at - start))).toBeLessThan(10_000);
    expect(tenths.reduce((sum, n) => sum + n, 0)).toBeGreaterThanOrEqual(100);
    const firsts = new Array<number>(10).fill(0);
    const seen = new Set<string>();
    for (const call of dispatcher.calls) {
      if (seen.has(call.origin)) continue;
      seen.add(call.origin);
      firsts[Math.floor((call.at - start) / 1_000)]!++;
    }
    expect(Math.min(...firsts)).toBeGreaterThanOrEqual(4);
    expect(Math.max(...firsts)).toBeLessThanOrEqual(18);
    const fit = chiSquare(firsts, new Array(10).fill(1));
    expect(fit.statistic).toBeLessThan(fit.critical);
  });

  it("waits interval ± jitter after each check ends (default jitter: 10% of the interval)", async () => {
    // First check at 0.25 × interval; then gaps with random 0 (−jitter), 1⁻ (+jitter), 0.5 (none).
    const { hc, dispatcher } = fakeChecker(
      { intervalMs: 1_000 },
      scripted(0.25, 0, 0.999_999, 0.5),
    );
    const start = performance.now();
    hc.update([target(1)]);
    await vi.advanceTimersByTimeAsync(5_000);
    const times = dispatcher.calls.map((c) => Math.round(c.at - start));
    expect(times.slice(0, 5)).toEqual([250, 1150, 2250, 3250, 4250]);
    expect(hc.stats).toEqual({ checks: 5, failures: 5 });
  });

  it("never overlaps two checks of one endpoint: the next starts an interval after a timeout", async () => {
    const dispatcher = new FakeDispatcher();
    dispatcher.respond = () => "hang";
    const sink = new RecordingSink();
    const { hc } = fakeChecker(
      { intervalMs: 1_000, timeoutMs: 5_000, jitterMs: 0, unhealthyThreshold: 2 },
      scripted(0.5),
      dispatcher,
      sink,
    );
    const start = performance.now();
    hc.update([target(1)]);
    await vi.advanceTimersByTimeAsync(13_000);
    expect(dispatcher.calls.map((c) => [Math.round(c.at - start), c.aborted])).toEqual([
      [500, true],
      [500 + 5_000 + 1_000, true],
      [500 + 2 * 6_000, false],
    ]);
    expect(sink.calls).toEqual(["set 10.0.0.1:1 GET /healthz timed out after 5000ms"]);
  });

  it("leaves no timers behind after close(), and does not destroy a given dispatcher", async () => {
    const { hc, dispatcher } = fakeChecker({ intervalMs: 1_000 }, seededRandom(1));
    dispatcher.respond = () => "hang";
    hc.update(Array.from({ length: 10 }, (_, i) => target(i + 1)));
    await vi.advanceTimersByTimeAsync(500);
    expect(vi.getTimerCount()).toBe(10); // waits for the first check, or running checks' timeouts
    await hc.close();
    expect(vi.getTimerCount()).toBe(0);
    expect(dispatcher.calls.every((c) => c.aborted)).toBe(true);
    expect(dispatcher.destroyed).toBe(0);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(dispatcher.calls.length).toBeLessThanOrEqual(10);
  });

  it("rejects settings it cannot honour, naming the key", () => {
    const sink = new RecordingSink();
    const bad: [Partial<HealthCheckSettings>, RegExp][] = [
      [{ path: "healthz" }, /healthCheck\.path/],
      [{ path: "/a b" }, /healthCheck\.path/],
      [{ intervalMs: 0 }, /healthCheck\.interval/],
      [{ timeoutMs: Number.NaN }, /healthCheck\.timeout/],
      [{ unhealthyThreshold: 0 }, /healthCheck\.unhealthyThreshold/],
      [{ healthyThreshold: 1.5 }, /healthCheck\.healthyThreshold/],
      [{ expectedStatuses: [] }, /healthCheck\.expectedStatuses/],
      [{ expectedStatuses: [[300, 200]] }, /healthCheck\.expectedStatuses/],
      [{ expectedStatuses: [[200, 600]] }, /healthCheck\.expectedStatuses/],
      [{ jitterMs: 5_001 }, /healthCheck\.jitter/],
      [{ jitterMs: -1 }, /healthCheck\.jitter/],
      [{ host: "a b" }, /healthCheck\.host/],
      [{ host: "" }, /healthCheck\.host/],
    ];
    for (const [over, message] of bad) {
      expect(
        () =>
          new ActiveHealthChecker({ ...DEFAULT_HEALTH_CHECK_SETTINGS, ...over }, sink, {
            dispatcher: new FakeDispatcher(),
          }),
        JSON.stringify(over),
      ).toThrow(message);
    }
    expect(DEFAULT_HEALTH_CHECK_SETTINGS).toEqual({
      path: "/healthz",
      intervalMs: 10_000,
      timeoutMs: 1_000,
      unhealthyThreshold: 3,
      healthyThreshold: 2,
      expectedStatuses: [[200, 299]],
      tcp: false,
    });
  });
});
