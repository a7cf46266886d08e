import {
  type Balancer,
  type BalancerFactory,
  type BalancerOptions,
  DEFAULT_LB_SETTINGS,
  type LoadBalancerSettings,
} from "./balancer.js";
import { FirstComeBalancer } from "./first-come.js";
import { LeastRequestBalancer } from "./least-request.js";
import { MaglevBalancer } from "./maglev.js";
import { RandomBalancer } from "./random.js";
import { RingHashBalancer } from "./ring-hash.js";
import { RoundRobinBalancer } from "./round-robin.js";
import { WeightedBalancer } from "./weighted.js";

/** The policy named in config (`trafficPolicy.loadBalancer.policy`) has no balancer. */
export class UnknownBalancerPolicyError extends Error {
  override readonly name = "UnknownBalancerPolicyError";
  readonly code = "REMORA_ERR_UNKNOWN_LB_POLICY";
  readonly policy: string;

  constructor(policy: string) {
    super(
      `unknown load-balancer policy "${policy}": expected one of ${knownPolicies().join(", ")}`,
    );
    this.policy = policy;
  }
}

/** Canonical policy name → factory. One file per algorithm. */
const balancers = new Map<string, BalancerFactory>([
  ["round-robin", (options) => new RoundRobinBalancer(options)],
  ["weighted", (options) => new WeightedBalancer(options)],
  ["first-come", (options) => new FirstComeBalancer(options)],
  ["least-request", (options) => new LeastRequestBalancer(options)],
  ["random", (options) => new RandomBalancer(options)],
  ["ring-hash", (options) => new RingHashBalancer(options)],
  ["maglev", (options) => new MaglevBalancer(options)],
]);

/**
 * Istio's and Envoy's enum spellings → remora's lower-case names, so DestinationRule habits
 * carry over. LEAST_CONN is Istio's deprecated name for LEAST_REQUEST.
 */
const aliases = new Map<string, string>([
  ["ROUND_ROBIN", "round-robin"],
  ["WEIGHTED", "weighted"],
  ["FIRST_COME", "first-come"],
  ["LEAST_REQUEST", "least-request"],
  ["LEAST_CONN", "least-request"],
  ["RANDOM", "random"],
  ["RING_HASH", "ring-hash"],
  ["MAGLEV", "maglev"],
]);

const defaultOptions = {
  random: Math.random,
  clock: () => performance.now(),
};

/** The canonical name of a policy or alias (unknown names come back unchanged). */
export function canonicalPolicy(policy: string): string {
  return aliases.get(policy) ?? policy;
}

/**
 * A new balancer for `settings`; throws UnknownBalancerPolicyError for names not registered.
 * `module` is the factory a user's module exported, required when `settings.policy` is "module"
 * (see lb/module.ts: modules load asynchronously, before balancers are built).
 */
export function createBalancer(
  settings: LoadBalancerSettings | string = DEFAULT_LB_SETTINGS,
  options?: Partial<Omit<BalancerOptions, "settings">>,
  module?: BalancerFactory,
): Balancer {
  const resolved =
    typeof settings === "string"
      ? { ...DEFAULT_LB_SETTINGS, policy: canonicalPolicy(settings) }
      : settings;
  const factory = resolved.policy === "module" ? module : balancers.get(resolved.policy);
  if (factory === undefined) throw new UnknownBalancerPolicyError(resolved.policy);
  return factory({
    random: options?.random ?? defaultOptions.random,
    clock: options?.clock ?? defaultOptions.clock,
    settings: resolved,
  });
}

/** Every accepted policy name: canonical names, then the aliases whose policy exists. */
export function knownPolicies(): string[] {
  return [
    ...balancers.keys(),
    ...[...aliases].filter(([, policy]) => balancers.has(policy)).map(([alias]) => alias),
  ];
}

export function isKnownPolicy(policy: string): boolean {
  return balancers.has(canonicalPolicy(policy));
}
