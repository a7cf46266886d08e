import type { Endpoint } from "../discovery/endpoint.js";
import { AliasTable } from "./alias-table.js";
import type { Balancer, BalancerOptions, PickContext } from "./balancer.js";
import { equalWeights, takingRequests } from "./weights.js";

/** Draws before a retry's pick stops relying on luck and walks the endpoints it may use. */
const EXCLUDED_REDRAWS = 4;

/**
 * A random endpoint per pick: uniform when weights are equal, in proportion to weight when they
 * differ (an alias table: O(1), one random number per pick). No state between picks, so
 * independent sidecars need no coordination and nothing carries over an update.
 */
export class RandomBalancer implements Balancer {
  readonly policy = "random";
  readonly #random: () => number;
  #endpoints: readonly Endpoint[] = [];
  /** Set when the weights differ. */
  #table: AliasTable | undefined;

  constructor(options: Pick<BalancerOptions, "random">) {
    this.#random = options.random;
  }

  update(endpoints: readonly Endpoint[]): void {
    const next = takingRequests(endpoints);
    this.#endpoints = next;
    this.#table = equalWeights(next) ? undefined : new AliasTable(next.map((e) => e.weight));
  }

  pick(ctx: PickContext): Endpoint | undefined {
    const endpoints = this.#endpoints;
    if (endpoints.length === 0) return undefined;
    const first = this.#draw();
    const exclude = ctx.exclude;
    if (exclude === undefined || exclude.size === 0 || !exclude.has(endpoints[first]!.id)) {
      return endpoints[first];
    }
    // A retry: redrawing keeps the weights among the endpoints still allowed (rejection
    // sampling); after a few misses, one weighted pass over those endpoints does the same in
    // O(n). With everything excluded the first draw stands: a retry on a host already tried
    // beats failing outright.
    for (let draw = 1; draw < EXCLUDED_REDRAWS; draw++) {
      const index = this.#draw();
      if (!exclude.has(endpoints[index]!.id)) return endpoints[index];
    }
    let allowed = 0;
    for (const endpoint of endpoints) if (!exclude.has(endpoint.id)) allowed += endpoint.weight;
    if (allowed === 0) return endpoints[first];
    let target = this.#random() * allowed;
    let last = first;
    for (let i = 0; i < endpoints.length; i++) {
      const endpoint = endpoints[i]!;
      if (exclude.has(endpoint.id)) continue;
      last = i;
      target -= endpoint.weight;
      if (target < 0) break;
    }
    return endpoints[last];
  }

  #draw(): number {
    const table = this.#table;
    return table === undefined ? this.#uniform(this.#endpoints.length) : table.pick(this.#random());
  }

  /** Uniform in [0, count); a misbehaving random() returning 1 must not index past the end. */
  #uniform(count: number): number {
    return Math.min(count - 1, Math.floor(this.#random() * count));
  }
}
