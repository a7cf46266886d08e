import { describe, expect, it } from "vitest";
import type { Endpoint } from "./endpoint.js";
import { ServiceRegistry } from "./registry.js";
import type { EndpointSnapshot } from "./snapshot.js";
import type { ServiceEndpoints } from "./update.js";

function ep(port: number, extra: Partial<Endpoint> = {}): Endpoint {
  return {
    id: `10.0.0.1:${port}`,
    host: "10.0.0.1",
    port,
    weight: 1,
    labels: {},
    ready: true,
    ...extra,
  };
}

function svc(name: string, ports: number[], namespace = "default"): ServiceEndpoints {
  return { name, namespace, endpoints: ports.map((port) => ep(port)) };
}

/** Records every publication as `key:ports` or `key:gone`. */
function record(registry: ServiceRegistry): string[] {
  const events: string[] = [];
  registry.subscribe((snapshot, key) => {
    events.push(
      snapshot ? `${key}:${snapshot.endpoints.map((e) => e.port).join(",")}` : `${key}:gone`,
    );
  });
  return events;
}

function ports(snapshot: EndpointSnapshot | undefined): number[] | undefined {
  return snapshot?.endpoints.map((e) => e.port);
}

describe("ServiceRegistry", () => {
  it("publishes frozen snapshots keyed name.namespace", () => {
    const registry = new ServiceRegistry();
    registry.apply("s", { kind: "reset", services: [svc("a", [1, 2]), svc("a", [3], "other")] });
    const snapshot = registry.get("a.default")!;
    expect(snapshot).toMatchObject({ key: "a.default", name: "a", namespace: "default" });
    expect(ports(snapshot)).toEqual([1, 2]);
    expect(ports(registry.get("a.other"))).toEqual([3]);
    expect(registry.keys()).toEqual(["a.default", "a.other"]);
    expect(Object.isFrozen(snapshot)).toBe(true);
    expect(Object.isFrozen(snapshot.endpoints)).toBe(true);
    expect(Object.isFrozen(snapshot.endpoints[0])).toBe(true);
    expect(Object.isFrozen(snapshot.endpoints[0]?.labels)).toBe(true);
  });

  it("copies mutable endpoints so the source cannot change a published snapshot", () => {
    const registry = new ServiceRegistry();
    const labels: Record<string, string> = { v: "1" };
    const endpoint = { ...ep(1), labels };
    registry.apply("s", {
      kind: "add",
      services: [{ name: "a", namespace: "default", endpoints: [endpoint] }],
    });
    labels.v = "2";
    endpoint.port = 9;
    expect(registry.get("a.default")?.endpoints[0]).toMatchObject({ port: 1, labels: { v: "1" } });
  });

  it("de-duplicates endpoints by id, first wins", () => {
    const registry = new ServiceRegistry();
    registry.apply("s", {
      kind: "add",
      services: [
        { name: "a", namespace: "default", endpoints: [ep(1, { weight: 5 }), ep(2), ep(1)] },
      ],
    });
    expect(registry.get("a.default")?.endpoints.map((e) => [e.port, e.weight])).toEqual([
      [1, 5],
      [2, 1],
    ]);
  });

  it("reset replaces what the source contributed: removes, adds, updates", () => {
    const registry = new ServiceRegistry();
    const events = record(registry);
    registry.apply("s", { kind: "reset", services: [svc("a", [1]), svc("b", [2])] });
    registry.apply("s", { kind: "reset", services: [svc("b", [2, 3]), svc("c", [4])] });
    expect(events).toEqual([
      "a.default:1",
      "b.default:2",
      "a.default:gone",
      "b.default:2,3",
      "c.default:4",
    ]);
    expect(registry.keys()).toEqual(["b.default", "c.default"]);
    expect(registry.get("a.default")).toBeUndefined();
  });

  it("add upserts whole services without touching others", () => {
    const registry = new ServiceRegistry();
    const events = record(registry);
    registry.apply("s", { kind: "add", services: [svc("a", [1, 2]), svc("b", [3])] });
    registry.apply("s", { kind: "add", services: [svc("a", [2])] });
    expect(events).toEqual(["a.default:1,2", "b.default:3", "a.default:2"]);
    expect(ports(registry.get("b.default"))).toEqual([3]);
  });

  it("remove deletes only the named services of that source", () => {
    const registry = new ServiceRegistry();
    const events = record(registry);
    registry.apply("s", { kind: "add", services: [svc("a", [1]), svc("b", [2])] });
    registry.apply("other", { kind: "remove", keys: ["a.default"] });
    registry.apply("s", { kind: "remove", keys: ["a.default", "nope.default"] });
    expect(events).toEqual(["a.default:1", "b.default:2", "a.default:gone"]);
    expect(registry.keys()).toEqual(["b.default"]);
  });

  it("does not republish a service whose endpoints are unchanged, in any order", () => {
    const registry = new ServiceRegistry();
    const events = record(registry);
    registry.apply("s", { kind: "reset", services: [svc("a", [1, 2]), svc("b", [3])] });
    const before = registry.get("a.default");
    registry.apply("s", { kind: "reset", services: [svc("a", [2, 1]), svc("b", [3, 4])] });
    expect(events).toEqual(["a.default:1,2", "b.default:3", "b.default:3,4"]);
    expect(registry.get("a.default")).toBe(before);
  });

  it.each([
    ["weight", { weight: 2 }],
    ["readiness", { ready: false }],
    ["a label value", { labels: { v: "2" } }],
    ["an added label", { labels: { v: "1", zone: "a" } }],
    ["the host", { host: "10.0.0.2" }],
  ])("republishes when %s changes", (_what, change) => {
    const registry = new ServiceRegistry();
    const base = ep(1, { labels: { v: "1" } });
    registry.apply("s", {
      kind: "add",
      services: [{ name: "a", namespace: "default", endpoints: [base] }],
    });
    const version = registry.get("a.default")!.version;
    registry.apply("s", {
      kind: "add",
      services: [{ name: "a", namespace: "default", endpoints: [{ ...base, ...change }] }],
    });
    expect(registry.get("a.default")!.version).toBeGreaterThan(version);
  });

  it("versions never repeat, even for a service that disappears and returns", () => {
    const registry = new ServiceRegistry();
    registry.apply("s", { kind: "add", services: [svc("a", [1])] });
    const first = registry.get("a.default")!.version;
    registry.apply("s", { kind: "remove", keys: ["a.default"] });
    registry.apply("s", { kind: "add", services: [svc("a", [1])] });
    expect(registry.get("a.default")!.version).toBeGreaterThan(first);
  });

  it("notifies after the whole update is applied", () => {
    const registry = new ServiceRegistry();
    const seen: (number[] | undefined)[] = [];
    registry.subscribe(() => seen.push(ports(registry.get("b.default"))));
    registry.apply("s", { kind: "add", services: [svc("a", [1]), svc("b", [2])] });
    expect(seen).toEqual([[2], [2]]);
  });

  it("unsubscribes", () => {
    const registry = new ServiceRegistry();
    const events: string[] = [];
    const off = registry.subscribe((_s, key) => events.push(key));
    registry.apply("s", { kind: "add", services: [svc("a", [1])] });
    off();
    registry.apply("s", { kind: "add", services: [svc("a", [2])] });
    expect(events).toEqual(["a.default"]);
  });

  it("keeps notifying other listeners when one throws, then rethrows", () => {
    const registry = new ServiceRegistry();
    const events = record(registry);
    registry.subscribe(() => {
      throw new Error("boom");
    });
    const after = record(registry);
    expect(() =>
      registry.apply("s", { kind: "add", services: [svc("a", [1]), svc("b", [2])] }),
    ).toThrow("boom");
    expect(events).toEqual(["a.default:1", "b.default:2"]);
    expect(after).toEqual(events);
    expect(registry.keys()).toEqual(["a.default", "b.default"]);
  });

  describe("two sources, one key: last writer wins", () => {
    it("the latest write is effective; removing it falls back to the other source", () => {
      const registry = new ServiceRegistry();
      const events = record(registry);
      registry.apply("static", { kind: "reset", services: [svc("a", [1])] });
      registry.apply("file", { kind: "reset", services: [svc("a", [2])] });
      expect(ports(registry.get("a.default"))).toEqual([2]);
      registry.apply("static", { kind: "add", services: [svc("a", [3])] });
      expect(ports(registry.get("a.default"))).toEqual([3]);
      registry.apply("static", { kind: "remove", keys: ["a.default"] });
      expect(ports(registry.get("a.default"))).toEqual([2]);
      registry.apply("file", { kind: "reset", services: [] });
      expect(registry.get("a.default")).toBeUndefined();
      expect(events).toEqual([
        "a.default:1",
        "a.default:2",
        "a.default:3",
        "a.default:2",
        "a.default:gone",
      ]);
    });

    it("re-sending unchanged endpoints keeps the writer's place (a reload re-sends static)", () => {
      const registry = new ServiceRegistry();
      registry.apply("static", { kind: "reset", services: [svc("a", [1])] });
      registry.apply("file", { kind: "reset", services: [svc("a", [2])] });
      const events = record(registry);
      registry.apply("static", { kind: "reset", services: [svc("a", [1])] });
      expect(ports(registry.get("a.default"))).toEqual([2]);
      expect(events).toEqual([]);
      registry.apply("static", { kind: "reset", services: [svc("a", [3])] });
      expect(ports(registry.get("a.default"))).toEqual([3]);
    });

    it("removing the older writer changes nothing visible", () => {
      const registry = new ServiceRegistry();
      registry.apply("one", { kind: "add", services: [svc("a", [1])] });
      registry.apply("two", { kind: "add", services: [svc("a", [2])] });
      const events = record(registry);
      registry.apply("one", { kind: "remove", keys: ["a.default"] });
      expect(events).toEqual([]);
      expect(ports(registry.get("a.default"))).toEqual([2]);
    });

    it("removeSource withdraws everything the source contributed", () => {
      const registry = new ServiceRegistry();
      registry.registerSource("file");
      registry.apply("static", { kind: "add", services: [svc("a", [1])] });
      registry.apply("file", { kind: "add", services: [svc("a", [2]), svc("b", [3])] });
      const events = record(registry);
      registry.removeSource("file");
      expect(events.sort()).toEqual(["a.default:1", "b.default:gone"]);
      registry.removeSource("unknown");
    });
  });

  describe("sync", () => {
    it("is synced once every registered source has synced", () => {
      const registry = new ServiceRegistry();
      expect(registry.isSynced()).toBe(true);
      registry.registerSource("static");
      registry.registerSource("file");
      registry.registerSource("file");
      expect(registry.isSynced()).toBe(false);
      registry.markSynced("static");
      expect(registry.isSynced()).toBe(false);
      registry.apply("file", { kind: "reset", services: [] });
      expect(registry.isSynced()).toBe(false);
      registry.markSynced("file");
      expect(registry.isSynced()).toBe(true);
    });

    it("a source that applies without registering still has to sync", () => {
      const registry = new ServiceRegistry();
      registry.apply("k8s", { kind: "add", services: [svc("a", [1])] });
      expect(registry.isSynced()).toBe(false);
      registry.markSynced("k8s");
      expect(registry.isSynced()).toBe(true);
    });

    it("removing an unsynced source no longer holds readiness back", () => {
      const registry = new ServiceRegistry();
      registry.registerSource("file");
      registry.removeSource("file");
      expect(registry.isSynced()).toBe(true);
    });
  });

  it("rebuilds only touched services", () => {
    const registry = new ServiceRegistry();
    const services = Array.from({ length: 1000 }, (_, i) => svc(`s${i}`, [1, 2, 3]));
    registry.apply("k8s", { kind: "reset", services });
    const untouched = registry.get("s1.default");
    const events = record(registry);
    registry.apply("k8s", { kind: "add", services: [svc("s0", [1, 2])] });
    expect(events).toEqual(["s0.default:1,2"]);
    expect(registry.get("s1.default")).toBe(untouched);
  });

  it("keeps each source's last sync time from an injected clock", () => {
    let now = 1000;
    const registry = new ServiceRegistry({ now: () => now });
    registry.registerSource("file");
    registry.registerSource("static");
    expect(registry.sourceStates()).toEqual([
      { id: "file", synced: false, lastSyncMs: 0 },
      { id: "static", synced: false, lastSyncMs: 0 },
    ]);
    registry.apply("static", { kind: "reset", services: [svc("a", [1])] });
    registry.markSynced("static");
    now = 5000;
    registry.apply("file", { kind: "reset", services: [] });
    registry.markSynced("file");
    now = 9000;
    // A later update (a watched file changing) refreshes the time.
    registry.apply("file", { kind: "add", services: [svc("b", [2])] });
    expect(registry.sourceStates()).toEqual([
      { id: "file", synced: true, lastSyncMs: 9000 },
      { id: "static", synced: true, lastSyncMs: 1000 },
    ]);
  });
});

describe("ServiceRegistry: what an update to one service costs", () => {
  it("publishes a frozen array of frozen, distinct endpoints as it is, without a copy", () => {
    const registry = new ServiceRegistry();
    const endpoints = Object.freeze([
      Object.freeze(ep(1, { labels: Object.freeze({}) })),
      Object.freeze(ep(2, { labels: Object.freeze({}) })),
    ]);
    registry.apply("s", {
      kind: "add",
      services: [{ name: "a", namespace: "default", endpoints }],
    });
    expect(registry.get("a.default")?.endpoints).toBe(endpoints);
  });

  it("still de-duplicates a frozen array that holds one id twice", () => {
    const registry = new ServiceRegistry();
    const one = Object.freeze(ep(1, { labels: Object.freeze({}) }));
    const endpoints = Object.freeze([one, one]);
    registry.apply("s", {
      kind: "add",
      services: [{ name: "a", namespace: "default", endpoints }],
    });
    expect(registry.get("a.default")?.endpoints).toEqual([one]);
  });

  it("an update of one service leaves every other snapshot as the same object", () => {
    const registry = new ServiceRegistry();
    const events = record(registry);
    registry.apply("s", { kind: "reset", services: [svc("a", [1]), svc("b", [2])] });
    const b = registry.get("b.default");
    registry.apply("s", { kind: "add", services: [svc("a", [1, 3])] });
    expect(registry.get("b.default")).toBe(b);
    expect(events).toEqual(["a.default:1", "b.default:2", "a.default:1,3"]);
  });
});
