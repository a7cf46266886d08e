/**
 * The config schema's security part: `authorizationPolicies`, Istio's AuthorizationPolicy specs
 * (authz/policy.ts gives the semantics, authz/compile.ts compiles them). Everything a compiled
 * policy could trip on is refused here, with the key path, so compiling never fails.
 */
import * as z from "zod";
import { CONDITION_KEYS, conditionValueKind, parseConditionKey } from "../../authz/conditions.js";
import { ipBlockProblem, stringMatchProblem } from "../../authz/match.js";

/** Kubernetes object names (DNS-1123 subdomain), as an AuthorizationPolicy's metadata.name. */
const POLICY_NAME = /^[a-z0-9](?:[-a-z0-9]*[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]*[a-z0-9])?)*$/;

const policyName = z
  .string({ error: "required: the policy's name" })
  .max(253, { error: "longer than 253 characters" })
  .regex(POLICY_NAME, {
    error: (issue) =>
      `expected a Kubernetes object name (lower-case letters, digits, "-" and "."), got ${JSON.stringify(issue.input)}`,
  });

/** Istio string values: exact, `prefix*`, `*suffix`, or `*` (any non-empty value). */
const stringMatch = z.string({ error: "expected a string" }).superRefine((value, ctx) => {
  const problem = stringMatchProblem(value);
  if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
});
const stringMatches = z.array(stringMatch).optional();

const pathMatch = stringMatch.refine((value) => value.startsWith("/") || value.startsWith("*"), {
  error: (issue) =>
    `expected a path starting with "/" (or "*" for a suffix match), got ${JSON.stringify(issue.input)}`,
});

const ipBlock = z.string({ error: "expected a string" }).superRefine((value, ctx) => {
  const problem = ipBlockProblem(value);
  if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
});
const ipBlockList = z.array(ipBlock).optional();

/** Istio writes ports as strings ("8080"); numbers are taken too. Output: numbers. */
const portValue = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const port = typeof value === "number" ? value : /^\d{1,5}$/.test(value) ? Number(value) : NaN;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    ctx.addIssue({
      code: "custom",
      message: `expected a port: an integer from 1 to 65535, got ${JSON.stringify(value)}`,
    });
    return z.NEVER;
  }
  return port;
});
const portList = z.array(portValue).optional();

const method = z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, {
  error: (issue) => `expected an HTTP method such as GET, got ${JSON.stringify(issue.input)}`,
});

const NO_JWT =
  "JWT request authentication (RequestAuthentication, request principals) is not supported by remora";
const unsupported = (message: string) => z.never({ error: message }).optional();

const SOURCE_FIELDS = [
  "principals",
  "notPrincipals",
  "namespaces",
  "notNamespaces",
  "ipBlocks",
  "notIpBlocks",
  "remoteIpBlocks",
  "notRemoteIpBlocks",
] as const;

const sourceSchema = z
  .strictObject({
    /** Peer identities (`cluster.local/ns/NS/sa/SA`; a `spiffe://` prefix is accepted). */
    principals: stringMatches,
    notPrincipals: stringMatches,
    /** The namespace in the peer's identity. */
    namespaces: stringMatches,
    notNamespaces: stringMatches,
    /** The peer's address: IPs or CIDRs. */
    ipBlocks: ipBlockList,
    notIpBlocks: ipBlockList,
    /** The original client: remora trusts no X-Forwarded-For, so the peer's address too. */
    remoteIpBlocks: ipBlockList,
    notRemoteIpBlocks: ipBlockList,
    requestPrincipals: unsupported(NO_JWT),
    notRequestPrincipals: unsupported(NO_JWT),
  })
  .refine((source) => SOURCE_FIELDS.some((key) => source[key] !== undefined), {
    error: `empty source: set one of ${SOURCE_FIELDS.join(", ")} (a rule without from matches every source)`,
  });

const OPERATION_FIELDS = [
  "hosts",
  "notHosts",
  "methods",
  "notMethods",
  "paths",
  "notPaths",
  "ports",
  "notPorts",
] as const;

const operationSchema = z
  .strictObject({
    /** Host/authority, case-insensitive, with or without the port. */
    hosts: stringMatches,
    notHosts: stringMatches,
    /** Exact, case-sensitive. */
    methods: z.array(method).optional(),
    notMethods: z.array(method).optional(),
    /** The normalised path before `?`: exact, `prefix*`, `*suffix` or `*`. */
    paths: z.array(pathMatch).optional(),
    notPaths: z.array(pathMatch).optional(),
    /** The inbound listener's port. */
    ports: portList,
    notPorts: portList,
  })
  .refine((operation) => OPERATION_FIELDS.some((key) => operation[key] !== undefined), {
    error: `empty operation: set one of ${OPERATION_FIELDS.join(", ")} (a rule without to matches every operation)`,
  });

const conditionSchema = z
  .strictObject({
    key: z.string({ error: `required: one of ${CONDITION_KEYS.join(", ")}` }),
    values: z.array(z.string({ error: "expected a string" })).optional(),
    notValues: z.array(z.string({ error: "expected a string" })).optional(),
  })
  .superRefine((condition, ctx) => {
    const parsed = parseConditionKey(condition.key);
    if (parsed.kind === undefined) {
      ctx.addIssue({ code: "custom", path: ["key"], message: parsed.problem });
      return;
    }
    if (!condition.values?.length && !condition.notValues?.length) {
      ctx.addIssue({ code: "custom", message: "set values or notValues (or both)" });
    }
    const kind = conditionValueKind(parsed.kind);
    for (const list of ["values", "notValues"] as const) {
      condition[list]?.forEach((value, index) => {
        const problem =
          kind === "ip"
            ? ipBlockProblem(value)
            : kind === "port"
              ? /^\d{1,5}$/.test(value) && Number(value) <= 65535
                ? undefined
                : `expected a port number from 0 to 65535, got ${JSON.stringify(value)}`
              : stringMatchProblem(value);
        if (problem !== undefined) {
          ctx.addIssue({ code: "custom", path: [list, index], message: problem });
        }
      });
    }
  });

const ruleSchema = z.strictObject({
  /** Who: one entry must match. Absent: any source. */
  from: z.array(z.strictObject({ source: sourceSchema })).optional(),
  /** What: one entry must match. Absent: any operation. */
  to: z.array(z.strictObject({ operation: operationSchema })).optional(),
  /** Every condition must match. */
  when: z.array(conditionSchema).optional(),
});

const policySchema = z.strictObject({
  /** Unique; names the policy in metrics (`policy` label) and logs. */
  name: policyName,
  /** Istio's default ALLOW. CUSTOM (external authorization) and AUDIT are not supported. */
  action: z
    .enum(["ALLOW", "DENY"], {
      error: (issue) =>
        `expected "ALLOW" or "DENY" (remora does not support CUSTOM or AUDIT), got ${JSON.stringify(issue.input)}`,
    })
    .default("ALLOW"),
  /** One must match for the policy to apply; none (or absent) matches nothing. */
  rules: z.array(ruleSchema).default(() => []),
});

/**
 * Top-level `authorizationPolicies`: Istio AuthorizationPolicy specs applied to every inbound
 * listener's requests (outbound and tcp listeners are not checked). Live on reload.
 */
export const authorizationPoliciesSchema = z
  .array(policySchema)
  .default(() => [])
  .superRefine((policies, ctx) => {
    const names = new Map<string, number>();
    policies.forEach((policy, index) => {
      const first = names.get(policy.name);
      if (first === undefined) names.set(policy.name, index);
      else {
        ctx.addIssue({
          code: "custom",
          path: [index, "name"],
          message: `duplicate policy name "${policy.name}" (also authorizationPolicies[${first}])`,
        });
      }
    });
  });
