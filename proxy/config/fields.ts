/**
 * Field helpers every part of the config schema shares: one wording for every integer, duration
 * and name error, so messages read the same whichever section they come from.
 */
import * as z from "zod";
import { durationSchema } from "./duration.js";

export const MAX_UINT32 = 2 ** 32 - 1;

/** An integer field whose every failure (type or range) reads the same. */
export function integer(min: number, max: number, what: string) {
  const error = (issue: { input?: unknown }) =>
    issue.input === undefined ? "required" : `expected ${what}: an integer from ${min} to ${max}`;
  return z.int({ error }).min(min, { error }).max(max, { error });
}

/** A positive duration; 0 would mean "never" where never is not a safe answer. */
export function positiveDuration(why: string) {
  return durationSchema.refine((ms) => ms > 0, { error: `must be greater than 0s: ${why}` });
}

/** A number from 0 to 1 (a fraction of requests). */
export function fraction(what: string) {
  const error = (issue: { input?: unknown }) =>
    issue.input === undefined ? "required" : `expected ${what}: a number from 0 to 1`;
  return z.number({ error }).min(0, { error }).max(1, { error });
}

/** Kubernetes object name rules for services and namespaces (RFC 1123 label). */
export const DNS_LABEL = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;
export const dnsLabel = z.string().regex(DNS_LABEL, {
  error: (issue) =>
    issue.input === undefined
      ? "required"
      : `expected a DNS-1123 label (lower-case letters, digits and "-", starting and ending with a letter or digit, at most 63 characters), got ${JSON.stringify(issue.input)}`,
});

/** A field name (RFC 9110 §5.1 token), stored lower-case for case-insensitive matching. */
export const headerName = z
  .string()
  .regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, {
    error: (issue) =>
      issue.input === undefined
        ? "required"
        : `expected a header field name (an RFC 9110 token), got ${JSON.stringify(issue.input)}`,
  })
  .transform((name) => name.toLowerCase());

export function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}
