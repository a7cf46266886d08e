import * as z from "zod";

/** A duration string could not be parsed. */
export class InvalidDurationError extends Error {
  override readonly name = "InvalidDurationError";
  readonly code = "REMORA_ERR_INVALID_DURATION";
  readonly input: string;

  constructor(input: string, reason = "expected a number followed by ms, s, m or h") {
    super(`invalid duration "${input}": ${reason}`);
    this.input = input;
  }
}

/**
 * Node clamps longer timers to 1 ms (with a TimeoutOverflowWarning), so a longer duration would
 * fire at once instead of "practically never".
 */
export const MAX_DURATION_MS = 2 ** 31 - 1;

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;
const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;

/**
 * `250ms`, `10s`, `1.5s`, `1m`, `1h`, `0s` → milliseconds. The unit is mandatory (a bare `10` is
 * ambiguous between Envoy's seconds and Node's milliseconds), and negatives are rejected.
 */
export function parseDuration(text: string): number {
  const match = DURATION.exec(text);
  if (match === null) throw new InvalidDurationError(text);
  const ms = Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
  if (ms > MAX_DURATION_MS) {
    throw new InvalidDurationError(text, "longer than the longest timer Node supports (24.8 days)");
  }
  return ms;
}

/** A config field holding a duration: the YAML string in, milliseconds out. */
export const durationSchema = z
  .string({
    error: (issue) =>
      `invalid duration ${JSON.stringify(issue.input) ?? "undefined"}: expected a string such as "10s" (a number followed by ms, s, m or h)`,
  })
  .transform((text, ctx) => {
    try {
      return parseDuration(text);
    } catch (error) {
      if (!(error instanceof InvalidDurationError)) throw error;
      ctx.addIssue({ code: "custom", message: error.message });
      return z.NEVER;
    }
  });
