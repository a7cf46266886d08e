import { describe, expect, it } from "vitest";
import { HeldSlices } from "./held-slices.js";

const slicesOf = (events: readonly { slice: string }[]) => events.map((e) => e.slice);

describe("HeldSlices", () => {
  it("keeps the latest event per slice at the place and time of the first one held", () => {
    const held = new HeldSlices();
    held.hold("MODIFIED", "ns/a-1", "ns/a", "a v1", 100);
    held.hold("MODIFIED", "ns/b-1", "ns/b", "b v1", 200);
    held.hold("MODIFIED", "ns/a-1", "ns/a", "a v2", 300);
    expect(held.size).toBe(2);
    expect(held.oldestSince).toBe(100);
    const due = held.takeDue(150, 10);
    expect(due).toEqual([
      { type: "MODIFIED", slice: "ns/a-1", owner: "ns/a", line: "a v2", since: 100 },
    ]);
    expect(held.oldestSince).toBe(200);
  });

  it("takes due events oldest first, at most `limit` at a time", () => {
    const held = new HeldSlices();
    for (let i = 0; i < 5; i++) held.hold("ADDED", `ns/s-${i}`, "ns/s", `v${i}`, i);
    expect(slicesOf(held.takeDue(3, 2))).toEqual(["ns/s-0", "ns/s-1"]);
    expect(slicesOf(held.takeDue(3, 10))).toEqual(["ns/s-2", "ns/s-3"]);
    expect(held.size).toBe(1);
  });

  it("finds a Service's events by the Service the slice names and by the slices filed under it", () => {
    const held = new HeldSlices();
    held.hold("MODIFIED", "ns/a-1", "ns/a", "a", 1);
    held.hold("MODIFIED", "ns/b-1", "ns/b", "b", 2);
    // Filed under a until now, naming c in this version: a's endpoints depend on it too.
    held.hold("MODIFIED", "ns/moved", "ns/c", "moved", 3);
    const events = held.takeFor("ns/a", ["ns/moved", "ns/not-held"]);
    expect(slicesOf(events)).toEqual(["ns/a-1", "ns/moved"]);
    expect(slicesOf(held.takeAll())).toEqual(["ns/b-1"]);
    expect(held.takeFor("ns/c", [])).toEqual([]);
  });

  it("re-files a slice whose Service changed between versions", () => {
    const held = new HeldSlices();
    held.hold("MODIFIED", "ns/x", "ns/a", "x v1", 1);
    held.hold("MODIFIED", "ns/x", "ns/b", "x v2", 2);
    expect(held.takeFor("ns/a", [])).toEqual([]);
    expect(slicesOf(held.takeFor("ns/b", []))).toEqual(["ns/x"]);
    expect(held.size).toBe(0);
  });

  it("drops a slice's event, and every event of a namespace", () => {
    const held = new HeldSlices();
    held.hold("MODIFIED", "shop/a-1", "shop/a", "a", 1);
    held.hold("DELETED", "shop/b-1", "shop/b", "b", 2);
    held.hold("MODIFIED", "web/c-1", "web/c", "c", 3);
    held.drop("shop/a-1");
    expect(held.takeFor("shop/a", [])).toEqual([]);
    held.dropScope("shop");
    expect(slicesOf(held.takeAll())).toEqual(["web/c-1"]);
    held.hold("MODIFIED", "web/c-1", "web/c", "c", 4);
    held.dropScope(undefined);
    expect(held.size).toBe(0);
    expect(held.oldestSince).toBeUndefined();
  });
});
