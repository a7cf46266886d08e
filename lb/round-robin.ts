import type { Endpoint } from "../discovery/endpoint.js";
import type { Balancer, BalancerOptions, PickContext } from "./balancer.js";

/**
 * Plain rotation over the endpoint set. Weights are ignored (weighted round-robin is its own
 * algorithm). `pick` allocates nothing; without exclusions it is O(1), with exclusions it skips at
 * most `exclude.size` endpoints.
 */
export class RoundRobinBalancer implements Balancer {
  readonly policy = "round-robin";
  #endpoints: readonly Endpoint[] = [];
  /** Index of the endpoint the next pick starts from; always < #endpoints.length when non-empty. */
  #next = 0;
  readonly #random: () => number;

  constructor(options: Pick<BalancerOptions, "random">) {
    this.#random = options.random;
  }

  update(endpoints: readonly Endpoint[]): void {
    const previous = this.#endpoints;
    const next = endpoints.slice();
    this.#endpoints = next;
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
