import type { Endpoint } from "../discovery/endpoint.js";
import { type ActiveCount, ActiveRequests } from "./active-requests.js";
import { AliasTable } from "./alias-table.js";
import {
  type Balancer,
  type BalancerOptions,
  DEFAULT_LB_SETTINGS,
  type LoadBalancerSettings,
  type PickContext,
} from "./balancer.js";
import { equalWeights, takingRequests } from "./weights.js";

/** Redraws for one sampled slot that keeps landing on excluded endpoints (retries). */
const EXCLUDED_REDRAWS = 4;

/**
 * Least-request by the power of `choiceCount` choices (Envoy's default 2): sample that many
 * endpoints at random and send the request to the least loaded of them. Sampling a few instead
 * of scanning all keeps a pick O(choiceCount), and spreads a burst over several endpoints where
 * "the global least loaded" would send it all to one.
 *
 * Weights: endpoints are sampled in proportion to weight (an alias table) and compared by
 * active requests per unit of weight (active / weight); ties go to the first sampled. When idle
 * the split is then exactly proportional to weight, and under load active requests tend towards
 * proportional to weight. (Scoring weight / (active + 1) on top of weighted sampling would count
 * the weight twice: idle endpoints weighted 2:1 would split 8:1.) With equal weights this is
 * plain "fewest active requests".
 *
 * Active requests are counted per endpoint id through `onStart`/`onEnd` and survive `update`.
 */
export class LeastRequestBalancer implements Balancer {
  readonly policy = "least-request";
  readonly #random: () => number;
  readonly #choices: number;
  readonly #requests = new ActiveRequests();
  #endpoints: readonly Endpoint[] = [];
  /** Counts of #endpoints, by the same index. */
  #counts: ActiveCount[] = [];
  /** Weights of #endpoints, by the same index. */
  #weights = new Float64Array(0);
  /** Set when the weights differ. */
  #table: AliasTable | undefined;

  constructor(options: Pick<BalancerOptions, "random"> & { settings?: LoadBalancerSettings }) {
    this.#random = options.random;
    this.#choices = Math.max(1, options.settings?.choiceCount ?? DEFAULT_LB_SETTINGS.choiceCount);
  }

  update(endpoints: readonly Endpoint[]): void {
    const next = takingRequests(endpoints);
    this.#endpoints = next;
    this.#counts = this.#requests.track(next);
    this.#weights = Float64Array.from(next, (endpoint) => endpoint.weight);
    this.#table = equalWeights(next) ? undefined : new AliasTable(this.#weights);
  }

  pick(ctx: PickContext): Endpoint | undefined {
    const endpoints = this.#endpoints;
    const n = endpoints.length;
    if (n === 0) return undefined;
    if (n === 1) return endpoints[0];
    const exclude = ctx.exclude;
    const excluding = exclude !== undefined && exclude.size > 0;
    let best = -1;
    for (let choice = 0; choice < this.#choices; choice++) {
      let candidate = this.#sample();
      if (excluding) {
        for (let draw = 1; exclude.has(endpoints[candidate]!.id); draw++) {
          if (draw === EXCLUDED_REDRAWS) {
            candidate = -1;
            break;
          }
          candidate = this.#sample();
        }
        if (candidate < 0) continue;
      }
      if (best < 0 || this.#lessLoaded(candidate, best)) best = candidate;
    }
    if (best < 0) best = this.#leastLoadedAllowed(exclude!);
    return endpoints[best];
  }

  onStart(endpoint: Endpoint): void {
    this.#requests.start(endpoint);
  }

  onEnd(endpoint: Endpoint, _ok: boolean): void {
    this.#requests.end(endpoint);
  }

  activeOn(endpointId: string): number {
    return this.#requests.activeOn(endpointId);
  }

  #sample(): number {
    const table = this.#table;
    if (table !== undefined) return table.pick(this.#random());
    const n = this.#endpoints.length;
    // A misbehaving random() returning 1 must not index past the end.
    return Math.min(n - 1, Math.floor(this.#random() * n));
  }

  /** active[a] / weight[a] < active[b] / weight[b], multiplied out (exact for integers). */
  #lessLoaded(a: number, b: number): boolean {
    return (
      this.#counts[a]!.active * this.#weights[b]! < this.#counts[b]!.active * this.#weights[a]!
    );
  }

  /**
   * Every sample hit an excluded endpoint (a retry with most of the set tried): the least loaded
   * of those left, by a scan; or, with everything excluded, a plain sample — a retry on a host
   * already tried beats failing outright.
   */
  #leastLoadedAllowed(exclude: ReadonlySet<string>): number {
    const endpoints = this.#endpoints;
    let best = -1;
    for (let i = 0; i < endpoints.length; i++) {
      if (exclude.has(endpoints[i]!.id)) continue;
      if (best < 0 || this.#lessLoaded(i, best)) best = i;
    }
    return best < 0 ? this.#sample() : best;
  }
}
