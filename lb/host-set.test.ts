import { describe, expect, it } from "vitest";
import type { Endpoint } from "../discovery/endpoint.js";
import { matchesLabels, selectHosts } from "./host-set.js";

function endpoint(port: number, extra: Partial<Endpoint> = {}): Endpoint {
  return {
    id: `127.0.0.1:${port}`,
    host: "127.0.0.1",
    port,
    weight: 1,
    labels: {},
    ready: true,
    ...extra,
  };
}

const ports = (selection: { endpoints: readonly Endpoint[] }) =>
  selection.endpoints.map((e) => e.port);

describe("selectHosts", () => {
  const ten = Array.from({ length: 10 }, (_, i) => endpoint(i + 1));
  const unhealthy = (down: number[]) => (e: Endpoint) => !down.includes(e.port);

  it("leaves unhealthy endpoints out while enough are healthy", () => {
    const selection = selectHosts(ten, unhealthy([1, 2, 3, 4, 5]), 50);
    expect(selection.panic).toBe(false);
    expect(ports(selection)).toEqual([6, 7, 8, 9, 10]);
    expect(selection).toMatchObject({ total: 10, healthy: 5 });
  });

  it("uses every endpoint again below the panic threshold", () => {
    const selection = selectHosts(ten, unhealthy([1, 2, 3, 4, 5, 6]), 50);
    expect(selection.panic).toBe(true);
    expect(ports(selection)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(selection.healthy).toBe(4);
  });

  it("never panics with threshold 0, even with nothing healthy", () => {
    const selection = selectHosts(ten, () => false, 0);
    expect(selection.panic).toBe(false);
    expect(selection.endpoints).toEqual([]);
  });

  it("panics when nothing is healthy (threshold above 0)", () => {
    expect(selectHosts(ten, () => false, 1).panic).toBe(true);
  });

  it("is not in panic when every endpoint is healthy", () => {
    expect(selectHosts(ten, () => true, 100).panic).toBe(false);
  });

  it("never sends new requests to weight 0, panic or not", () => {
    const set = [endpoint(1, { weight: 0 }), endpoint(2), endpoint(3)];
    expect(ports(selectHosts(set, () => true, 50))).toEqual([2, 3]);
    expect(ports(selectHosts(set, () => false, 50))).toEqual([2, 3]);
  });

  it("ignores not-ready endpoints, which do not count in the percentage", () => {
    const set = [endpoint(1, { ready: false }), endpoint(2, { ready: false }), endpoint(3)];
    const selection = selectHosts(set, () => true, 50);
    expect(ports(selection)).toEqual([3]);
    expect(selection.total).toBe(1);
  });
});

describe("matchesLabels", () => {
  const labels = { version: "v1", zone: "a" };

  it("matches when every selector label is equal", () => {
    expect(matchesLabels(labels, { version: "v1" })).toBe(true);
    expect(matchesLabels(labels, { version: "v1", zone: "a" })).toBe(true);
  });

  it("fails on a different value or a missing label", () => {
    expect(matchesLabels(labels, { version: "v2" })).toBe(false);
    expect(matchesLabels(labels, { version: "v1", zone: "b" })).toBe(false);
    expect(matchesLabels(labels, { version: "v1", track: "canary" })).toBe(false);
    expect(matchesLabels({}, { version: "v1" })).toBe(false);
  });

  it("compares values exactly (no case folding, no empty-means-any)", () => {
    expect(matchesLabels(labels, { version: "V1" })).toBe(false);
    expect(matchesLabels(labels, { version: "" })).toBe(false);
    expect(matchesLabels({ version: "" }, { version: "" })).toBe(true);
  });

  it("selects every endpoint with an empty selector", () => {
    expect(matchesLabels(labels, {})).toBe(true);
    expect(matchesLabels({}, {})).toBe(true);
  });

  it("reads only the labels' own properties", () => {
    const inherited = Object.create({ version: "v1" }) as Record<string, string>;
    expect(matchesLabels(inherited, { version: "v1" })).toBe(false);
    expect(matchesLabels({}, { constructor: "x" })).toBe(false);
  });
});
