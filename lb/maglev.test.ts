import { describe, expect, it } from "vitest";
import type { Endpoint } from "../discovery/endpoint.js";
import { DEFAULT_LB_SETTINGS, type LoadBalancerSettings } from "./balancer.js";
import { buildTable, MaglevBalancer } from "./maglev.js";
import { chiSquare, seededRandom } from "./testing.js";

function endpoint(n: number, weight = 1): Endpoint {
  const host = `10.0.${n >> 8}.${n & 255}`;
  return { id: `${host}:8080`, host, port: 8080, weight, labels: {}, ready: true };
}

function settings(tableSize = 65537): LoadBalancerSettings {
  return {
    ...DEFAULT_LB_SETTINGS,
    policy: "maglev",
    consistentHash: { httpHeaderName: "x-user", minimumRingSize: 1024, tableSize },
  };
}

function maglevOf(endpoints: readonly Endpoint[], tableSize = 65537, seed = 1) {
  const balancer = new MaglevBalancer({
    random: seededRandom(seed),
    settings: settings(tableSize),
  });
  balancer.update(endpoints);
  return balancer;
}

const KEYS = Array.from({ length: 10_000 }, (_, i) => ({ headers: ["X-User", `user-${i}`] }));

function assignment(balancer: MaglevBalancer): string[] {
  return KEYS.map((ctx) => balancer.pick(ctx)!.id);
}

function movedBetween(before: readonly string[], after: readonly string[]): number {
  let moved = 0;
  for (let i = 0; i < before.length; i++) if (before[i] !== after[i]) moved++;
  return moved;
}

const ten = Array.from({ length: 10 }, (_, i) => endpoint(i + 1));

describe("MaglevBalancer", () => {
  it("returns undefined with no endpoints", () => {
    const balancer = maglevOf([]);
    expect(balancer.pick(KEYS[0]!)).toBeUndefined();
    balancer.update([endpoint(1)]);
    balancer.update([]);
    expect(balancer.pick(KEYS[0]!)).toBeUndefined();
  });

  it("sends the same key to the same endpoint, whatever order the endpoints come in", () => {
    const balancer = maglevOf(ten);
    const first = assignment(balancer);
    expect(assignment(balancer)).toEqual(first);
    expect(assignment(maglevOf([...ten].reverse(), 65537, 42))).toEqual(first);
    expect(new Set(first).size).toBe(10);
  });

  it("fills the table evenly: equal weights differ by at most one entry", () => {
    for (const n of [3, 10, 100, 1000]) {
      const counts = [...maglevOf(many(n)).entriesPerEndpoint().values()];
      expect(counts.length).toBe(n);
      expect(counts.reduce((a, b) => a + b)).toBe(65537);
      expect(Math.max(...counts) - Math.min(...counts)).toBeLessThanOrEqual(1);
    }
  });

  it("moves about 1/N of keys when one endpoint is added, most to the newcomer", () => {
    const before = assignment(maglevOf(ten));
    const newcomer = endpoint(11);
    const after = assignment(maglevOf([...ten, newcomer]));
    const moved = movedBetween(before, after);
    const toNewcomer = after.filter((id, i) => id === newcomer.id && before[i] !== id).length;
    // Ideal: 1/11 of 10,000 = 909, all to the newcomer; Maglev reshuffles a little more.
    expect(moved).toBeLessThan((3 * KEYS.length) / 10);
    expect(toNewcomer).toBeGreaterThan(0.8 * (KEYS.length / 11));
    expect(toNewcomer / moved).toBeGreaterThan(0.8);
  });

  it("moves about 1/N of keys when one endpoint is removed, its own among them", () => {
    const before = assignment(maglevOf(ten));
    const removed = ten[3]!;
    const after = assignment(maglevOf(ten.filter((e) => e !== removed)));
    expect(movedBetween(before, after)).toBeLessThan((3 * KEYS.length) / 10);
    expect(after).not.toContain(removed.id);
  });

  it("gives endpoints entries in proportion to weight", () => {
    const weights = [1, 2, 3, 10, 128];
    const endpoints = weights.map((w, i) => endpoint(i + 1, w));
    const entries = maglevOf(endpoints).entriesPerEndpoint();
    const total = weights.reduce((a, b) => a + b);
    endpoints.forEach((e, i) => {
      const share = entries.get(e.id)! / 65537;
      expect(Math.abs(share - weights[i]! / total)).toBeLessThan(0.001);
    });
  });

  it("sends keys in proportion to weight", () => {
    const weights = [1, 3];
    const endpoints = weights.map((w, i) => endpoint(i + 1, w));
    const balancer = maglevOf(endpoints);
    const heavy = assignment(balancer).filter((id) => id === endpoints[1]!.id).length;
    expect(Math.abs(heavy / KEYS.length - 0.75)).toBeLessThan(0.02);
  });

  it("sends requests without the key to random endpoints, in proportion to weight", () => {
    const weights = [1, 2, 3, 6];
    const endpoints = weights.map((w, i) => endpoint(i + 1, w));
    const balancer = maglevOf(endpoints);
    const counts = weights.map(() => 0);
    for (let i = 0; i < 100_000; i++) {
      const id = balancer.pick({ headers: [] })!.id;
      counts[endpoints.findIndex((e) => e.id === id)]!++;
    }
    const result = chiSquare(counts, weights);
    expect(result.statistic).toBeLessThan(result.critical);
  });

  it("rebuilds the same table for the same set, and a fresh one for a new set", () => {
    const balancer = maglevOf(ten);
    const first = assignment(balancer);
    balancer.update(ten.slice(0, 5));
    expect(new Set(assignment(balancer)).size).toBe(5);
    balancer.update(ten);
    expect(assignment(balancer)).toEqual(first);
  });

  it("fills every entry with a valid endpoint index", () => {
    const table = buildTable(many(37), 1009);
    expect(table.length).toBe(1009);
    expect(table.every((index) => index >= 0 && index < 37)).toBe(true);
  });

  it("uses the configured table size", () => {
    const balancer = maglevOf(ten, 101);
    const counts = [...balancer.entriesPerEndpoint().values()];
    expect(counts.reduce((a, b) => a + b)).toBe(101);
  });

  it("leaves endpoints beyond the table size without entries (documented)", () => {
    const balancer = maglevOf(many(20), 7);
    expect(balancer.entriesPerEndpoint().size).toBe(7);
    const reached = new Set(KEYS.map((ctx) => balancer.pick(ctx)!.id));
    expect(reached.size).toBe(7);
  });

  it("probes past excluded endpoints; keeps the key's own when everything is excluded", () => {
    const balancer = maglevOf(ten);
    const exclude = new Set([ten[2]!.id, ten[5]!.id]);
    for (const ctx of KEYS.slice(0, 2000)) {
      const retry = balancer.pick({ ...ctx, exclude })!;
      expect(exclude.has(retry.id)).toBe(false);
      expect(balancer.pick({ ...ctx, exclude })).toBe(retry);
    }
    const all = new Set(ten.map((e) => e.id));
    for (const ctx of KEYS.slice(0, 100)) {
      expect(balancer.pick({ ...ctx, exclude: all })).toBe(balancer.pick(ctx));
    }
  });

  it("never picks an endpoint of weight 0", () => {
    const balancer = maglevOf([endpoint(1, 0), endpoint(2)]);
    for (const ctx of KEYS.slice(0, 100)) expect(balancer.pick(ctx)!.id).toBe(endpoint(2).id);
  });

  it("reports its canonical policy name", () => {
    expect(maglevOf([]).policy).toBe("maglev");
  });
});

function many(n: number): Endpoint[] {
  return Array.from({ length: n }, (_, i) => endpoint(i + 1));
}
