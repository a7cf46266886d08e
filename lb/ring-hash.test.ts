import { describe, expect, it } from "vitest";
import type { Endpoint } from "../discovery/endpoint.js";
import { DEFAULT_LB_SETTINGS, type LoadBalancerSettings } from "./balancer.js";
import { MAX_RING_SIZE, pointCounts, RingHashBalancer, sortPairs } from "./ring-hash.js";
import { chiSquare, seededRandom } from "./testing.js";

function endpoint(n: number, weight = 1): Endpoint {
  const host = `10.0.${n >> 8}.${n & 255}`;
  return { id: `${host}:8080`, host, port: 8080, weight, labels: {}, ready: true };
}

function settings(minimumRingSize = 1024): LoadBalancerSettings {
  return {
    ...DEFAULT_LB_SETTINGS,
    policy: "ring-hash",
    consistentHash: { httpHeaderName: "x-user", minimumRingSize, tableSize: 65537 },
  };
}

function ringOf(endpoints: readonly Endpoint[], minimumRingSize = 1024, seed = 1) {
  const balancer = new RingHashBalancer({
    random: seededRandom(seed),
    settings: settings(minimumRingSize),
  });
  balancer.update(endpoints);
  return balancer;
}

const KEYS = Array.from({ length: 10_000 }, (_, i) => ({ headers: ["X-User", `user-${i}`] }));

/** The endpoint id each of the 10,000 keys goes to. */
function assignment(balancer: RingHashBalancer): string[] {
  return KEYS.map((ctx) => balancer.pick(ctx)!.id);
}

const ten = Array.from({ length: 10 }, (_, i) => endpoint(i + 1));

describe("RingHashBalancer", () => {
  it("returns undefined with no endpoints", () => {
    const balancer = ringOf([]);
    expect(balancer.pick(KEYS[0]!)).toBeUndefined();
    balancer.update([endpoint(1)]);
    balancer.update([]);
    expect(balancer.pick(KEYS[0]!)).toBeUndefined();
  });

  it("sends the same key to the same endpoint, whatever order the endpoints come in", () => {
    const balancer = ringOf(ten);
    const first = assignment(balancer);
    expect(assignment(balancer)).toEqual(first);
    expect(assignment(ringOf([...ten].reverse(), 1024, 99))).toEqual(first);
    // And the keys are spread, not piled on one endpoint.
    expect(new Set(first).size).toBe(10);
  });

  it("moves about 1/N of keys when one endpoint is added, all to the newcomer", () => {
    const before = assignment(ringOf(ten));
    const newcomer = endpoint(11);
    const after = assignment(ringOf([...ten, newcomer]));
    let moved = 0;
    for (let i = 0; i < KEYS.length; i++) {
      if (before[i] === after[i]) continue;
      moved++;
      expect(after[i]).toBe(newcomer.id);
    }
    // Ideal: 1/11 of 10,000 = 909; the newcomer's arcs vary around that.
    expect(moved).toBeGreaterThan(KEYS.length / 11 / 2);
    expect(moved).toBeLessThan((2 * KEYS.length) / 10);
  });

  it("moves only the removed endpoint's keys when one is removed", () => {
    const before = assignment(ringOf(ten));
    const removed = ten[3]!;
    const after = assignment(ringOf(ten.filter((e) => e !== removed)));
    let moved = 0;
    for (let i = 0; i < KEYS.length; i++) {
      if (before[i] !== removed.id) expect(after[i]).toBe(before[i]);
      else moved++;
    }
    expect(moved).toBeLessThan((2 * KEYS.length) / 10);
  });

  it("gives endpoints shares of keys in proportion to weight", () => {
    const weights = [1, 2, 3, 4];
    const endpoints = weights.map((w, i) => endpoint(i + 1, w));
    const balancer = ringOf(endpoints, 100_000);
    const counts = weights.map(() => 0);
    for (let i = 0; i < 100_000; i++) {
      const id = balancer.pick({ headers: ["x-user", `u${i}`] })!.id;
      counts[endpoints.findIndex((e) => e.id === id)]!++;
    }
    weights.forEach((w, i) => {
      expect(Math.abs(counts[i]! / 100_000 - w / 10)).toBeLessThan(0.02);
    });
  });

  it("sends requests without the key to random endpoints, in proportion to weight", () => {
    const weights = [1, 2, 3, 6];
    const endpoints = weights.map((w, i) => endpoint(i + 1, w));
    const balancer = ringOf(endpoints);
    const counts = weights.map(() => 0);
    for (let i = 0; i < 100_000; i++) {
      const id = balancer.pick({ headers: ["x-other", "v"] })!.id;
      counts[endpoints.findIndex((e) => e.id === id)]!++;
    }
    const result = chiSquare(counts, weights);
    expect(result.statistic).toBeLessThan(result.critical);
  });

  it("picks at random when built without consistentHash settings", () => {
    const balancer = new RingHashBalancer({ random: seededRandom(3) });
    balancer.update(ten);
    const seen = new Set(KEYS.slice(0, 200).map(() => balancer.pick(KEYS[0]!)!.id));
    expect(seen.size).toBe(10);
  });

  it("hashes the source IP when configured", () => {
    const balancer = new RingHashBalancer({
      random: () => 0,
      settings: {
        ...DEFAULT_LB_SETTINGS,
        policy: "ring-hash",
        consistentHash: { useSourceIp: true, minimumRingSize: 1024, tableSize: 65537 },
      },
    });
    balancer.update(ten);
    const ids = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const address = `192.168.0.${i}`;
      const id = balancer.pick({ sourceAddress: address })!.id;
      expect(balancer.pick({ sourceAddress: address })!.id).toBe(id);
      ids.add(id);
    }
    expect(ids.size).toBeGreaterThan(5);
  });

  it("walks past excluded endpoints as if they had left the ring", () => {
    const excluded = ten[6]!;
    const withAll = ringOf(ten);
    const without = ringOf(ten.filter((e) => e !== excluded));
    const exclude = new Set([excluded.id]);
    for (const ctx of KEYS.slice(0, 2000)) {
      const retry = withAll.pick({ ...ctx, exclude })!;
      expect(retry.id).not.toBe(excluded.id);
      expect(retry.id).toBe(without.pick(ctx)!.id);
    }
  });

  it("keeps a key's own endpoint when everything is excluded", () => {
    const balancer = ringOf(ten.slice(0, 2));
    const exclude = new Set(ten.slice(0, 2).map((e) => e.id));
    for (const ctx of KEYS.slice(0, 100)) {
      expect(balancer.pick({ ...ctx, exclude })).toBe(balancer.pick(ctx));
    }
  });

  it("never picks an endpoint of weight 0", () => {
    const balancer = ringOf([endpoint(1, 0), endpoint(2)]);
    for (const ctx of KEYS.slice(0, 100)) expect(balancer.pick(ctx)!.id).toBe(endpoint(2).id);
  });

  it("puts at least minimumRingSize points on the ring, and one per endpoint", () => {
    expect(ringOf(ten).ringSize).toBe(1280); // 10 × 128 points
    expect(ringOf(ten, 1).ringSize).toBe(10);
    expect(ringOf([endpoint(1, 3), endpoint(2, 5)], 1000).ringSize).toBe(8 * 128);
  });

  it("sizes points by weight with a power-of-two density, capped at 8M", () => {
    const many = (n: number, weight: number) =>
      Array.from({ length: n }, (_, i) => endpoint(i, weight));
    expect(pointCounts([endpoint(1, 1), endpoint(2, 3)], 1024)).toEqual([256, 768]);
    // Adding an endpoint keeps the others' counts (same density) ...
    expect(pointCounts(many(10, 1), 1024)[0]).toBe(pointCounts(many(11, 1), 1024)[0]);
    // ... until the total weight crosses a power of two.
    expect(pointCounts(many(16, 1), 1024)[0]).toBe(64);
    expect(pointCounts(many(10_000, 1), 1024).reduce((a, b) => a + b)).toBe(10_000);
    const huge = pointCounts(many(100_000, 128), 8_388_608);
    expect(huge.reduce((a, b) => a + b)).toBeLessThanOrEqual(MAX_RING_SIZE);
    expect(Math.min(...huge)).toBeGreaterThanOrEqual(1);
  });

  it("reports its canonical policy name", () => {
    expect(ringOf([]).policy).toBe("ring-hash");
  });
});

describe("sortPairs", () => {
  it("sorts keys ascending and carries values with them", () => {
    const random = seededRandom(5);
    for (const n of [0, 1, 2, 1000, 100_000]) {
      const keys = Uint32Array.from({ length: n }, () => Math.floor(random() * 2 ** 32));
      const values = Uint32Array.from({ length: n }, (_, i) => i);
      const original = keys.slice();
      sortPairs(keys, values);
      expect(keys).toEqual(original.slice().sort());
      for (let i = 0; i < n; i++) expect(original[values[i]!]).toBe(keys[i]);
    }
  });
});
