import { describe, expect, it } from "vitest";
import type { Endpoint } from "../discovery/endpoint.js";
import { EMPTY_PICK_CONTEXT } from "./balancer.js";
import { RoundRobinBalancer } from "./round-robin.js";

function endpoint(port: number, weight = 1): Endpoint {
  return { id: `10.0.0.1:${port}`, host: "10.0.0.1", port, weight, labels: {}, ready: true };
}

/** Ports of the next `count` picks. */
function picks(
  balancer: RoundRobinBalancer,
  count: number,
  exclude?: ReadonlySet<string>,
): number[] {
  const out: number[] = [];
  for (let i = 0; i < count; i++)
    out.push(balancer.pick(exclude ? { exclude } : EMPTY_PICK_CONTEXT)!.port);
  return out;
}

const [a, b, c, d] = [endpoint(1), endpoint(2), endpoint(3), endpoint(4)] as const;

describe("RoundRobinBalancer", () => {
  it("returns undefined with no endpoints", () => {
    const balancer = new RoundRobinBalancer({ random: () => 0 });
    expect(balancer.pick(EMPTY_PICK_CONTEXT)).toBeUndefined();
    balancer.update([a]);
    balancer.update([]);
    expect(balancer.pick(EMPTY_PICK_CONTEXT)).toBeUndefined();
  });

  it("rotates in order when weights are equal, whatever their value", () => {
    const balancer = new RoundRobinBalancer({ random: () => 0 });
    balancer.update([endpoint(1, 100), endpoint(2, 100), endpoint(3, 100)]);
    expect(picks(balancer, 7)).toEqual([1, 2, 3, 1, 2, 3, 1]);
  });

  it("honours weights when they differ: 5:1:1 smoothly, as the weighted policy does", () => {
    const balancer = new RoundRobinBalancer({ random: () => 0 });
    balancer.update([endpoint(1, 5), b, c]);
    expect(picks(balancer, 14)).toEqual([1, 1, 1, 2, 1, 1, 3, 1, 1, 1, 2, 1, 1, 3]);
  });

  it("switches between rotation and weighted picks as weights change", () => {
    const balancer = new RoundRobinBalancer({ random: () => 0 });
    balancer.update([a, b]);
    expect(picks(balancer, 2)).toEqual([1, 2]);
    balancer.update([endpoint(1, 2), b]);
    expect(picks(balancer, 6)).toEqual([1, 1, 2, 1, 1, 2]);
    balancer.update([a, b, c]);
    expect(picks(balancer, 4)).toEqual([1, 2, 3, 1]);
  });

  it("skips excluded endpoints when weighted too", () => {
    const balancer = new RoundRobinBalancer({ random: () => 0 });
    balancer.update([endpoint(1, 5), b, c]);
    expect(picks(balancer, 3, new Set([a.id]))).toEqual([2, 3, 2]);
  });

  it("never picks an endpoint of weight 0", () => {
    const balancer = new RoundRobinBalancer({ random: () => 0 });
    balancer.update([a, endpoint(2, 0), c]);
    expect(picks(balancer, 4)).toEqual([1, 3, 1, 3]);
    balancer.update([endpoint(2, 0)]);
    expect(balancer.pick(EMPTY_PICK_CONTEXT)).toBeUndefined();
  });

  it("starts at a random offset", () => {
    const start = (random: number) => {
      const balancer = new RoundRobinBalancer({ random: () => random });
      balancer.update([a, b, c, d]);
      return picks(balancer, 5);
    };
    expect(start(0)).toEqual([1, 2, 3, 4, 1]);
    expect(start(0.5)).toEqual([3, 4, 1, 2, 3]);
    expect(start(0.99)).toEqual([4, 1, 2, 3, 4]);
    // A misbehaving random() returning 1 must not index past the end.
    expect(start(1)).toEqual([4, 1, 2, 3, 4]);
  });

  it("randomises only when starting from empty, not on every update", () => {
    let calls = 0;
    const random = () => {
      calls++;
      return 0;
    };
    const balancer = new RoundRobinBalancer({ random });
    balancer.update([a, b]);
    balancer.update([a, b, c]);
    expect(calls).toBe(1);
    balancer.update([]);
    balancer.update([a]);
    expect(calls).toBe(2);
  });

  it("skips excluded endpoints and keeps rotating after them", () => {
    const balancer = new RoundRobinBalancer({ random: () => 0 });
    balancer.update([a, b, c]);
    expect(picks(balancer, 4, new Set([b.id]))).toEqual([1, 3, 1, 3]);
    expect(picks(balancer, 3)).toEqual([1, 2, 3]);
  });

  it("picks from the full set when everything is excluded", () => {
    const balancer = new RoundRobinBalancer({ random: () => 0 });
    balancer.update([a, b]);
    expect(picks(balancer, 3, new Set([a.id, b.id]))).toEqual([1, 2, 1]);
  });

  it("ignores an empty exclusion set and unknown ids", () => {
    const balancer = new RoundRobinBalancer({ random: () => 0 });
    balancer.update([a, b]);
    expect(picks(balancer, 3, new Set())).toEqual([1, 2, 1]);
    expect(picks(balancer, 2, new Set(["10.9.9.9:1"]))).toEqual([2, 1]);
  });

  it("keeps rotating over a new set from the endpoint that was due", () => {
    const balancer = new RoundRobinBalancer({ random: () => 0 });
    balancer.update([a, b, c]);
    expect(picks(balancer, 2)).toEqual([1, 2]); // c is due
    balancer.update([d, a, c]); // b gone, d added, order changed
    expect(picks(balancer, 4)).toEqual([3, 4, 1, 3]);
  });

  it("keeps its position when the due endpoint was removed", () => {
    const balancer = new RoundRobinBalancer({ random: () => 0 });
    balancer.update([a, b, c, d]);
    expect(picks(balancer, 2)).toEqual([1, 2]); // c (index 2) is due
    balancer.update([a, b, d]);
    expect(picks(balancer, 3)).toEqual([4, 1, 2]);
    balancer.update([a]);
    expect(picks(balancer, 2)).toEqual([1, 1]);
  });

  it("copies the endpoint list so later caller mutation is invisible", () => {
    const balancer = new RoundRobinBalancer({ random: () => 0 });
    const list = [a, b];
    balancer.update(list);
    list.length = 0;
    expect(picks(balancer, 2)).toEqual([1, 2]);
  });

  it("reports its canonical policy name", () => {
    expect(new RoundRobinBalancer({ random: Math.random }).policy).toBe("round-robin");
  });
});
