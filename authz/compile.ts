import {
  type ConditionKind,
  conditionValueKind,
  headerValue,
  parseConditionKey,
} from "./conditions.js";
import { IpMatcher, StringMatcher } from "./match.js";
import {
  type AuthorizationPolicyConfig,
  type Authorizer,
  type ConditionConfig,
  NO_ALLOW_MATCHED,
  type OperationConfig,
  type RequestFacts,
  type RuleConfig,
  type SourceConfig,
} from "./policy.js";

/**
 * Compiles validated `authorizationPolicies` into an Authorizer (policy.ts gives the semantics).
 * Done once per config: principals, hosts and paths become StringMatchers, IP blocks BlockLists,
 * methods and ports sets; every rule becomes lists of checks, so a request runs only comparisons.
 */

/** One compiled field test (a source or operation field, or a `when` condition). */
type Check = (facts: RequestFacts) => boolean;

/** undefined when there are no policies: the data path then skips authorization entirely. */
export function compilePolicies(
  policies: readonly AuthorizationPolicyConfig[],
): Authorizer | undefined {
  if (policies.length === 0) return undefined;
  return new CompiledPolicies(policies);
}

class CompiledPolicies implements Authorizer {
  readonly names: readonly string[];
  readonly #deny: readonly CompiledPolicy[];
  readonly #allow: readonly CompiledPolicy[];

  constructor(policies: readonly AuthorizationPolicyConfig[]) {
    this.names = policies.map((p) => p.name);
    const compiled = policies.map((p) => new CompiledPolicy(p));
    this.#deny = compiled.filter((p) => p.action === "DENY");
    this.#allow = compiled.filter((p) => p.action === "ALLOW");
  }

  authorize(facts: RequestFacts): string | undefined {
    for (const policy of this.#deny) if (policy.matches(facts)) return policy.name;
    const allow = this.#allow;
    if (allow.length === 0) return undefined;
    for (const policy of allow) if (policy.matches(facts)) return undefined;
    return NO_ALLOW_MATCHED;
  }
}

class CompiledPolicy {
  readonly name: string;
  readonly action: "ALLOW" | "DENY";
  readonly #rules: readonly CompiledRule[];

  constructor(config: AuthorizationPolicyConfig) {
    this.name = config.name;
    this.action = config.action;
    this.#rules = (config.rules ?? []).map(compileRule);
  }

  /** No rules: never matches (Istio). */
  matches(facts: RequestFacts): boolean {
    for (const rule of this.#rules) if (ruleMatches(rule, facts)) return true;
    return false;
  }
}

/** `from`/`to`: one entry must match (each entry: all its checks); null = absent (any). */
interface CompiledRule {
  readonly from: readonly (readonly Check[])[] | null;
  readonly to: readonly (readonly Check[])[] | null;
  readonly when: readonly Check[];
}

function compileRule(rule: RuleConfig): CompiledRule {
  const from = rule.from ?? [];
  const to = rule.to ?? [];
  return {
    from: from.length === 0 ? null : from.map((entry) => sourceChecks(entry.source)),
    to: to.length === 0 ? null : to.map((entry) => operationChecks(entry.operation)),
    when: (rule.when ?? []).map(conditionCheck),
  };
}

function ruleMatches(rule: CompiledRule, facts: RequestFacts): boolean {
  return (
    (rule.from === null || anyEntry(rule.from, facts)) &&
    (rule.to === null || anyEntry(rule.to, facts)) &&
    allChecks(rule.when, facts)
  );
}

function anyEntry(entries: readonly (readonly Check[])[], facts: RequestFacts): boolean {
  for (const checks of entries) if (allChecks(checks, facts)) return true;
  return false;
}

function allChecks(checks: readonly Check[], facts: RequestFacts): boolean {
  for (const check of checks) if (!check(facts)) return false;
  return true;
}

// ---------------------------------------------------------------- sources and operations

function sourceChecks(source: SourceConfig): Check[] {
  const checks: Check[] = [];
  const principals = (values: readonly string[]) => new StringMatcher(values.map(bareSpiffe));
  const principal = (f: RequestFacts) => f.principal;
  const namespace = (f: RequestFacts) => f.namespace;
  const sourceIp = (f: RequestFacts) => f.sourceIp;
  field(checks, source.principals, source.notPrincipals, principals, principal);
  field(checks, source.namespaces, source.notNamespaces, strings, namespace);
  field(checks, source.ipBlocks, source.notIpBlocks, ips, sourceIp);
  field(checks, source.remoteIpBlocks, source.notRemoteIpBlocks, ips, sourceIp);
  return checks;
}

function operationChecks(operation: OperationConfig): Check[] {
  const checks: Check[] = [];
  const hosts = (values: readonly string[]) => new HostMatcher(values);
  field(checks, operation.hosts, operation.notHosts, hosts, (f) => f.host);
  field(checks, operation.methods, operation.notMethods, exactSet, (f) => f.method);
  field(checks, operation.paths, operation.notPaths, strings, (f) => f.path);
  field(checks, operation.ports, operation.notPorts, portSet, (f) => f.destinationPort);
  return checks;
}

interface Matcher<T> {
  test(value: T): boolean;
}

/** One field and its negation: values → one matches; notValues → none matches. */
function field<T>(
  checks: Check[],
  values: readonly (string | number)[] | undefined,
  notValues: readonly (string | number)[] | undefined,
  compile: (values: readonly never[]) => Matcher<T>,
  read: (facts: RequestFacts) => T,
): void {
  if (values !== undefined && values.length > 0) {
    const matcher = compile(values as never[]);
    checks.push((facts) => matcher.test(read(facts)));
  }
  if (notValues !== undefined && notValues.length > 0) {
    const matcher = compile(notValues as never[]);
    checks.push((facts) => !matcher.test(read(facts)));
  }
}

const strings = (values: readonly string[]) => new StringMatcher(values);
const ips = (values: readonly string[]) => new IpMatcher(values);
const exactSet = (values: readonly string[]) => new SetMatcher<string>(values);
const portSet = (values: readonly number[]) => new SetMatcher<number>(values);

/** Exact values (methods, ports). */
class SetMatcher<T> {
  readonly #values: ReadonlySet<T>;
  constructor(values: readonly T[]) {
    this.#values = new Set(values);
  }
  test(value: T): boolean {
    return this.#values.has(value);
  }
}

/** Principals are matched without `spiffe://` (Istio's form); a configured prefix is dropped. */
function bareSpiffe(value: string): string {
  return value.startsWith("spiffe://") ? value.slice(9) : value;
}

/** Istio's hosts: case-insensitive; `example.com` matches `example.com` and `example.com:8080`. */
class HostMatcher {
  readonly #values: StringMatcher;

  constructor(values: readonly string[]) {
    this.#values = new StringMatcher(values, true);
  }

  test(host: string): boolean {
    const lower = host.toLowerCase();
    if (this.#values.test(lower)) return true;
    const colon = lower.lastIndexOf(":");
    // A port after the host (not inside an IPv6 literal's brackets).
    if (colon <= 0 || lower.indexOf("]", colon) !== -1) return false;
    return this.#values.test(lower.slice(0, colon));
  }
}

// ---------------------------------------------------------------- when

function conditionCheck(condition: ConditionConfig): Check {
  const parsed = parseConditionKey(condition.key);
  if (parsed.kind === undefined) throw new Error(parsed.problem);
  const kind = parsed.kind;
  const header = parsed.header;
  const valueKind = conditionValueKind(kind);
  const compile = (values: readonly string[]): Matcher<string> =>
    valueKind === "ip"
      ? new IpMatcher(values)
      : new StringMatcher(kind === "source.principal" ? values.map(bareSpiffe) : values);
  const values = nonEmpty(condition.values);
  const notValues = nonEmpty(condition.notValues);
  if (kind === "destination.port") {
    const yes = values && new Set(values.map(Number));
    const no = notValues && new Set(notValues.map(Number));
    return (facts) =>
      (yes === undefined || yes.has(facts.destinationPort)) &&
      (no === undefined || !no.has(facts.destinationPort));
  }
  const yes = values && compile(values);
  const no = notValues && compile(notValues);
  if (kind === "header") {
    // An absent header matches no value, so it satisfies notValues.
    return (facts) => {
      const value = headerValue(facts.headers, header);
      if (value === undefined) return yes === undefined;
      return (yes === undefined || yes.test(value)) && (no === undefined || !no.test(value));
    };
  }
  const read = READERS[kind];
  return (facts) => {
    const value = read(facts);
    return (yes === undefined || yes.test(value)) && (no === undefined || !no.test(value));
  };
}

const READERS: Record<Exclude<ConditionKind, "header" | "destination.port">, Reader> = {
  "source.ip": (f) => f.sourceIp,
  // remora trusts no X-Forwarded-For: the original client is the peer.
  "remote.ip": (f) => f.sourceIp,
  "destination.ip": (f) => f.destinationIp,
  "source.namespace": (f) => f.namespace,
  "source.principal": (f) => f.principal,
  "connection.sni": (f) => f.sni,
};

type Reader = (facts: RequestFacts) => string;

function nonEmpty(values: readonly string[] | undefined): readonly string[] | undefined {
  return values !== undefined && values.length > 0 ? values : undefined;
}
