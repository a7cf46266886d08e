/**
 * Certificate lifetimes for the CA tool's `--ttl`: `90m`, `24h`, `30d`, `10y`. Kept apart from
 * proxy/config/duration.ts on purpose: config durations are timer values, capped at Node's
 * longest timer (24.8 days) and without days or years, and that must not change.
 */

/** A `--ttl` text could not be parsed. */
export class InvalidLifetimeError extends Error {
  override readonly name = "InvalidLifetimeError";
  readonly code = "REMORA_ERR_INVALID_TTL";
  readonly input: string;

  constructor(input: string, reason: string) {
    super(`invalid ttl "${input}": ${reason}`);
    this.input = input;
  }
}

const DAY_MS = 86_400_000;
// A year is 365 days, as in Go's and cert-manager's tooling; certificates do not need calendar years.
const UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: DAY_MS, y: 365 * DAY_MS } as const;
const LIFETIME = /^(\d+(?:\.\d+)?)(s|m|h|d|y)$/;
/** X.509 GeneralizedTime ends at year 9999; 100 years is more than any sane certificate needs. */
export const MAX_LIFETIME_MS = 100 * 365 * DAY_MS;
/** A certificate shorter-lived than a minute expires before anything could load it. */
export const MIN_LIFETIME_MS = 60_000;

/** `90m`, `24h`, `30d`, `10y` (1y = 365d), `1.5h` → milliseconds; at least 1m, at most 100y. */
export function parseLifetime(text: string): number {
  const match = LIFETIME.exec(text);
  if (match === null) {
    throw new InvalidLifetimeError(
      text,
      "expected a number followed by s, m, h, d or y (e.g. 24h, 30d, 10y)",
    );
  }
  const ms = Math.round(Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS]);
  if (ms < MIN_LIFETIME_MS) throw new InvalidLifetimeError(text, "shorter than 1m");
  if (ms > MAX_LIFETIME_MS) throw new InvalidLifetimeError(text, "longer than 100y");
  return ms;
}
