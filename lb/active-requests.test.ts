import { describe, expect, it } from "vitest";
import type { Endpoint } from "../discovery/endpoint.js";
import { ActiveRequests } from "./active-requests.js";

function endpoint(port: number): Endpoint {
  return { id: `10.0.0.1:${port}`, host: "10.0.0.1", port, weight: 1, labels: {}, ready: true };
}

const [a, b, c] = [endpoint(1), endpoint(2), endpoint(3)] as const;

describe("ActiveRequests", () => {
  it("hands out the same count object for an id across updates", () => {
    const requests = new ActiveRequests();
    const [countA] = requests.track([a, b]);
    requests.start(a);
    expect(countA!.active).toBe(1);
    const counts = requests.track([c, a]);
    expect(counts[1]).toBe(countA);
    expect(counts[0]!.active).toBe(0);
  });

  it("forgets an endpoint that left once its last request ends, not before", () => {
    const requests = new ActiveRequests();
    requests.track([a, b]);
    requests.start(a);
    requests.track([b]);
    expect(requests.size).toBe(2);
    requests.end(a);
    expect(requests.size).toBe(1);
    expect(requests.activeOn(a.id)).toBe(0);
  });

  it("forgets idle endpoints that left at the next update", () => {
    const requests = new ActiveRequests();
    requests.track([a, b, c]);
    requests.track([c]);
    expect(requests.size).toBe(1);
  });

  it("ignores ends it never saw start and never goes negative", () => {
    const requests = new ActiveRequests();
    requests.track([a]);
    requests.end(b);
    requests.end(a);
    expect(requests.activeOn(a.id)).toBe(0);
    expect(requests.activeOn(b.id)).toBe(0);
    expect(requests.size).toBe(1);
  });
});
