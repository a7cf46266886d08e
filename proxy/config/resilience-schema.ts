/**
 * The config schema's resilience part: DestinationRule `outlierDetection`, active
 * `healthCheck`s and VirtualService `retries` (health/).
 */
import * as z from "zod";
import type { HealthCheckSettings } from "../../health/active-checker.js";
import type { OutlierSettings } from "../../health/outlier-detector.js";
import { parseRetryOn } from "../../health/retry-policy.js";
import { durationSchema } from "./duration.js";
import { integer, MAX_UINT32, positiveDuration } from "./fields.js";

/**
 * DestinationRule outlierDetection (passive health, health/outlier-detector.ts). Absent: off,
 * as in Istio. Output: OutlierSettings (ms).
 */
export const outlierDetectionSchema = z
  .strictObject({
    /** consecutive (retry-based): eject after consecutiveErrors failures in a row; fail-fast: the first. */
    mode: z
      .enum(["consecutive", "fail-fast"], {
        error: (issue) =>
          `expected "consecutive" or "fail-fast", got ${JSON.stringify(issue.input)}`,
      })
      .default("consecutive"),
    /** 5xx or locally originated failures in a row that eject (Istio's consecutive5xxErrors). */
    consecutiveErrors: integer(0, MAX_UINT32, "a count (0 = off)").optional(),
    /** Istio's name for consecutiveErrors. */
    consecutive5xxErrors: integer(0, MAX_UINT32, "a count (0 = off)").optional(),
    /** 502/503/504 (or locally originated) in a row that eject; 0 = off. */
    consecutiveGatewayErrors: integer(0, MAX_UINT32, "a count (0 = off)").default(0),
    /** With splitExternalLocalOriginErrors: connect failures, resets, timeouts in a row that eject. */
    consecutiveLocalOriginFailures: integer(0, MAX_UINT32, "a count (0 = off)").default(5),
    splitExternalLocalOriginErrors: z.boolean({ error: "expected true or false" }).default(false),
    /** How often ejection multipliers decay (Istio's default 10s). */
    interval: positiveDuration("the sweep must run").prefault("10s"),
    baseEjectionTime: positiveDuration("an ejection must last").prefault("30s"),
    maxEjectionTime: positiveDuration("an ejection must end").prefault("300s"),
    /** Percent of the endpoints that may be ejected at once (at least one). */
    maxEjectionPercent: integer(0, 100, "a percentage").default(10),
  })
  .superRefine((od, ctx) => {
    if (od.consecutiveErrors !== undefined && od.consecutive5xxErrors !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["consecutive5xxErrors"],
        message: "consecutiveErrors and consecutive5xxErrors are the same setting: give one",
      });
    }
  })
  .transform(
    (od): OutlierSettings => ({
      mode: od.mode,
      consecutiveErrors: od.consecutiveErrors ?? od.consecutive5xxErrors ?? 5,
      consecutiveGatewayErrors: od.consecutiveGatewayErrors,
      consecutiveLocalOriginFailures: od.consecutiveLocalOriginFailures,
      splitExternalLocalOriginErrors: od.splitExternalLocalOriginErrors,
      intervalMs: od.interval,
      baseEjectionTimeMs: od.baseEjectionTime,
      maxEjectionTimeMs: od.maxEjectionTime,
      maxEjectionPercent: od.maxEjectionPercent,
    }),
  );

/** A status, or an inclusive range written "200-299". */
const statusRange = z.unknown().transform((value, ctx): [number, number] => {
  if (typeof value === "number" && Number.isInteger(value) && value >= 100 && value <= 599) {
    return [value, value];
  }
  const match = typeof value === "string" ? /^([1-5]\d\d)-([1-5]\d\d)$/.exec(value) : null;
  if (match === null || Number(match[1]) > Number(match[2])) {
    ctx.addIssue({
      code: "custom",
      message: `expected a status code or a range like "200-299", got ${JSON.stringify(value)}`,
    });
    return [0, 0];
  }
  return [Number(match[1]), Number(match[2])];
});

/** Active health checks (health/active-checker.ts). Absent: none. Output: HealthCheckSettings. */
export const healthCheckSchema = z
  .strictObject({
    /** HTTP GET path; ignored with tcp: true. */
    path: z
      .string()
      .startsWith("/", { error: 'expected a path starting with "/"' })
      .default("/healthz"),
    interval: positiveDuration("checks must repeat").prefault("10s"),
    timeout: positiveDuration("a check must be able to fail").prefault("1s"),
    unhealthyThreshold: integer(1, 1000, "a count").default(3),
    healthyThreshold: integer(1, 1000, "a count").default(2),
    expectedStatuses: z
      .array(statusRange)
      .min(1)
      .default(() => [[200, 299] as [number, number]]),
    /** A plain TCP connect instead of HTTP. */
    tcp: z.boolean({ error: "expected true or false" }).default(false),
    /** Interval ± this (default 10% of interval, at most half of it). */
    jitter: durationSchema.optional(),
    /** The Host header of HTTP checks (default the endpoint's address). */
    host: z.string().min(1).optional(),
  })
  .superRefine((hc, ctx) => {
    if (hc.jitter !== undefined && hc.jitter > hc.interval / 2) {
      ctx.addIssue({ code: "custom", path: ["jitter"], message: "at most half the interval" });
    }
  })
  .transform(
    (hc): HealthCheckSettings => ({
      path: hc.path,
      intervalMs: hc.interval,
      timeoutMs: hc.timeout,
      unhealthyThreshold: hc.unhealthyThreshold,
      healthyThreshold: hc.healthyThreshold,
      expectedStatuses: hc.expectedStatuses,
      tcp: hc.tcp,
      ...(hc.jitter === undefined ? {} : { jitterMs: hc.jitter }),
      ...(hc.host === undefined ? {} : { host: hc.host }),
    }),
  );

/** VirtualService retries (HTTPRetry) with remora's safety switch. Output: RetrySettings. */
export const retriesSchema = z
  .strictObject({
    /** Retries after the first attempt; 0 disables every retry (connect failures included). */
    attempts: integer(0, 100, "a retry count").default(2),
    /** Each attempt's timeout, up to its response head; 0s = none. */
    perTryTimeout: durationSchema.prefault("0s"),
    retryOn: z
      .string()
      .superRefine((text, ctx) => {
        try {
          parseRetryOn(text);
        } catch (error) {
          ctx.addIssue({ code: "custom", message: (error as Error).message });
        }
      })
      .default("connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"),
    retriableStatusCodes: z.array(integer(100, 599, "a status code")).default(() => [503]),
    /** Accepted for Istio configs; remora has no localities yet, so it changes nothing. */
    retryRemoteLocalities: z.boolean({ error: "expected true or false" }).default(false),
    /** remora's: also replay non-idempotent requests (POST...) that reached the upstream. */
    retryNonIdempotent: z.boolean({ error: "expected true or false" }).default(false),
  })
  .prefault({});
