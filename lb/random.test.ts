import { describe, expect, it } from "vitest";
import type { Endpoint } from "../discovery/endpoint.js";
import { AliasTable } from "./alias-table.js";
import { EMPTY_PICK_CONTEXT } from "./balancer.js";
import { RandomBalancer } from "./random.js";
import { chiSquare, seededRandom } from "./testing.js";

function endpoint(port: number, weight = 1): Endpoint {
  return { id: `10.0.0.1:${port}`, host: "10.0.0.1", port, weight, labels: {}, ready: true };
}

/** Picks per endpoint (by position in `endpoints`) over `count` picks. */
function counts(
  balancer: RandomBalancer,
  endpoints: readonly Endpoint[],
  count: number,
  exclude?: ReadonlySet<string>,
): number[] {
  const out = endpoints.map(() => 0);
  const ctx = exclude ? { exclude } : EMPTY_PICK_CONTEXT;
  for (let i = 0; i < count; i++) out[endpoints.indexOf(balancer.pick(ctx)!)]!++;
  return out;
}

/** A random source that replays `values`, then repeats the last one. */
function scripted(...values: number[]): () => number {
  let i = 0;
  return () => values[Math.min(i++, values.length - 1)]!;
}

describe("AliasTable", () => {
  it("gives each index exactly its share of [0, 1)", () => {
    const weights = [1, 2, 3, 0, 10, 128, 7];
    const table = new AliasTable(weights);
    const total = weights.reduce((a, b) => a + b, 0);
    const steps = 1_000_000;
    const hits = weights.map(() => 0);
    // An even sweep of u measures the table's shares without sampling noise.
    for (let j = 0; j < steps; j++) hits[table.pick((j + 0.5) / steps)]!++;
    weights.forEach((w, i) => {
      expect(hits[i]! / steps).toBeCloseTo(w / total, 4);
    });
  });

  it("stays in range for u = 1 and a single entry", () => {
    expect(new AliasTable([1, 2]).pick(1)).toBeLessThan(2);
    expect(new AliasTable([5]).pick(0.99)).toBe(0);
  });
});

describe("RandomBalancer", () => {
  it("returns undefined with no endpoints", () => {
    const balancer = new RandomBalancer({ random: Math.random });
    expect(balancer.pick(EMPTY_PICK_CONTEXT)).toBeUndefined();
    balancer.update([endpoint(1)]);
    balancer.update([]);
    expect(balancer.pick(EMPTY_PICK_CONTEXT)).toBeUndefined();
  });

  it("is uniform over equal weights (chi-square over 100,000 picks, p = 0.001)", () => {
    const endpoints = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((p) => endpoint(p, 3));
    const balancer = new RandomBalancer({ random: seededRandom(11) });
    balancer.update(endpoints);
    const result = chiSquare(
      counts(balancer, endpoints, 100_000),
      endpoints.map(() => 1),
    );
    expect(result.statistic).toBeLessThan(result.critical);
  });

  it("follows differing weights (chi-square over 100,000 picks, p = 0.001)", () => {
    const weights = [1, 2, 5, 10, 32, 128];
    const endpoints = weights.map((w, i) => endpoint(i + 1, w));
    const balancer = new RandomBalancer({ random: seededRandom(12) });
    balancer.update(endpoints);
    const observed = counts(balancer, endpoints, 100_000);
    const result = chiSquare(observed, weights);
    expect(result.statistic).toBeLessThan(result.critical);
    // And not merely uniform: the heaviest endpoint gets most picks.
    expect(observed[5]).toBeGreaterThan(60_000);
  });

  it("maps draws onto endpoints in order when weights are equal", () => {
    const endpoints = [endpoint(1), endpoint(2), endpoint(3), endpoint(4)];
    const balancer = new RandomBalancer({ random: scripted(0, 0.3, 0.5, 0.99, 1) });
    balancer.update(endpoints);
    const ports = [1, 2, 3, 4, 5].map(() => balancer.pick(EMPTY_PICK_CONTEXT)!.port);
    expect(ports).toEqual([1, 2, 3, 4, 4]);
  });

  it("never returns an excluded endpoint while another remains, and keeps the weights", () => {
    const weights = [1, 4, 5];
    const endpoints = weights.map((w, i) => endpoint(i + 1, w));
    const balancer = new RandomBalancer({ random: seededRandom(13) });
    balancer.update(endpoints);
    const observed = counts(balancer, endpoints, 100_000, new Set([endpoints[2]!.id]));
    expect(observed[2]).toBe(0);
    const result = chiSquare(observed.slice(0, 2), [1, 4]);
    expect(result.statistic).toBeLessThan(result.critical);
  });

  it("walks to a free endpoint when redraws keep hitting excluded ones", () => {
    const endpoints = [endpoint(1), endpoint(2), endpoint(3), endpoint(4)];
    // Every draw lands on endpoint 1 (excluded); the weighted pass at 0 finds 2.
    const balancer = new RandomBalancer({ random: () => 0 });
    balancer.update(endpoints);
    expect(balancer.pick({ exclude: new Set([endpoints[0]!.id]) })?.port).toBe(2);
  });

  it("picks as if nothing were excluded when everything is", () => {
    const endpoints = [endpoint(1), endpoint(2)];
    const balancer = new RandomBalancer({ random: scripted(0.7, 0.1, 0.1, 0.1, 0.1) });
    balancer.update(endpoints);
    const all = new Set(endpoints.map((e) => e.id));
    expect(balancer.pick({ exclude: all })?.port).toBe(2);
  });

  it("never picks an endpoint of weight 0", () => {
    const endpoints = [endpoint(1, 0), endpoint(2), endpoint(3, 0)];
    const balancer = new RandomBalancer({ random: seededRandom(14) });
    balancer.update(endpoints);
    expect(counts(balancer, endpoints, 1000)).toEqual([0, 1000, 0]);
    balancer.update([endpoint(1, 0)]);
    expect(balancer.pick(EMPTY_PICK_CONTEXT)).toBeUndefined();
  });

  it("picks from the new set after an update", () => {
    const balancer = new RandomBalancer({ random: seededRandom(15) });
    balancer.update([endpoint(1), endpoint(2, 9)]);
    const next = [endpoint(3), endpoint(4)];
    balancer.update(next);
    const observed = counts(balancer, next, 10_000);
    expect(observed[0]! + observed[1]!).toBe(10_000);
    // Equal weights again: roughly even, not the old 1:9.
    expect(observed[0]).toBeGreaterThan(4500);
  });

  it("reports its canonical policy name", () => {
    expect(new RandomBalancer({ random: Math.random }).policy).toBe("random");
  });
});
