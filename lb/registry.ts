import type { Balancer, BalancerFactory, BalancerOptions } from "./balancer.js";
import { RoundRobinBalancer } from "./round-robin.js";

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

const roundRobin: BalancerFactory = (options) => new RoundRobinBalancer(options);

/**
 * Policy name → factory. Istio's enum spellings (`ROUND_ROBIN`) are aliases of remora's
 * lower-case names so DestinationRule habits carry over.
 */
const balancers = new Map<string, BalancerFactory>([
  ["round-robin", roundRobin],
  ["ROUND_ROBIN", roundRobin],
]);

const defaultOptions: BalancerOptions = {
  random: Math.random,
  clock: () => performance.now(),
};

/** A new balancer for `policy`; throws UnknownBalancerPolicyError for names not registered. */
export function createBalancer(policy: string, options?: Partial<BalancerOptions>): Balancer {
  const factory = balancers.get(policy);
  if (factory === undefined) throw new UnknownBalancerPolicyError(policy);
  return factory({
    random: options?.random ?? defaultOptions.random,
    clock: options?.clock ?? defaultOptions.clock,
  });
}

/** Every accepted policy name, aliases included, in registration order. */
export function knownPolicies(): string[] {
  return [...balancers.keys()];
}

export function isKnownPolicy(policy: string): boolean {
  return balancers.has(policy);
}
