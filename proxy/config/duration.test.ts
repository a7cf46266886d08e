import { describe, expect, it } from "vitest";
import * as z from "zod";
import {
  durationSchema,
  InvalidDurationError,
  MAX_DURATION_MS,
  parseDuration,
} from "./duration.js";

describe("parseDuration", () => {
  it.each([
    ["0s", 0],
    ["0ms", 0],
    ["250ms", 250],
    ["10s", 10_000],
    ["1.5s", 1500],
    ["1m", 60_000],
    ["90m", 5_400_000],
    ["1h", 3_600_000],
    ["596h", 596 * 3_600_000],
  ])("%s is %d ms", (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each([
    "",
    "10",
    "0",
    "-1s",
    "+1s",
    "1.s",
    ".5s",
    "10x",
    "10 s",
    " 10s",
    "10s ",
    "1h30m",
    "10S",
    "1d",
    "1e3ms",
    "Infinitys",
  ])("rejects %j", (text) => {
    expect(() => parseDuration(text)).toThrow(InvalidDurationError);
  });

  it("names the input and the accepted units", () => {
    try {
      parseDuration("10x");
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidDurationError);
      expect((error as InvalidDurationError).code).toBe("REMORA_ERR_INVALID_DURATION");
      expect((error as Error).message).toBe(
        'invalid duration "10x": expected a number followed by ms, s, m or h',
      );
    }
  });

  it("rejects durations a Node timer cannot hold", () => {
    expect(parseDuration(`${MAX_DURATION_MS}ms`)).toBe(MAX_DURATION_MS);
    expect(() => parseDuration(`${MAX_DURATION_MS + 1}ms`)).toThrow(/longest timer/);
    expect(() => parseDuration("597h")).toThrow(InvalidDurationError);
  });
});

describe("durationSchema", () => {
  const schema = z.object({ t: durationSchema });

  it("turns the string into milliseconds", () => {
    expect(schema.parse({ t: "250ms" })).toEqual({ t: 250 });
  });

  it("reports a bad string with the duration message at the field's path", () => {
    const result = schema.safeParse({ t: "10x" });
    expect(result.success).toBe(false);
    expect(result.error?.issues).toEqual([
      expect.objectContaining({
        path: ["t"],
        message: 'invalid duration "10x": expected a number followed by ms, s, m or h',
      }),
    ]);
  });

  it("reports a bare number as needing a unit", () => {
    const result = schema.safeParse({ t: 10 });
    expect(result.error?.issues[0]?.message).toMatch(
      /^invalid duration 10: expected a string such as "10s"/,
    );
  });
});
