import { describe, expect, it } from "vitest";
import { normalizeTarget, pathOf } from "./path.js";

describe("normalizeTarget (Istio's BASE path normalisation)", () => {
  it("returns the very same string for a normal path (nothing to do)", () => {
    const target = "/api/v1/items?x=../y&z=%41";
    expect(normalizeTarget(target)).toBe(target);
    expect(normalizeTarget("*")).toBe("*");
  });

  it.each([
    ["/api/../admin", "/admin"],
    ["/api/./items", "/api/items"],
    ["/a/b/../../admin/x", "/admin/x"],
    ["/..", "/"],
    ["/../../admin", "/admin"],
    ["/a/..", "/"],
    ["/a/.", "/a/"],
    ["/%61dmin", "/admin"],
    ["/api/%2e%2e/admin", "/admin"],
    ["/a%2fb", "/a%2Fb"],
    ["/x%7e", "/x~"],
    ["//admin", "//admin"],
    ["/.well-known/x", "/.well-known/x"],
  ])("%s → %s", (input, expected) => {
    expect(normalizeTarget(input)).toBe(expected);
  });

  it("keeps the query as sent", () => {
    expect(normalizeTarget("/api/../admin?next=/a/../b")).toBe("/admin?next=/a/../b");
  });

  it("pathOf: the part before ?", () => {
    expect(pathOf("/admin?x=1")).toBe("/admin");
    expect(pathOf("/admin")).toBe("/admin");
  });
});
