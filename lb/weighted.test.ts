import { describe, expect, it } from "vitest";
import type { Endpoint } from "../discovery/endpoint.js";
import { EMPTY_PICK_CONTEXT } from "./balancer.js";
import { chiSquare, seededRandom } from "./testing.js";
import { WeightedBalancer } from "./weighted.js";

function endpoint(port: number, weight = 1): Endpoint {
  return { id: `10.0.0.1:${port}`, host: "10.0.0.1", port, weight, labels: {}, ready: true };
}

/** Ports of the next `count` picks. */
function picks(balancer: WeightedBalancer, count: number, exclude?: ReadonlySet<string>): number[] {
  const out: number[] = [];
  for (let i = 0; i < count; i++)
    out.push(balancer.pick(exclude ? { exclude } : EMPTY_PICK_CONTEXT)!.port);
  return out;
}

function longestRun(sequence: readonly number[], port: number): number {
  let longest = 0;
  let run = 0;
  for (const p of sequence) {
    run = p === port ? run + 1 : 0;
    longest = Math.max(longest, run);
  }
  return longest;
}

function balancerOf(endpoints: readonly Endpoint[], random: () => number = () => 0) {
  const balancer = new WeightedBalancer({ random });
  balancer.update(endpoints);
  return balancer;
}

describe("WeightedBalancer", () => {
  it("returns undefined with no endpoints", () => {
    const balancer = balancerOf([]);
    expect(balancer.pick(EMPTY_PICK_CONTEXT)).toBeUndefined();
    balancer.update([endpoint(1)]);
    balancer.update([]);
    expect(balancer.pick(EMPTY_PICK_CONTEXT)).toBeUndefined();
  });

  it("spreads 5:1:1 smoothly: A A A B A A C, repeated", () => {
    const balancer = balancerOf([endpoint(1, 5), endpoint(2), endpoint(3)]);
    expect(picks(balancer, 14)).toEqual([1, 1, 1, 2, 1, 1, 3, 1, 1, 1, 2, 1, 1, 3]);
  });

  it("interleaves 2:1 as A A B", () => {
    const balancer = balancerOf([endpoint(1, 2), endpoint(2)]);
    expect(picks(balancer, 9)).toEqual([1, 1, 2, 1, 1, 2, 1, 1, 2]);
  });

  it("rotates exactly with equal weights, whatever the weight", () => {
    expect(picks(balancerOf([endpoint(1), endpoint(2), endpoint(3)]), 7)).toEqual([
      1, 2, 3, 1, 2, 3, 1,
    ]);
    expect(picks(balancerOf([endpoint(1, 7), endpoint(2, 7), endpoint(3, 7)]), 7)).toEqual([
      1, 2, 3, 1, 2, 3, 1,
    ]);
  });

  it("never gives 5:1:1's heavy endpoint more than 3 in a row, from any start", () => {
    for (let start = 0; start < 1; start += 0.01) {
      const sequence = picks(
        balancerOf([endpoint(1, 5), endpoint(2), endpoint(3)], () => start),
        700,
      );
      expect(longestRun(sequence, 1)).toBeLessThanOrEqual(3);
      expect(longestRun(sequence, 2)).toBe(1);
    }
  });

  it("serves each endpoint exactly its weight in every cycle of sum(weights) picks", () => {
    const weights = [1, 2, 3, 5, 8, 13, 128];
    const balancer = balancerOf(
      weights.map((w, i) => endpoint(i + 1, w)),
      seededRandom(1),
    );
    const total = weights.reduce((a, b) => a + b, 0);
    for (let cycle = 0; cycle < 5; cycle++) {
      const counts = new Map<number, number>();
      for (const port of picks(balancer, total)) counts.set(port, (counts.get(port) ?? 0) + 1);
      expect(weights.map((_, i) => counts.get(i + 1))).toEqual(weights);
    }
  });

  it("shares 100,000 picks in proportion to weight (chi-square, p = 0.001)", () => {
    const weights = [1, 3, 7, 10, 20, 64, 100, 128];
    const balancer = balancerOf(
      weights.map((w, i) => endpoint(i + 1, w)),
      seededRandom(7),
    );
    const counts = weights.map(() => 0);
    for (const port of picks(balancer, 100_000)) counts[port - 1]!++;
    const result = chiSquare(counts, weights);
    expect(result.statistic).toBeLessThan(result.critical);
  });

  it("starts at a random point of the cycle, drawn only when starting from empty", () => {
    let calls = 0;
    const random = () => {
      calls++;
      return 0.5;
    };
    const balancer = balancerOf([endpoint(1, 5), endpoint(2), endpoint(3)], random);
    // Virtual time 0.5: due from there are B (0.5), A (0.633), A (0.833, before C's tie), C,
    // then A's next cycle: the same cycle as from 0, entered half-way.
    expect(picks(balancer, 7)).toEqual([2, 1, 1, 3, 1, 1, 1]);
    balancer.update([endpoint(1, 5), endpoint(2)]);
    expect(calls).toBe(1);
    balancer.update([]);
    balancer.update([endpoint(1)]);
    expect(calls).toBe(2);
    // A misbehaving random() returning 1 is still a valid start.
    expect(
      picks(
        balancerOf([endpoint(1), endpoint(2)], () => 1),
        3,
      ),
    ).toEqual([1, 2, 1]);
  });

  it("gives different sidecars different starts", () => {
    const first = (seed: number) =>
      picks(
        balancerOf(
          [1, 2, 3, 4, 5].map((p) => endpoint(p)),
          seededRandom(seed),
        ),
        1,
      )[0];
    const starts = new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map(first));
    expect(starts.size).toBeGreaterThan(1);
  });

  it("serves the earliest non-excluded endpoint and advances only that one", () => {
    const balancer = balancerOf([endpoint(1, 5), endpoint(2), endpoint(3)]);
    // A is due but excluded: B (0.5) then C (0.833) are the earliest others.
    expect(picks(balancer, 3, new Set([endpoint(1).id]))).toEqual([2, 3, 2]);
    // A kept its place: it is still due first, having lost no turn.
    expect(picks(balancer, 3)).toEqual([1, 1, 1]);
  });

  it("picks as if nothing were excluded when everything is", () => {
    const all = new Set([endpoint(1).id, endpoint(2).id]);
    const balancer = balancerOf([endpoint(1, 2), endpoint(2)]);
    expect(picks(balancer, 6, all)).toEqual([1, 1, 2, 1, 1, 2]);
  });

  it("ignores an empty exclusion set and unknown ids", () => {
    const balancer = balancerOf([endpoint(1, 2), endpoint(2)]);
    expect(picks(balancer, 3, new Set())).toEqual([1, 1, 2]);
    expect(picks(balancer, 3, new Set(["10.9.9.9:1"]))).toEqual([1, 1, 2]);
  });

  it("carries on after an update: no burst for a newcomer, everyone at their weight", () => {
    const balancer = balancerOf([endpoint(1, 3), endpoint(2)], seededRandom(3));
    picks(balancer, 101);
    balancer.update([endpoint(1, 3), endpoint(2), endpoint(3, 4)]);
    const after = picks(balancer, 8 * 50);
    // The newcomer runs at its weight from the start, never in a catch-up burst.
    expect(longestRun(after.slice(0, 16), 3)).toBeLessThanOrEqual(2);
    const count = (port: number) => after.filter((p) => p === port).length;
    expect([count(1), count(2), count(3)]).toEqual([150, 50, 200]);
  });

  it("keeps the schedule exactly when an update brings the same list", () => {
    const balancer = balancerOf([endpoint(1, 5), endpoint(2), endpoint(3)]);
    // After A A A B A A, A (5/6) has just beaten C (5/6) on the tie: C is due now.
    expect(picks(balancer, 6)).toEqual([1, 1, 1, 2, 1, 1]);
    balancer.update([endpoint(1, 5), endpoint(2), endpoint(3)]);
    expect(picks(balancer, 8)).toEqual([3, 1, 1, 1, 2, 1, 1, 3]);
  });

  it("follows a weight change at the new pace, without catching up", () => {
    const balancer = balancerOf([endpoint(1), endpoint(2)]);
    picks(balancer, 1000);
    balancer.update([endpoint(1), endpoint(2, 3)]);
    const after = picks(balancer, 40);
    expect(longestRun(after, 2)).toBeLessThanOrEqual(3);
    expect(after.filter((p) => p === 2).length).toBe(30);
  });

  it("forgets removed endpoints and keeps rotating over the rest", () => {
    const balancer = balancerOf([endpoint(1), endpoint(2), endpoint(3), endpoint(4)]);
    expect(picks(balancer, 2)).toEqual([1, 2]);
    balancer.update([endpoint(1), endpoint(3), endpoint(4)]);
    expect(picks(balancer, 6)).toEqual([3, 4, 1, 3, 4, 1]);
  });

  it("never picks an endpoint of weight 0", () => {
    const balancer = balancerOf([endpoint(1, 0), endpoint(2), endpoint(3, 0)]);
    expect(picks(balancer, 3)).toEqual([2, 2, 2]);
    balancer.update([endpoint(1, 0)]);
    expect(balancer.pick(EMPTY_PICK_CONTEXT)).toBeUndefined();
  });

  it("keeps the exact cycle after virtual time is rebased (long runs)", () => {
    const balancer = balancerOf([endpoint(1, 5), endpoint(2), endpoint(3)]);
    // 1,030 cycles cross the rebase at virtual time 1,024.
    picks(balancer, 7 * 1030);
    expect(picks(balancer, 14)).toEqual([1, 1, 1, 2, 1, 1, 3, 1, 1, 1, 2, 1, 1, 3]);
  });

  it("copies the endpoint list so later caller mutation is invisible", () => {
    const list = [endpoint(1), endpoint(2)];
    const balancer = balancerOf(list);
    list.length = 0;
    expect(picks(balancer, 2)).toEqual([1, 2]);
  });

  it("reports its canonical policy name", () => {
    expect(new WeightedBalancer({ random: Math.random }).policy).toBe("weighted");
  });
});
