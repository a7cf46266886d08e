import { describe, expect, it } from "vitest";
import type { Endpoint } from "../discovery/endpoint.js";
import { DEFAULT_LB_SETTINGS, EMPTY_PICK_CONTEXT } from "./balancer.js";
import { LeastRequestBalancer } from "./least-request.js";
import { chiSquare, seededRandom } from "./testing.js";

function endpoint(port: number, weight = 1): Endpoint {
  return { id: `10.0.0.1:${port}`, host: "10.0.0.1", port, weight, labels: {}, ready: true };
}

/** A random source that replays `values`, then repeats the last one. */
function scripted(...values: number[]): () => number {
  let i = 0;
  return () => values[Math.min(i++, values.length - 1)]!;
}

function balancerOf(endpoints: readonly Endpoint[], random: () => number, choiceCount = 2) {
  const balancer = new LeastRequestBalancer({
    random,
    settings: { ...DEFAULT_LB_SETTINGS, policy: "least-request", choiceCount },
  });
  balancer.update(endpoints);
  return balancer;
}

const [a, b, c] = [endpoint(1), endpoint(2), endpoint(3)] as const;
/** Draws that sample a, b and c out of three equal-weight endpoints. */
const [A, B, C] = [0.1, 0.5, 0.9] as const;

describe("LeastRequestBalancer", () => {
  it("returns undefined with no endpoints", () => {
    const balancer = balancerOf([], Math.random);
    expect(balancer.pick(EMPTY_PICK_CONTEXT)).toBeUndefined();
    balancer.update([a]);
    balancer.update([]);
    expect(balancer.pick(EMPTY_PICK_CONTEXT)).toBeUndefined();
  });

  it("sends to the less loaded of two sampled endpoints; ties go to the first sampled", () => {
    const balancer = balancerOf([a, b, c], scripted(A, B, B, A, A, C, C, A));
    balancer.onStart(a);
    expect(balancer.pick(EMPTY_PICK_CONTEXT)).toBe(b); // a (1 active) vs b (0)
    expect(balancer.pick(EMPTY_PICK_CONTEXT)).toBe(b); // b (0) vs a (1)
    balancer.onEnd(a, true);
    expect(balancer.pick(EMPTY_PICK_CONTEXT)).toBe(a); // a vs c, both idle: first sampled
    expect(balancer.pick(EMPTY_PICK_CONTEXT)).toBe(c); // c vs a, both idle: first sampled
  });

  it("avoids a loaded endpoint: it wins only when sampled every time", () => {
    const balancer = balancerOf([a, b, c], seededRandom(21));
    for (let i = 0; i < 10; i++) balancer.onStart(a);
    let toA = 0;
    for (let i = 0; i < 9000; i++) if (balancer.pick(EMPTY_PICK_CONTEXT) === a) toA++;
    // Both samples are a with probability 1/9: about 1,000 of 9,000 (uniform would be 3,000).
    expect(toA).toBeGreaterThan(800);
    expect(toA).toBeLessThan(1200);
  });

  it("samples choiceCount endpoints from settings", () => {
    const balancer = balancerOf([a, b, c], scripted(A, B, C), 3);
    balancer.onStart(a);
    balancer.onStart(b);
    expect(balancer.pick(EMPTY_PICK_CONTEXT)).toBe(c);
  });

  it("keeps active requests even under load, far better than chance", () => {
    const endpoints = Array.from({ length: 10 }, (_, i) => endpoint(i + 1));
    const random = seededRandom(22);
    const balancer = balancerOf(endpoints, random);
    const inFlight: Endpoint[] = [];
    let spreads = 0;
    let samples = 0;
    for (let step = 0; step < 20_000; step++) {
      const chosen = balancer.pick(EMPTY_PICK_CONTEXT)!;
      balancer.onStart(chosen);
      inFlight.push(chosen);
      if (inFlight.length > 100) {
        const done = inFlight.splice(Math.floor(random() * inFlight.length), 1)[0]!;
        balancer.onEnd(done, true);
      }
      if (step >= 1000 && step % 10 === 0) {
        const active = endpoints.map((e) => balancer.activeOn(e.id));
        spreads += Math.max(...active) - Math.min(...active);
        samples++;
      }
    }
    expect(endpoints.reduce((sum, e) => sum + balancer.activeOn(e.id), 0)).toBe(100);
    // The busiest minus the idlest endpoint, on average: 4.4 here; picking at random instead
    // gives 9.7 in the same simulation.
    expect(spreads / samples).toBeLessThan(6);
  });

  it("splits idle traffic in proportion to weight (chi-square over 100,000 picks)", () => {
    const weights = [1, 2, 5, 12];
    const endpoints = weights.map((w, i) => endpoint(i + 1, w));
    const balancer = balancerOf(endpoints, seededRandom(23));
    const counts = weights.map(() => 0);
    for (let i = 0; i < 100_000; i++) counts[balancer.pick(EMPTY_PICK_CONTEXT)!.port - 1]!++;
    const result = chiSquare(counts, weights);
    expect(result.statistic).toBeLessThan(result.critical);
  });

  it("compares load per unit of weight", () => {
    const heavy = endpoint(1, 4);
    const light = endpoint(2, 1);
    // In the alias table for 4:1, a draw of 0.1 samples heavy and 0.6 samples light.
    const balancer = balancerOf([heavy, light], scripted(0.1, 0.6, 0.6, 0.1));
    for (let i = 0; i < 2; i++) balancer.onStart(heavy); // 2 / 4 = 0.5 per unit
    balancer.onStart(light); // 1 / 1 = 1 per unit
    // Light has fewer requests (1 against 2) but more per unit of weight: heavy wins both ways.
    expect(balancer.pick(EMPTY_PICK_CONTEXT)).toBe(heavy);
    expect(balancer.pick(EMPTY_PICK_CONTEXT)).toBe(heavy);
  });

  it("keeps in-flight counts by id across updates", () => {
    // After the second update the set is [c, a, b]: 0.5 samples a, 0.9 samples b.
    const balancer = balancerOf([a, b], scripted(0.5, 0.9));
    balancer.onStart(a);
    balancer.onStart(a);
    balancer.update([b, c]);
    expect(balancer.activeOn(a.id)).toBe(2);
    balancer.update([c, a, b]);
    expect(balancer.activeOn(a.id)).toBe(2);
    // Still loaded after coming back: a loses against idle b although sampled first.
    expect(balancer.pick(EMPTY_PICK_CONTEXT)).toBe(b);
  });

  it("finishes requests on endpoints that left, then forgets them", () => {
    const balancer = balancerOf([a, b], Math.random);
    balancer.onStart(a);
    balancer.update([b]);
    balancer.onEnd(a, false);
    expect(balancer.activeOn(a.id)).toBe(0);
    balancer.update([a, b]);
    expect(balancer.activeOn(a.id)).toBe(0);
  });

  it("ignores onEnd for endpoints it never counted; counts never go negative", () => {
    const balancer = balancerOf([a, b], Math.random);
    expect(() => balancer.onEnd(endpoint(9), true)).not.toThrow();
    expect(balancer.activeOn(endpoint(9).id)).toBe(0);
    balancer.onStart(a);
    balancer.onEnd(a, true);
    balancer.onEnd(a, true);
    expect(balancer.activeOn(a.id)).toBe(0);
    balancer.onStart(a);
    expect(balancer.activeOn(a.id)).toBe(1);
  });

  it("counts a request started on an endpoint outside the set", () => {
    const balancer = balancerOf([a], Math.random);
    balancer.onStart(b);
    expect(balancer.activeOn(b.id)).toBe(1);
    balancer.update([a, b]);
    expect(balancer.activeOn(b.id)).toBe(1);
  });

  it("never returns an excluded endpoint while another remains", () => {
    const balancer = balancerOf([a, b, c], seededRandom(24));
    const exclude = new Set([a.id, b.id]);
    for (let i = 0; i < 200; i++) expect(balancer.pick({ exclude })).toBe(c);
  });

  it("scans for the least loaded allowed endpoint when samples keep hitting excluded ones", () => {
    const balancer = balancerOf([a, b, c], () => 0); // every draw samples a
    balancer.onStart(b);
    expect(balancer.pick({ exclude: new Set([a.id]) })).toBe(c);
  });

  it("picks as if nothing were excluded when everything is", () => {
    const balancer = balancerOf([a, b], scripted(0.9));
    expect(balancer.pick({ exclude: new Set([a.id, b.id]) })).toBe(b);
  });

  it("never picks an endpoint of weight 0", () => {
    const balancer = balancerOf([endpoint(1, 0), b], seededRandom(25));
    for (let i = 0; i < 20; i++) expect(balancer.pick(EMPTY_PICK_CONTEXT)).toBe(b);
  });

  it("reports its canonical policy name", () => {
    expect(balancerOf([], Math.random).policy).toBe("least-request");
  });
});
