import type { Endpoint } from "../discovery/endpoint.js";
import type { Balancer, BalancerOptions, PickContext } from "./balancer.js";
import { WeightedBalancer } from "./weighted.js";
import { equalWeights, takingRequests } from "./weights.js";

/**
 * Rotation over the endpoint set. With equal weights (the common case) it is exact rotation:
 * `pick` allocates nothing; without exclusions it is O(1), with exclusions it skips at most
 * `exclude.size` endpoints. When weights differ it honours them, as Envoy's round robin does,
 * by handing over to the smooth weighted scheduler (lb/weighted.ts, O(log n)).
 */
export class RoundRobinBalancer implements Balancer {
  readonly policy = "round-robin";
  #endpoints: readonly Endpoint[] = [];
  /** Index of the endpoint the next pick starts from; always < #endpoints.length when non-empty. */
  #next = 0;
  /** Set while the weights differ: picks go there instead. */
  #weighted: WeightedBalancer | undefined;
  readonly #random: () => number;

  constructor(options: Pick<BalancerOptions, "random">) {
    this.#random = options.random;
  }

  update(endpoints: readonly Endpoint[]): void {
    const next = takingRequests(endpoints);
    const previous = this.#weighted === undefined ? this.#endpoints : [];
    this.#endpoints = next;
    if (!equalWeights(next)) {
      this.#weighted ??= new WeightedBalancer({ random: this.#random });
      this.#weighted.update(next);
      return;
    }
    this.#weighted = undefined;
    if (next.length === 0) {
      this.#next = 0;
      return;
    }
    if (previous.length === 0) {
      // Random start: sidecars that all receive the same list at once (rollout, cold start)
      // would otherwise all send their first request to the same endpoint.
      this.#next = Math.min(next.length - 1, Math.floor(this.#random() * next.length));
      return;
    }
    // Carry on with the endpoint that was due next if it is still there, so a change elsewhere in
    // the set neither repeats nor skips anyone; otherwise keep the position.
    const dueId = previous[this.#next]?.id;
    const index = next.findIndex((endpoint) => endpoint.id === dueId);
    this.#next = index >= 0 ? index : this.#next % next.length;
  }

  pick(ctx: PickContext): Endpoint | undefined {
    if (this.#weighted !== undefined) return this.#weighted.pick(ctx);
    const endpoints = this.#endpoints;
    const count = endpoints.length;
    if (count === 0) return undefined;
    const start = this.#next;
    const exclude = ctx.exclude;
    if (exclude !== undefined && exclude.size > 0) {
      for (let step = 0; step < count; step++) {
        const index = (start + step) % count;
        const endpoint = endpoints[index]!;
        if (!exclude.has(endpoint.id)) {
          this.#next = index + 1 === count ? 0 : index + 1;
          return endpoint;
        }
      }
      // Everything is excluded: a retry on a host already tried beats failing outright.
    }
    this.#next = start + 1 === count ? 0 : start + 1;
    return endpoints[start];
  }
}
