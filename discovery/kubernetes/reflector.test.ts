import { describe, expect, it } from "vitest";
import { KubeApiError } from "./api-error.js";
import type { Timers } from "./backoff.js";
import {
  type ListQuery,
  Reflector,
  type ReflectorHandler,
  type ResourceApi,
  type RestartReason,
  type WatchQuery,
} from "./reflector.js";
import type { KubeList, KubeObject } from "./wire.js";

/** Timers that fire only when the test says so. */
class StepTimers implements Timers {
  readonly pending = new Map<number, { ms: number; callback: () => void }>();
  #next = 1;
  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.#next++;
    this.pending.set(id, { ms, callback });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.pending.delete(handle as number);
  }
  /** Fire the one pending timer of `ms` (a sleep between attempts). */
  fire(ms: number): void {
    for (const [id, timer] of this.pending) {
      if (timer.ms === ms) {
        this.pending.delete(id);
        timer.callback();
        return;
      }
    }
    throw new Error(
      `no timer of ${ms} ms; pending: ${[...this.pending.values()].map((t) => t.ms)}`,
    );
  }
}

type ListAnswer = KubeList<KubeObject> | Error;
type WatchAnswer = (string | Error)[] | Error;

/** A scripted API: each list/watch call takes the next answer, and records its query. */
class ScriptedApi implements ResourceApi<KubeObject> {
  readonly resource = "endpointslices.discovery.k8s.io";
  readonly namespace = undefined;
  readonly lists: ListAnswer[] = [];
  readonly watches: WatchAnswer[] = [];
  readonly calls: (["list", ListQuery] | ["watch", WatchQuery])[] = [];

  async list(query: ListQuery): Promise<KubeList<KubeObject>> {
    this.calls.push(["list", query]);
    const answer = this.lists.shift();
    if (answer === undefined) return new Promise(() => {});
    if (answer instanceof Error) throw answer;
    return answer;
  }

  async watch(
    query: WatchQuery,
    signal: AbortSignal,
    onChunk: (chunk: Uint8Array) => void,
  ): Promise<void> {
    this.calls.push(["watch", query]);
    const answer = this.watches.shift();
    if (answer === undefined) {
      // Hangs like a quiet watch until aborted.
      await new Promise((_, reject) =>
        signal.addEventListener("abort", () => reject(new Error("aborted"))),
      );
      return;
    }
    if (answer instanceof Error) throw answer;
    for (const part of answer) {
      // A turn of the event loop between chunks, as between reads of a socket.
      await new Promise((resolve) => setImmediate(resolve));
      if (signal.aborted) throw new Error("aborted");
      if (part instanceof Error) throw part;
      onChunk(Buffer.from(part));
    }
  }
}

function slice(name: string, rv: string): KubeObject {
  return { kind: "EndpointSlice", metadata: { name, namespace: "default", resourceVersion: rv } };
}

function list(rv: string, items: KubeObject[], cont?: string): KubeList<KubeObject> {
  return {
    kind: "EndpointSliceList",
    metadata: { resourceVersion: rv, ...(cont ? { continue: cont } : {}) },
    items,
  };
}

function event(type: string, object: object): string {
  return `${JSON.stringify({ type, object })}\n`;
}

const gone = {
  kind: "Status",
  apiVersion: "v1",
  metadata: {},
  status: "Failure",
  message: "too old resource version: 5 (9)",
  reason: "Expired",
  code: 410,
};

interface Run {
  api: ScriptedApi;
  timers: StepTimers;
  log: string[];
  restarts: [RestartReason, number][];
  reflector: Reflector<KubeObject>;
  unauthorized: number;
}

function setup(random = 0, hold?: (line: string) => string | undefined): Run {
  const api = new ScriptedApi();
  const timers = new StepTimers();
  const log: string[] = [];
  const restarts: [RestartReason, number][] = [];
  const run = { api, timers, log, restarts, unauthorized: 0 } as Run;
  const handler: ReflectorHandler<KubeObject> = {
    replace: (items) => log.push(`replace ${items.map((i) => i.metadata?.name).join(",")}`),
    apply: (type, object) => log.push(`${type} ${object.metadata?.name}`),
    hold,
  };
  let clock = 0;
  run.reflector = new Reflector(api, handler, {
    timers,
    random: () => random,
    // Each reading moves time on by 2 s, so no watch counts as "ended at once".
    now: () => (clock += 2000),
    onRestart: (reason, delay) => restarts.push([reason, delay]),
    onUnauthorized: () => run.unauthorized++,
    pageSize: 2,
  });
  return run;
}

/** Let the reflector's promise chain run until it is waiting on the network or a timer. */
async function settle(): Promise<void> {
  for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve));
}

describe("Reflector", () => {
  it("lists page by page with limit/continue, then watches from the list's resourceVersion with bookmarks", async () => {
    const run = setup(0.5);
    run.api.lists.push(
      list("10", [slice("a", "8"), slice("b", "9")], "token-1"),
      list("10", [slice("c", "10")]),
    );
    run.reflector.start();
    await settle();
    expect(run.api.calls[0]).toEqual(["list", { limit: 2 }]);
    expect(run.api.calls[1]).toEqual(["list", { limit: 2, continue: "token-1" }]);
    expect(run.api.calls[2]).toEqual([
      "watch",
      { resourceVersion: "10", timeoutSeconds: 450, allowWatchBookmarks: true },
    ]);
    expect(run.log).toEqual(["replace a,b,c"]);
    expect(run.reflector.synced).toBe(true);
    await run.reflector.stop();
  });

  it("leaves a line the handler holds unparsed and unapplied, and watches on from its resourceVersion", async () => {
    const held: string[] = [];
    const run = setup(0, (line) => {
      if (!line.includes('"held-')) return undefined;
      held.push(line);
      return JSON.parse(line).object.metadata.resourceVersion;
    });
    run.api.lists.push(list("10", []));
    run.api.watches.push([
      event("ADDED", slice("a", "11")) + event("MODIFIED", slice("held-b", "12")),
    ]);
    run.reflector.start();
    await settle();
    expect(run.log).toEqual(["replace ", "ADDED a"]);
    expect(held).toHaveLength(1);
    expect(run.reflector.resourceVersion).toBe("12");
    // The next watch resumes after the held event, not before it.
    expect(run.api.calls.at(-1)).toEqual([
      "watch",
      expect.objectContaining({ resourceVersion: "12" }),
    ]);
    await run.reflector.stop();
  });

  it("applies events in order, advances on bookmarks, and re-watches a normally ended stream without listing", async () => {
    const run = setup();
    run.api.lists.push(list("10", []));
    run.api.watches.push([
      event("ADDED", slice("a", "11")) + event("MODIFIED", slice("a", "12")),
      event("DELETED", slice("a", "13")),
      event("BOOKMARK", { kind: "EndpointSlice", metadata: { resourceVersion: "20" } }),
    ]);
    run.reflector.start();
    await settle();
    expect(run.log).toEqual(["replace ", "ADDED a", "MODIFIED a", "DELETED a"]);
    expect(run.restarts).toEqual([["closed", 0]]);
    const calls = run.api.calls.map(([kind, query]) => [
      kind,
      "resourceVersion" in query ? query.resourceVersion : "",
    ]);
    expect(calls).toEqual([
      ["list", ""],
      ["watch", "10"],
      ["watch", "20"],
    ]);
    await run.reflector.stop();
  });

  it("joins events split at every byte, including inside a multi-byte character", async () => {
    const run = setup();
    run.api.lists.push(list("1", []));
    const text = event("ADDED", { metadata: { name: "zürich-é", resourceVersion: "2" } });
    const bytes = Buffer.from(text);
    // Strings can't hold half a character, so the first watch yields raw single bytes.
    const scripted = run.api.watch.bind(run.api);
    let first = true;
    run.api.watch = async (query, signal, onChunk) => {
      if (!first) return scripted(query, signal, onChunk);
      first = false;
      for (const byte of bytes) onChunk(Uint8Array.of(byte));
    };
    run.reflector.start();
    await settle();
    expect(run.log).toEqual(["replace ", "ADDED zürich-é"]);
    await run.reflector.stop();
  });

  it("410 as an ERROR event relists at once and delivers the fresh list as one replace", async () => {
    const run = setup();
    run.api.lists.push(
      list("5", [slice("a", "5"), slice("b", "5")]),
      list("30", [slice("b", "30")]),
    );
    run.api.watches.push([event("ADDED", slice("c", "6")) + event("ERROR", gone)]);
    run.reflector.start();
    await settle();
    expect(run.log).toEqual(["replace a,b", "ADDED c", "replace b"]);
    expect(run.restarts).toEqual([["expired", 0]]);
    expect(run.api.calls.at(-1)).toEqual([
      "watch",
      expect.objectContaining({ resourceVersion: "30" }),
    ]);
    await run.reflector.stop();
  });

  it("410 as an HTTP answer to the watch relists too; a second 410 in a row backs off", async () => {
    const run = setup();
    run.api.lists.push(list("5", []), new KubeApiError(410, gone), list("7", []));
    run.api.watches.push(new KubeApiError(410, gone));
    run.reflector.start();
    await settle();
    expect(run.restarts).toEqual([
      ["expired", 0],
      ["expired", 800],
    ]);
    run.timers.fire(800);
    await settle();
    expect(run.log).toEqual(["replace ", "replace "]);
    await run.reflector.stop();
  });

  it("backs off 0.8 s doubling to 30 s across failures of every kind, and resets after progress", async () => {
    const run = setup(0);
    const failures: Error[] = [
      new Error("connect ECONNREFUSED"),
      new KubeApiError(500, { message: "etcd unavailable" }),
      new KubeApiError(503, {}),
      new KubeApiError(403, { reason: "Forbidden" }),
      new KubeApiError(401, { reason: "Unauthorized" }),
      new KubeApiError(500, {}),
      new KubeApiError(500, {}),
    ];
    run.api.lists.push(...failures, list("1", []));
    run.reflector.start();
    const expected = [800, 1600, 3200, 6400, 12800, 25600, 30000];
    for (const ms of expected) {
      await settle();
      run.timers.fire(ms);
    }
    await settle();
    expect(run.restarts.map(([, ms]) => ms)).toEqual(expected);
    expect(run.restarts.map(([reason]) => reason)).toEqual([
      "network",
      "server_error",
      "server_error",
      "forbidden",
      "unauthorized",
      "server_error",
      "server_error",
    ]);
    expect(run.unauthorized).toBe(1);
    expect(run.log).toEqual(["replace "]);
    // The list succeeded: the next failure starts again at 0.8 s.
    run.api.watches.push(new Error("socket hang up"));
    await run.reflector.stop();
    const again = setup(0);
    again.api.lists.push(new Error("x"), list("1", []));
    again.api.watches.push(new Error("reset"));
    again.reflector.start();
    await settle();
    again.timers.fire(800);
    await settle();
    expect(again.restarts).toEqual([
      ["network", 800],
      ["network", 800],
    ]);
    await again.reflector.stop();
  });

  it("adds up to the base again as jitter, never beyond 30 s", async () => {
    const run = setup(0.999);
    run.api.lists.push(
      new Error("a"),
      new Error("b"),
      new Error("c"),
      new Error("d"),
      new Error("e"),
      new Error("f"),
    );
    run.reflector.start();
    for (const ms of [1599, 3198, 6397, 12794, 25587]) {
      await settle();
      run.timers.fire(ms);
    }
    await settle();
    expect(run.restarts.at(-1)).toEqual(["network", 30000]);
    await run.reflector.stop();
  });

  it("429 waits for Retry-After", async () => {
    const run = setup();
    run.api.lists.push(new KubeApiError(429, { reason: "TooManyRequests" }, 7000), list("1", []));
    run.reflector.start();
    await settle();
    expect(run.restarts).toEqual([["throttled", 7000]]);
    run.timers.fire(7000);
    await settle();
    expect(run.log).toEqual(["replace "]);
    await run.reflector.stop();
  });

  it("a stream cut inside an event backs off and re-watches from the last applied resourceVersion", async () => {
    const run = setup();
    run.api.lists.push(list("1", []));
    const second = event("ADDED", slice("b", "3"));
    run.api.watches.push([event("ADDED", slice("a", "2")) + second.slice(0, 17)]);
    run.reflector.start();
    await settle();
    expect(run.restarts).toEqual([["cut", 800]]);
    run.timers.fire(800);
    await settle();
    expect(run.api.calls.at(-1)).toEqual([
      "watch",
      expect.objectContaining({ resourceVersion: "2" }),
    ]);
    expect(run.log).toEqual(["replace ", "ADDED a"]);
    await run.reflector.stop();
  });

  it("invalid JSON and a mid-stream socket error back off; state already applied stays", async () => {
    const run = setup();
    run.api.lists.push(list("1", [slice("a", "1")]));
    run.api.watches.push(
      ["{not json}\n"],
      [event("ADDED", slice("b", "2")), new Error("ECONNRESET")],
    );
    run.reflector.start();
    await settle();
    expect(run.restarts).toEqual([["invalid_json", 800]]);
    run.timers.fire(800);
    await settle();
    // The event before the reset counted as progress, so the backoff started over.
    expect(run.restarts).toEqual([
      ["invalid_json", 800],
      ["network", 800],
    ]);
    expect(run.log).toEqual(["replace a", "ADDED b"]);
    await run.reflector.stop();
  });

  it("a watch that closes at once without events is not re-opened in a hot loop", async () => {
    const api = new ScriptedApi();
    const timers = new StepTimers();
    const restarts: [string, number][] = [];
    api.lists.push(list("1", []));
    api.watches.push([], []);
    const reflector = new Reflector(
      api,
      { replace() {}, apply() {} },
      {
        timers,
        random: () => 0,
        now: () => 0,
        onRestart: (reason, ms) => restarts.push([reason, ms]),
      },
    );
    reflector.start();
    await settle();
    expect(restarts).toEqual([["closed", 800]]);
    timers.fire(800);
    await settle();
    expect(restarts).toEqual([
      ["closed", 800],
      ["closed", 1600],
    ]);
    await reflector.stop();
  });

  it("cuts a watch that outlives its timeoutSeconds by the grace period (a half-open connection)", async () => {
    const run = setup(0);
    run.api.lists.push(list("1", []));
    run.reflector.start();
    await settle();
    run.timers.fire(330_000);
    await settle();
    expect(run.restarts).toEqual([["stalled", 800]]);
    await run.reflector.stop();
  });

  it("resync relists on schedule and replaces the state", async () => {
    const api = new ScriptedApi();
    const timers = new StepTimers();
    const log: string[] = [];
    api.lists.push(list("1", [slice("a", "1")]), list("9", [slice("b", "9")]));
    const reflector = new Reflector(
      api,
      { replace: (items) => log.push(`replace ${items.map((i) => i.metadata?.name)}`), apply() {} },
      { timers, random: () => 0, now: () => 0, resyncMs: 60_000 },
    );
    reflector.start();
    await settle();
    timers.fire(60_000);
    await settle();
    expect(log).toEqual(["replace a", "replace b"]);
    await reflector.stop();
  });
});
