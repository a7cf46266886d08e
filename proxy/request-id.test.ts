import { describe, expect, it } from "vitest";
import { requestId } from "./request-id.js";

describe("requestId", () => {
  it("makes RFC 9562 version-4 UUIDs", () => {
    for (let i = 0; i < 1000; i++) {
      expect(requestId()).toMatch(
        /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      );
    }
  });

  it("does not repeat across pool refills", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) seen.add(requestId());
    expect(seen.size).toBe(5000);
  });
});
