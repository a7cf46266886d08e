import { describe, expect, it } from "vitest";
import { HttpParseError } from "./errors.js";

describe("HttpParseError", () => {
  it("carries no stack trace (malformed input is not a code fault) and leaves the limit as it was", () => {
    const before = Error.stackTraceLimit;
    const error = new HttpParseError(400, "BARE_CR", "bare CR in a field line");
    expect(error).toBeInstanceOf(Error);
    expect(error.message).toBe("bare CR in a field line");
    expect(error.status).toBe(400);
    expect(error.reason).toBe("BARE_CR");
    expect(error.stack).not.toMatch(/\n\s+at /);
    expect(Error.stackTraceLimit).toBe(before);
    expect(new Error("other").stack).toMatch(/\n\s+at /);
  });
});
