import { describe, expect, it } from "vitest";
import { InvalidLifetimeError, parseLifetime } from "./lifetime.js";

describe("parseLifetime (the CA tool's --ttl)", () => {
  it.each([
    ["90m", 90 * 60_000],
    ["24h", 86_400_000],
    ["1.5h", 5_400_000],
    ["30d", 30 * 86_400_000],
    ["10y", 3650 * 86_400_000],
    ["60s", 60_000],
    ["100y", 36_500 * 86_400_000],
  ])("%s", (text, ms) => {
    expect(parseLifetime(text)).toBe(ms);
  });

  it.each([
    ["", "expected a number followed by s, m, h, d or y"],
    ["24", "expected a number"],
    ["1w", "expected a number"],
    ["250ms", "expected a number"],
    ["-1d", "expected a number"],
    ["1H", "expected a number"],
    [" 1h", "expected a number"],
    ["59s", "shorter than 1m"],
    ["0d", "shorter than 1m"],
    ["101y", "longer than 100y"],
  ])("rejects %j", (text, reason) => {
    const attempt = () => parseLifetime(text);
    expect(attempt).toThrow(InvalidLifetimeError);
    expect(attempt).toThrow(`invalid ttl ${JSON.stringify(text)}: ${reason}`);
    expect(attempt).toThrow(expect.objectContaining({ code: "REMORA_ERR_INVALID_TTL" }));
  });
});
