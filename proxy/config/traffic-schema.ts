/**
 * The config schema's load-balancing and routing part: DestinationRule `loadBalancer` and
 * `subsets`, VirtualService `http` routes (lb/, proxy/routing/).
 */
import * as z from "zod";
import type { LoadBalancerSettings } from "../../lb/balancer.js";
import { canonicalPolicy, isKnownPolicy, knownPolicies } from "../../lb/registry.js";
import { durationSchema } from "./duration.js";
import { dnsLabel, headerName, integer, isPrime, MAX_UINT32, positiveDuration } from "./fields.js";
import { clientTlsSchema } from "./tls-schema.js";

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
export const loadBalancerSchema = z
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

/**
 * What a subset may override: its own balancer, and its own upstream TLS (pools are per endpoint
 * and TLS settings: a subset with other TLS settings gets its own pools).
 */
const subsetTrafficPolicySchema = z
  .strictObject({
    /**
     * Replaces the service's loadBalancer for this subset; absent, the service's applies (Istio
     * merges a subset's trafficPolicy over the service's field by field).
     */
    loadBalancer: loadBalancerSchema.optional(),
    /** Replaces the service's trafficPolicy.tls for this subset's endpoints. */
    tls: clientTlsSchema.optional(),
  })
  .optional();

/** DestinationRule subsets: named groups of endpoints by label. */
export const subsetSchema = z.strictObject({
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
export const routeSchema = z
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
