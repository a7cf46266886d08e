import { describe, expect, it } from "vitest";
import { noteUpstreamConnectError, upstreamDescriptorErrors } from "./descriptor-errors.js";
import {
  DEFAULT_DESCRIPTOR_LIMIT,
  defaultMaxConnections,
  parseSoftNofile,
  readDescriptorLimit,
} from "./descriptor-limit.js";
import type { OverloadSettings } from "./overload.js";
import { OverloadProtection, type OverloadProtectionOptions } from "./overload-protection.js";
import { RateLimitedLog } from "./rate-limited-log.js";

const MiB = 1024 * 1024;

/** A logger that keeps its lines, a clock and a heap the test sets. */
function rig(settings: OverloadSettings, extra: Partial<OverloadProtectionOptions> = {}) {
  const lines: { level: string; msg: string; fields: Record<string, unknown> }[] = [];
  const logger = {
    info: (fields: Record<string, unknown>, msg: string) =>
      lines.push({ level: "info", msg, fields }),
    warn: (fields: Record<string, unknown>, msg: string) =>
      lines.push({ level: "warn", msg, fields }),
  };
  const state = { now: 0, heap: 0, heapReads: 0, probe: undefined as string | undefined };
  const overload = new OverloadProtection(settings, {
    logger: logger as unknown as OverloadProtectionOptions["logger"],
    now: () => state.now,
    readHeap: () => {
      state.heapReads++;
      return state.heap;
    },
    descriptors: { limit: 1024, source: "test" },
    probeDescriptor: () => state.probe,
    ...extra,
  });
  const messages = (pattern: RegExp) => lines.filter((l) => pattern.test(l.msg));
  return { overload, lines, state, messages };
}

describe("OverloadProtection: heap", () => {
  it("enters at maxHeapMb, stays until under 95% of it, leaves, and logs each transition once", () => {
    const { overload, state, messages } = rig({ maxHeapMb: 100 });
    state.heap = 99 * MiB;
    overload.tick();
    expect(overload.rejectRequests).toBe(false);
    expect(overload.disableKeepAlive).toBe(false);

    state.heap = 100 * MiB;
    state.now = 1000;
    overload.tick();
    expect(overload.rejectRequests).toBe(true);
    expect(overload.disableKeepAlive).toBe(true);
    // Hysteresis: between 95% and 100% it stays overloaded, and says nothing more.
    for (const mb of [120, 99, 96, 95.5]) {
      state.heap = mb * MiB;
      state.now += 1000;
      overload.tick();
      expect(overload.rejectRequests, `${mb} MiB`).toBe(true);
    }
    state.heap = 94 * MiB;
    state.now = 9000;
    overload.tick();
    expect(overload.rejectRequests).toBe(false);
    expect(overload.disableKeepAlive).toBe(false);
    state.now = 10_000;
    overload.tick();

    const entered = messages(/heap above/);
    const left = messages(/heap back under/);
    expect(entered).toHaveLength(1);
    expect(entered[0]!.level).toBe("warn");
    expect(entered[0]!.fields).toMatchObject({ heapUsedMb: 100, maxHeapMb: 100 });
    expect(left).toHaveLength(1);
    expect(left[0]!.fields).toMatchObject({ heapUsedMb: 94, forMs: 8000 });
    expect(overload.heapEpisodes).toBe(1);
  });

  it("reads no heap while maxHeapMb is unset", () => {
    const { overload, state } = rig({});
    state.heap = 10_000 * MiB;
    overload.tick();
    overload.tick();
    expect(state.heapReads).toBe(0);
    expect(overload.rejectRequests).toBe(false);
  });

  it("a reload that raises maxHeapMb ends the episode at the next sample; one that removes it too", () => {
    const { overload, state, messages } = rig({ maxHeapMb: 10 });
    state.heap = 50 * MiB;
    overload.tick();
    expect(overload.rejectRequests).toBe(true);
    overload.configure({ maxHeapMb: 100 });
    expect(overload.rejectRequests).toBe(true);
    overload.tick();
    expect(overload.rejectRequests).toBe(false);
    overload.configure({ maxHeapMb: 10 });
    overload.tick();
    expect(overload.rejectRequests).toBe(true);
    overload.configure({});
    overload.tick();
    expect(overload.rejectRequests).toBe(false);
    expect(messages(/heap above/)).toHaveLength(2);
    expect(messages(/heap back under/)).toHaveLength(2);
  });
});

describe("OverloadProtection: connection cap", () => {
  it("admits up to maxDownstreamConnections, refuses past it (counted, logged), admits again after a release", () => {
    const { overload, state, messages } = rig({ maxDownstreamConnections: 2 });
    expect(overload.admit("outbound")).toBe(true);
    expect(overload.admit("outbound")).toBe(true);
    expect(overload.admit("outbound")).toBe(false);
    expect(overload.admit("inbound")).toBe(false);
    state.now = 300;
    expect(overload.admit("outbound")).toBe(false);
    expect(overload.rejectedConnections).toBe(3);
    expect(overload.atConnectionLimit).toBe(true);
    expect(messages(/connection limit reached/)).toHaveLength(1);
    // One line per listener at once, then counts held back for a second.
    const refused = () =>
      messages(/connections refused/).map((l) => [l.fields.listener, l.fields.count]);
    expect(refused()).toEqual([
      ["outbound", 1],
      ["inbound", 1],
    ]);
    state.now = 1000;
    overload.tick();
    expect(refused()).toEqual([
      ["outbound", 1],
      ["inbound", 1],
      ["outbound", 1],
    ]);
    // Still at the cap (nothing released) though no new refusal: the state holds.
    state.now = 2000;
    overload.tick();
    expect(overload.atConnectionLimit).toBe(true);

    overload.release();
    expect(overload.open).toBe(1);
    state.now = 3000;
    overload.tick();
    expect(overload.atConnectionLimit).toBe(false);
    const left = messages(/below the limit again/);
    expect(left).toHaveLength(1);
    expect(left[0]!.fields).toMatchObject({ refused: 3 });
    expect(overload.admit("outbound")).toBe(true);
    expect(overload.admit("outbound")).toBe(false);
    expect(messages(/connection limit reached/)).toHaveLength(2);
  });

  it("derives the cap from the descriptor limit when unset, and takes a reload's value", () => {
    const { overload } = rig({});
    expect(overload.maxConnections).toBe(defaultMaxConnections(1024));
    expect(overload.maxConnectionsSource).toBe("descriptor limit");
    overload.configure({ maxDownstreamConnections: 7 });
    expect(overload.maxConnections).toBe(7);
    expect(overload.maxConnectionsSource).toBe("config");
  });

  it("logs accept errors once a second per listener and code, with the count", () => {
    const { overload, state, messages } = rig({});
    for (let i = 0; i < 5; i++) overload.acceptFailed("outbound", "ENOBUFS");
    overload.acceptFailed("outbound", "EPERM");
    state.now = 1500;
    overload.tick();
    const lines = messages(/accept failed/).map((l) => [l.fields.code, l.fields.count]);
    expect(lines).toEqual([
      ["ENOBUFS", 1],
      ["EPERM", 1],
      ["ENOBUFS", 4],
    ]);
  });
});

describe("OverloadProtection: descriptors", () => {
  it("logs exhaustion once when the probe fails with EMFILE, and recovery once", () => {
    const { overload, state, messages } = rig({});
    overload.tick();
    state.probe = "EMFILE";
    state.now = 1000;
    overload.tick();
    overload.tick();
    expect(overload.descriptorsExhausted).toBe(true);
    state.probe = undefined;
    state.now = 4000;
    overload.tick();
    expect(overload.descriptorsExhausted).toBe(false);
    expect(messages(/descriptors exhausted/)).toHaveLength(1);
    expect(messages(/descriptors available again/)[0]!.fields).toMatchObject({ forMs: 3000 });
    expect(overload.descriptorEpisodes).toBe(1);
  });

  it("says in the log when upstream connects fail for lack of descriptors", () => {
    const { overload, messages } = rig({});
    const before = upstreamDescriptorErrors.EMFILE;
    const emfile = Object.assign(new Error("connect EMFILE"), { code: "EMFILE" });
    expect(noteUpstreamConnectError(emfile)).toBe(true);
    expect(noteUpstreamConnectError(emfile)).toBe(true);
    expect(noteUpstreamConnectError(Object.assign(new Error("x"), { code: "ECONNREFUSED" }))).toBe(
      false,
    );
    expect(upstreamDescriptorErrors.EMFILE).toBe(before + 2);
    overload.tick();
    overload.tick();
    const lines = messages(/no file descriptor left/);
    expect(lines).toHaveLength(1);
    expect(lines[0]!.fields).toEqual({ code: "EMFILE", count: 2 });
  });
});

describe("descriptor limit", () => {
  const limits = [
    "Limit                     Soft Limit           Hard Limit           Units     ",
    "Max processes             63704                63704                processes ",
    "Max open files            4096                 524288               files     ",
    "Max locked memory         8388608              8388608              bytes     ",
  ].join("\n");

  it("reads the soft limit of /proc/self/limits' Max open files row", () => {
    expect(parseSoftNofile(limits)).toBe(4096);
    expect(parseSoftNofile(limits.replace("4096 ", "unlimited"))).toBe(Number.POSITIVE_INFINITY);
    expect(parseSoftNofile("nothing here")).toBeUndefined();
    expect(readDescriptorLimit(() => limits)).toEqual({ limit: 4096, source: "/proc/self/limits" });
  });

  it("falls back to the default where the file cannot be read", () => {
    const missing = () => {
      throw Object.assign(new Error("ENOENT"), { code: "ENOENT" });
    };
    expect(readDescriptorLimit(missing)).toEqual({
      limit: DEFAULT_DESCRIPTOR_LIMIT,
      source: "default",
    });
  });

  it("derives half of what the reserve of 64 leaves, at least 1", () => {
    expect(defaultMaxConnections(1024)).toBe(480);
    expect(defaultMaxConnections(1_048_576)).toBe(524_256);
    expect(defaultMaxConnections(64)).toBe(1);
    expect(defaultMaxConnections(Number.POSITIVE_INFINITY)).toBe(2 ** 31 - 1);
  });
});

describe("RateLimitedLog", () => {
  it("writes the first event at once and the rest as one line with a count per interval", () => {
    const lines: unknown[] = [];
    let now = 0;
    const log = new RateLimitedLog(
      { warn: (fields: unknown) => lines.push(fields) } as never,
      "refused",
      { now: () => now },
    );
    log.note("a", { listener: "a" });
    for (let i = 0; i < 9; i++) log.note("a", { listener: "a" });
    expect(lines).toEqual([{ listener: "a", count: 1 }]);
    now = 999;
    log.flush();
    expect(lines).toHaveLength(1);
    now = 1000;
    log.flush();
    expect(lines).toEqual([
      { listener: "a", count: 1 },
      { listener: "a", count: 9 },
    ]);
    now = 5000;
    log.flush();
    log.flush();
    expect(lines).toHaveLength(2);
  });
});
