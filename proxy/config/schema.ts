/**
 * The config file's schema: the one place its shape, limits and defaults are written down. Types
 * are derived from it. Names follow Istio's DestinationRule (trafficPolicy, loadBalancer,
 * connectionPool) and VirtualService (timeout) vocabulary so Istio users can read a config
 * without a manual.
 */
import * as z from "zod";
import type { HealthCheckSettings } from "../../health/active-checker.js";
import type { OutlierSettings } from "../../health/outlier-detector.js";
import { parseRetryOn } from "../../health/retry-policy.js";
import type { LoadBalancerSettings } from "../../lb/balancer.js";
import { canonicalPolicy, isKnownPolicy, knownPolicies } from "../../lb/registry.js";
import { formatAddress, isBindHost, parseAddress } from "./address.js";
import { durationSchema } from "./duration.js";

const MAX_UINT32 = 2 ** 32 - 1;

/** An integer field whose every failure (type or range) reads the same. */
function integer(min: number, max: number, what: string) {
  const error = (issue: { input?: unknown }) =>
    issue.input === undefined ? "required" : `expected ${what}: an integer from ${min} to ${max}`;
  return z.int({ error }).min(min, { error }).max(max, { error });
}

/** A positive duration; 0 would mean "never" where never is not a safe answer. */
function positiveDuration(why: string) {
  return durationSchema.refine((ms) => ms > 0, { error: `must be greater than 0s: ${why}` });
}

/** A number from 0 to 1 (a fraction of requests). */
function fraction(what: string) {
  const error = (issue: { input?: unknown }) =>
    issue.input === undefined ? "required" : `expected ${what}: a number from 0 to 1`;
  return z.number({ error }).min(0, { error }).max(1, { error });
}

const port = integer(0, 65535, "a port (0 picks a free one)");

/** Kubernetes object name rules for services and namespaces (RFC 1123 label). */
const DNS_LABEL = /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?$/;
const dnsLabel = z.string().regex(DNS_LABEL, {
  error: (issue) =>
    issue.input === undefined
      ? "required"
      : `expected a DNS-1123 label (lower-case letters, digits and "-", starting and ending with a letter or digit, at most 63 characters), got ${JSON.stringify(issue.input)}`,
});

/** An address to listen on; IPv6 may be written with or without brackets, stored without. */
const bindAddress = z
  .string()
  .refine(isBindHost, {
    error: (issue) =>
      `expected an IP address or host name to listen on, got ${JSON.stringify(issue.input)}`,
  })
  .transform((text) => (text.startsWith("[") ? text.slice(1, -1) : text));

/** A destination `HOST:PORT`, kept as written; parse it with parseAddress. */
const hostPort = z.string().superRefine((text, ctx) => {
  try {
    parseAddress(text);
  } catch (error) {
    ctx.addIssue({ code: "custom", message: (error as Error).message });
  }
});

function isServiceKey(text: string): boolean {
  const [name, namespace, extra] = text.split(".");
  return extra === undefined && DNS_LABEL.test(name ?? "") && DNS_LABEL.test(namespace ?? "");
}

/**
 * `NAME` or `NAME.NAMESPACE` → the registry key `NAME.NAMESPACE` (namespace "default" when
 * omitted), so consumers look the service up without re-parsing.
 */
const serviceRef = z
  .string()
  .refine((text) => isServiceKey(text.includes(".") ? text : `${text}.default`), {
    error: (issue) =>
      `expected NAME or NAME.NAMESPACE (DNS-1123 labels), got ${JSON.stringify(issue.input)}`,
  })
  .transform((text) => (text.includes(".") ? text : `${text}.default`));

const listenerTimeouts = z
  .strictObject({
    /** Time to receive a complete request head; bounds slowloris. 0s disables (Envoy's meaning). */
    requestHeaders: durationSchema.prefault("10s"),
    /** A downstream connection with no request in flight is closed after this; Envoy HCM's 1h. 0s disables. */
    idle: durationSchema.prefault("1h"),
  })
  .prefault({});

/** Fields every listener kind has. */
const listenerCommon = {
  /** Unique; names the listener in logs, metrics and the admin API. */
  name: z.string().min(1, { error: "required: a non-empty name" }),
  /** 0 = an ephemeral port (tests, demos). */
  port,
  timeouts: listenerTimeouts,
  /** Largest request head in KiB; a larger one gets 431. */
  maxRequestHeadersKb: integer(1, 8192, "a size in KiB").default(64),
};

/** Requests from the local app, routed by Host/authority to a mesh service. */
const outboundListener = z.strictObject({
  kind: z.literal("outbound"),
  ...listenerCommon,
  /** Loopback by default: only the local app should reach it. */
  address: bindAddress.default("127.0.0.1"),
});

/** Requests from the mesh, forwarded to the local application. */
const inboundListener = z.strictObject({
  kind: z.literal("inbound"),
  ...listenerCommon,
  /** All interfaces by default: peers in other pods connect here. */
  address: bindAddress.default("0.0.0.0"),
  /** HOST:PORT of the local application. */
  app: hostPort,
});

/** Raw TCP proxied to one service (databases, brokers). */
const tcpListener = z.strictObject({
  kind: z.literal("tcp"),
  ...listenerCommon,
  address: bindAddress.default("127.0.0.1"),
  /** The service to connect to; output is always the key `NAME.NAMESPACE`. */
  service: serviceRef,
});

const LISTENER_KINDS = ["outbound", "inbound", "tcp"] as const;

const listenerSchema = z.discriminatedUnion(
  "kind",
  [outboundListener, inboundListener, tcpListener],
  {
    error: (issue) => {
      if (issue.code !== "invalid_union") return undefined;
      const kind = (issue.input as { kind?: unknown } | undefined)?.kind;
      const expected = `expected ${LISTENER_KINDS.map((k) => `"${k}"`).join(", ")}`;
      return kind === undefined
        ? `required: ${expected}`
        : `${expected}, got ${JSON.stringify(kind)}`;
    },
  },
);

const endpointSchema = z.strictObject({
  /** HOST:PORT: IPv4, [IPv6] or a host name. */
  address: hostPort,
  /**
   * Relative share for weighted policies; Istio's range 1..128, and 0 to stop new requests to
   * the endpoint while in-flight ones finish.
   */
  weight: integer(0, 128, "a weight").default(1),
  /** Free-form labels (version, zone) that subsets select on. */
  labels: z.record(z.string(), z.string()).default(() => ({})),
});

/** A field name (RFC 9110 §5.1 token), stored lower-case for case-insensitive matching. */
const headerName = z
  .string()
  .regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, {
    error: (issue) =>
      issue.input === undefined
        ? "required"
        : `expected a header field name (an RFC 9110 token), got ${JSON.stringify(issue.input)}`,
  })
  .transform((name) => name.toLowerCase());

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

/** Istio's consistentHash (DestinationRule): one key source plus the table sizes. */
const consistentHashSchema = z
  .strictObject({
    httpHeaderName: headerName.optional(),
    httpCookie: z
      .strictObject({
        name: z.string().min(1, { error: "required: the cookie name" }),
        /** Istio's: with a ttl, a request without the cookie gets one generated (Set-Cookie). */
        ttl: durationSchema.prefault("0s"),
        path: z.string().startsWith("/", { error: 'expected a path starting with "/"' }).optional(),
      })
      .optional(),
    useSourceIp: z.boolean({ error: "expected true or false" }).optional(),
    httpQueryParameterName: z.string().min(1, { error: "expected a parameter name" }).optional(),
    /** ring-hash: points on the ring at least (Envoy's minimum_ring_size, default 1024). */
    minimumRingSize: integer(1, 8_388_608, "a ring size").default(1024),
    /** maglev: lookup table entries, a prime (Envoy's default 65537). */
    tableSize: integer(2, 5_000_011, "a table size")
      .refine(isPrime, { error: (issue) => `expected a prime table size, got ${issue.input}` })
      .default(65537),
  })
  .superRefine((hash, ctx) => {
    const sources = KEY_SOURCES.filter((key) => hash[key] !== undefined && hash[key] !== false);
    if (sources.length !== 1) {
      ctx.addIssue({
        code: "custom",
        message:
          sources.length === 0
            ? `expected one key source: ${KEY_SOURCES.join(", ")}`
            : `expected one key source, got ${sources.join(" and ")}`,
      });
    }
  });

const KEY_SOURCES = [
  "httpHeaderName",
  "httpCookie",
  "useSourceIp",
  "httpQueryParameterName",
] as const;

/**
 * `trafficPolicy.loadBalancer`: a built-in `policy` (lb/registry.ts; Istio's enum spellings are
 * aliases) or a user's `module`. Output: lb/balancer.ts LoadBalancerSettings, aliases resolved.
 */
const loadBalancerSchema = z
  .strictObject({
    policy: z
      .string()
      .refine(isKnownPolicy, {
        error: (issue) =>
          `unknown load-balancer policy ${JSON.stringify(issue.input)}: expected one of ${knownPolicies().join(", ")}`,
      })
      .optional(),
    /** first-come (required there): requests one endpoint serves at once (HAProxy's maxconn). */
    maxConcurrent: integer(1, MAX_UINT32, "a request count").optional(),
    /** first-come: requests that may wait for a slot; more get 503 UO at once. */
    maxQueue: integer(0, MAX_UINT32, "a request count").default(1024),
    /** first-come: the longest wait for a slot (HAProxy's timeout queue); then 503 UO. */
    queueTimeout: positiveDuration("a queued request must give up some time").prefault("5s"),
    /** least-request: endpoints sampled per pick (Envoy's choice_count). */
    choiceCount: integer(2, 100, "a choice count").default(2),
    /**
     * Envoy's healthy_panic_threshold: below this percentage of healthy endpoints, every
     * endpoint takes requests again (0 disables; Istio's minHealthPercent).
     */
    panicThreshold: integer(0, 100, "a percentage").default(50),
    consistentHash: consistentHashSchema.optional(),
    /** A user's balancer: a JavaScript module, relative to the config file (docs/load-balancing.md). */
    module: z.string().min(1, { error: "expected a module path" }).optional(),
    /** Passed to the user's module as `options`. */
    options: z.record(z.string(), z.unknown()).optional(),
  })
  .superRefine((lb, ctx) => {
    const policy = lb.policy === undefined ? undefined : canonicalPolicy(lb.policy);
    const issue = (path: string, message: string) =>
      ctx.addIssue({ code: "custom", path: [path], message });
    if (lb.module !== undefined && lb.policy !== undefined) {
      issue("module", "expected either policy or module, not both");
    }
    if (lb.options !== undefined && lb.module === undefined) {
      issue("options", "options are for a module's balancer: module is not set");
    }
    const effective = policy ?? (lb.consistentHash !== undefined ? "ring-hash" : undefined);
    if (effective === "first-come" && lb.maxConcurrent === undefined) {
      issue("maxConcurrent", "required for policy first-come: requests per endpoint at once");
    }
    if (effective !== "first-come" && lb.maxConcurrent !== undefined) {
      issue("maxConcurrent", "only policy first-come takes maxConcurrent");
    }
    const hashed = effective === "ring-hash" || effective === "maglev";
    if (hashed && lb.consistentHash === undefined) {
      issue("consistentHash", `required for policy ${effective}: where the hash key comes from`);
    }
    if (!hashed && lb.consistentHash !== undefined && lb.module === undefined) {
      issue("consistentHash", `policy ${effective} does not hash; use ring-hash or maglev`);
    }
  })
  .transform(
    (lb): LoadBalancerSettings => ({
      policy:
        lb.module !== undefined
          ? "module"
          : lb.policy !== undefined
            ? canonicalPolicy(lb.policy)
            : lb.consistentHash !== undefined
              ? "ring-hash"
              : "round-robin",
      maxConcurrent: lb.maxConcurrent ?? 0,
      maxQueue: lb.maxQueue,
      queueTimeoutMs: lb.queueTimeout,
      choiceCount: lb.choiceCount,
      panicThreshold: lb.panicThreshold,
      consistentHash:
        lb.consistentHash === undefined
          ? undefined
          : {
              ...withoutUndefined({
                httpHeaderName: lb.consistentHash.httpHeaderName,
                useSourceIp: lb.consistentHash.useSourceIp,
                httpQueryParameterName: lb.consistentHash.httpQueryParameterName,
              }),
              ...(lb.consistentHash.httpCookie === undefined
                ? {}
                : {
                    httpCookie: withoutUndefined({
                      name: lb.consistentHash.httpCookie.name,
                      ttlMs: lb.consistentHash.httpCookie.ttl,
                      path: lb.consistentHash.httpCookie.path,
                    }) as { name: string; ttlMs: number; path?: string },
                  }),
              minimumRingSize: lb.consistentHash.minimumRingSize,
              tableSize: lb.consistentHash.tableSize,
            },
      module: lb.module === undefined ? undefined : { path: lb.module, options: lb.options ?? {} },
    }),
  );

/** An object without its undefined-valued keys (config_dump and reload comparisons stay tidy). */
function withoutUndefined<T extends Record<string, unknown>>(object: T): Partial<T> {
  const out: Partial<T> = {};
  for (const key of Object.keys(object) as (keyof T)[]) {
    if (object[key] !== undefined) out[key] = object[key];
  }
  return out;
}

/** What a subset may override: its own balancer (connection pools are per endpoint, shared). */
const subsetTrafficPolicySchema = z
  .strictObject({ loadBalancer: loadBalancerSchema.prefault({}) })
  .optional();

/** DestinationRule subsets: named groups of endpoints by label. */
const subsetSchema = z.strictObject({
  name: dnsLabel,
  /** Every label must match (an empty map selects every endpoint). */
  labels: z.record(z.string(), z.string()).default(() => ({})),
  trafficPolicy: subsetTrafficPolicySchema,
});

/** Istio's StringMatch: exactly one of exact, prefix, regex (RE2 there; JavaScript here, anchored). */
const stringMatchSchema = z
  .strictObject({
    exact: z.string().optional(),
    prefix: z.string().optional(),
    regex: z
      .string()
      .superRefine((text, ctx) => {
        try {
          new RegExp(text);
        } catch (error) {
          ctx.addIssue({ code: "custom", message: `invalid regex: ${(error as Error).message}` });
        }
      })
      .optional(),
  })
  .superRefine((match, ctx) => {
    const kinds = (["exact", "prefix", "regex"] as const).filter((k) => match[k] !== undefined);
    if (kinds.length !== 1) {
      ctx.addIssue({
        code: "custom",
        message:
          kinds.length === 0
            ? "expected one of exact, prefix, regex"
            : `expected one of exact, prefix, regex, got ${kinds.join(" and ")}`,
      });
    }
  });

/** One HTTPMatchRequest: every condition given must hold. */
const routeMatchSchema = z.strictObject({
  /** The path (query excluded) of the request target. */
  uri: stringMatchSchema.optional(),
  method: stringMatchSchema.optional(),
  /** Field name (case-insensitive) → match on its value. */
  headers: z
    .record(z.string(), stringMatchSchema)
    .superRefine((headers, ctx) => {
      for (const name of Object.keys(headers)) {
        if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(name)) {
          ctx.addIssue({
            code: "custom",
            path: [name],
            message: `expected a header field name (an RFC 9110 token), got ${JSON.stringify(name)}`,
          });
        }
      }
    })
    .optional(),
});

const routeDestinationSchema = z.strictObject({
  /** A subset of this service; absent = every endpoint. */
  subset: dnsLabel.optional(),
  /** Share of the route's traffic (Istio's: the weights of a route usually add up to 100). */
  weight: integer(0, 100, "a weight from 0 to 100").optional(),
});

/** A VirtualService http route: the first whose match holds takes the request. */
const routeSchema = z
  .strictObject({
    name: z.string().min(1).optional(),
    /** Alternatives (any may hold); absent or empty matches every request. */
    match: z.array(routeMatchSchema).default(() => []),
    route: z.array(routeDestinationSchema).min(1, { error: "at least one destination" }),
  })
  .superRefine((route, ctx) => {
    if (route.route.length > 1 && route.route.some((d) => d.weight === undefined)) {
      ctx.addIssue({
        code: "custom",
        path: ["route"],
        message: "with more than one destination, every destination needs a weight",
      });
    } else if (route.route.length > 1 && route.route.every((d) => d.weight === 0)) {
      ctx.addIssue({
        code: "custom",
        path: ["route"],
        message: "at least one destination needs a weight above 0",
      });
    }
  });

/**
 * DestinationRule outlierDetection (passive health, health/outlier-detector.ts). Absent: off,
 * as in Istio. Output: OutlierSettings (ms).
 */
const outlierDetectionSchema = z
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
const healthCheckSchema = z
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
const retriesSchema = z
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

const trafficPolicySchema = z
  .strictObject({
    loadBalancer: loadBalancerSchema.prefault({}),
    outlierDetection: outlierDetectionSchema.optional(),
    healthCheck: healthCheckSchema.optional(),
    connectionPool: z
      .strictObject({
        tcp: z
          .strictObject({
            /** Istio's default 10s. */
            connectTimeout: positiveDuration("a connect must be able to fail").prefault("10s"),
            /**
             * Cap on upstream connections per service. Istio defaults to 2^32-1 (no cap); remora
             * picks 1024 so a misbehaving upstream cannot exhaust the sidecar's file descriptors.
             */
            maxConnections: integer(1, MAX_UINT32, "a connection count").default(1024),
          })
          .prefault({}),
        http: z
          .strictObject({
            /**
             * An idle upstream keep-alive connection is closed after this. 4s is deliberately
             * shorter than Node's 5s server keepAliveTimeout, so remora closes first instead of
             * reusing a socket the upstream is closing (the 503 "UC" race).
             */
            idleTimeout: positiveDuration("idle keep-alive connections must expire").prefault("4s"),
            /** Requests per upstream connection before it is retired; 0 = unlimited. */
            maxRequestsPerConnection: integer(0, MAX_UINT32, "a request count").default(0),
            /** Requests waiting for an upstream connection at once; beyond it 503 UO (Istio's default: no limit). */
            http1MaxPendingRequests: integer(1, MAX_UINT32, "a request count").default(MAX_UINT32),
            /** Retries in flight for the service at once; beyond it no retry, flag UO (Istio's default: no limit). */
            maxRetries: integer(0, MAX_UINT32, "a retry count").default(MAX_UINT32),
            /**
             * Envoy's retry budget: retries in flight (after a request reached an upstream) may be
             * at most `percent` of the service's active requests, and always `minRetryConcurrency`.
             */
            retryBudget: z
              .strictObject({
                percent: integer(0, 100, "a percentage").default(20),
                minRetryConcurrency: integer(0, MAX_UINT32, "a retry count").default(3),
              })
              .prefault({}),
          })
          .prefault({}),
      })
      .prefault({}),
  })
  .prefault({});

const serviceSchema = z.strictObject({
  name: dnsLabel,
  namespace: dnsLabel.default("default"),
  /** Static endpoints; a service may also get (or only get) endpoints from discovery. */
  endpoints: z.array(endpointSchema).default(() => []),
  trafficPolicy: trafficPolicySchema,
  /** VirtualService per-request timeout; 0s (Istio's default) disables it, otherwise 504 when exceeded. */
  timeout: durationSchema.prefault("0s"),
  /** VirtualService retries: Istio's default is 2 attempts on connect failures and 503s. */
  retries: retriesSchema,
  /** DestinationRule subsets, for routes to name. */
  subsets: z.array(subsetSchema).default(() => []),
  /** VirtualService http routes, first match wins; none = every request to every endpoint. */
  routes: z.array(routeSchema).default(() => []),
});

const servicesList = z.array(serviceSchema).default(() => []);

type ServiceOutput = z.output<typeof serviceSchema>;

/** Duplicate services and duplicate endpoints within a service, for config and discovery files. */
function checkServices(services: readonly ServiceOutput[], ctx: z.RefinementCtx): void {
  const seen = new Map<string, number>();
  services.forEach((service, index) => {
    const key = `${service.name}.${service.namespace}`;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, index);
    else {
      ctx.addIssue({
        code: "custom",
        path: ["services", index, "name"],
        message: `duplicate service ${key} (first defined at services[${first}])`,
      });
    }
    const addresses = new Map<string, number>();
    service.endpoints.forEach((endpoint, at) => {
      const id = endpointId(endpoint.address);
      if (id === undefined) return; // already reported by the field's own check
      const earlier = addresses.get(id);
      if (earlier === undefined) addresses.set(id, at);
      else {
        ctx.addIssue({
          code: "custom",
          path: ["services", index, "endpoints", at, "address"],
          message: `duplicate endpoint ${id} (also endpoints[${earlier}])`,
        });
      }
    });
    checkSubsets(service, ["services", index], ctx);
  });
}

/** Subset names are unique and every route names a subset that exists. */
function checkSubsets(service: ServiceOutput, at: (string | number)[], ctx: z.RefinementCtx): void {
  const subsets = new Map<string, number>();
  (service.subsets ?? []).forEach((subset, index) => {
    const earlier = subsets.get(subset.name);
    if (earlier === undefined) subsets.set(subset.name, index);
    else {
      ctx.addIssue({
        code: "custom",
        path: [...at, "subsets", index, "name"],
        message: `duplicate subset ${subset.name} (also subsets[${earlier}])`,
      });
    }
  });
  (service.routes ?? []).forEach((route, index) => {
    (route.route ?? []).forEach((destination, d) => {
      if (destination.subset === undefined || subsets.has(destination.subset)) return;
      ctx.addIssue({
        code: "custom",
        path: [...at, "routes", index, "route", d, "subset"],
        message: `unknown subset ${JSON.stringify(destination.subset)}: not in this service's subsets`,
      });
    });
  });
}

/** Normalised `host:port`, or undefined when the address is invalid. */
function endpointId(address: string): string | undefined {
  try {
    const { host, port } = parseAddress(address);
    return formatAddress(host, port);
  } catch {
    return undefined;
  }
}

/*
 * The cross-field checks below run even when fields already have issues (zod 4 keeps refining
 * past non-fatal issues), so they must tolerate values that failed their own checks.
 */
export const configSchema = z
  .strictObject({
    admin: z
      .strictObject({
        /** Istio's admin port; 0 picks a free one. */
        port: port.default(15000),
        /** Loopback only: the admin API can drain and stop the proxy. */
        address: bindAddress.default("127.0.0.1"),
      })
      .prefault({}),
    /** `GET /healthz/ready` for the kubelet (Istio's status port); a restart applies changes. */
    probes: z
      .strictObject({
        /** All interfaces: the kubelet probes from the node, not from inside the pod. */
        address: bindAddress.default("0.0.0.0"),
        /** Istio's 15021; 0 picks a free one; null = no probe listener (admin /ready still answers). */
        port: port.nullable().default(15021),
      })
      .prefault({}),
    /** Optional extra endpoint source: a watched YAML file with a top-level `services:` list. */
    discovery: z
      .strictObject({ file: z.string().min(1, { error: "required: a file path" }) })
      .optional(),
    listeners: z.array(listenerSchema).min(1, { error: "at least one listener is required" }),
    services: servicesList,
    /** Prometheus metrics (proxy/metrics/, docs/metrics.md). */
    metrics: z
      .strictObject({
        /** false: nothing is counted and no metrics listener starts. */
        enabled: z.boolean({ error: "expected true or false" }).default(true),
        /** The metrics listener (GET /stats/prometheus) on Istio's 15090; null = none (admin still serves it). */
        port: port.nullable().default(15090),
        /** All interfaces by default, as Istio: Prometheus scrapes the pod from outside. */
        address: bindAddress.default("0.0.0.0"),
      })
      .prefault({}),
    /**
     * The workload beside this proxy, for Istio's source_* / destination_* labels. Unset fields
     * are taken at startup from the downward-API environment (name from POD_NAME, namespace from
     * POD_NAMESPACE, serviceAccount from SERVICE_ACCOUNT), else "unknown" (proxy/metrics/workload.ts).
     */
    workload: z
      .strictObject({
        /** Deployment/StatefulSet name; default derived from $POD_NAME ("reviews-v1-5d8f9c7b4-x2x9q" → "reviews-v1"). */
        name: z.string().min(1).optional(),
        namespace: dnsLabel.optional(),
        serviceAccount: z.string().min(1).optional(),
        /** The pod's `app` and `version` labels. */
        app: z.string().min(1).optional(),
        version: z.string().min(1).optional(),
        /** Istio's cluster id (source_cluster / destination_cluster). */
        cluster: z.string().min(1).optional(),
      })
      .prefault({}),
    /** One JSON line per finished exchange with Envoy's default fields (docs/access-log.md). */
    accessLog: z
      .strictObject({
        enabled: z.boolean().default(false),
        /** "stdout", or a file appended to (created if missing); relative to the config file's directory. */
        path: z.string().min(1, { error: 'required: a file path or "stdout"' }).default("stdout"),
        /** Fraction of exchanges logged (1 = every one). */
        sample: fraction("a sampling fraction").default(1),
        /** The one format so far; the key is here so others can be added without a break. */
        format: z
          .literal("json", {
            error: (issue) =>
              `expected "json" (the only format so far), got ${JSON.stringify(issue.input)}`,
          })
          .default("json"),
      })
      .prefault({}),
  })
  .superRefine((config, ctx) => {
    const names = new Map<string, number>();
    const ports = new Map<number, string>();
    if (config.admin.port !== 0) ports.set(config.admin.port, "admin.port");
    // The probe and metrics listeners: null = none, 0 = any free port (never collides).
    for (const key of ["probes", "metrics"] as const) {
      const port = config[key].port;
      if (port === null || port === 0) continue;
      const owner = ports.get(port);
      if (owner === undefined) ports.set(port, `${key}.port`);
      else {
        ctx.addIssue({
          code: "custom",
          path: [key, "port"],
          message: `port ${port} is already used by ${owner}`,
        });
      }
    }
    config.listeners.forEach((listener, index) => {
      const first = names.get(listener.name);
      if (first === undefined) names.set(listener.name, index);
      else {
        ctx.addIssue({
          code: "custom",
          path: ["listeners", index, "name"],
          message: `duplicate listener name "${listener.name}" (also listeners[${first}])`,
        });
      }
      // Port 0 asks the OS for a free port, so any number of those never collide.
      if (listener.port !== 0) {
        const owner = ports.get(listener.port);
        if (owner === undefined) ports.set(listener.port, `listeners[${index}].port`);
        else {
          ctx.addIssue({
            code: "custom",
            path: ["listeners", index, "port"],
            message: `port ${listener.port} is already used by ${owner}`,
          });
        }
      }
    });
    checkServices(config.services, ctx);
    // With a discovery file the service may appear there later, so only a fully static config
    // can be checked here.
    if (config.discovery === undefined) {
      const known = new Set(config.services.map((s) => `${s.name}.${s.namespace}`));
      config.listeners.forEach((listener, index) => {
        // A service that failed its own format check is still raw text; reported already.
        if (listener.kind !== "tcp" || !isServiceKey(listener.service)) return;
        if (!known.has(listener.service)) {
          ctx.addIssue({
            code: "custom",
            path: ["listeners", index, "service"],
            message: `unknown service ${listener.service}: not in services (and no discovery.file is configured)`,
          });
        }
      });
    }
  });

/** A discovery file: the same service entries as the config's `services`. */
export const servicesFileSchema = z
  .strictObject({ services: servicesList })
  .superRefine((file, ctx) => checkServices(file.services, ctx));

/** The parsed config, defaults applied; durations are milliseconds. */
export type RemoraConfig = z.output<typeof configSchema>;
/** What a config file may contain before defaults (used to build configs in code). */
export type RemoraConfigInput = z.input<typeof configSchema>;
export type ListenerConfig = RemoraConfig["listeners"][number];
export type ListenerKind = ListenerConfig["kind"];
export type ServiceConfig = z.output<typeof serviceSchema>;
export type EndpointConfig = z.output<typeof endpointSchema>;
export type RouteConfig = z.output<typeof routeSchema>;
export type TrafficPolicyConfig = z.output<typeof trafficPolicySchema>;
export type ServicesFile = z.output<typeof servicesFileSchema>;
