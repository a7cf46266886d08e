import type { Endpoint } from "../discovery/endpoint.js";

/** One endpoint's in-flight requests, shared by reference between the id map and a pick array. */
export class ActiveCount {
  active = 0;
  /** Whether the endpoint is in the balancer's current set (else it is kept only while active). */
  inSet = false;
}

/**
 * In-flight requests per endpoint id, kept across `update` calls: an endpoint that leaves the set
 * keeps its count until its last request ends (then it is forgotten), and one that comes back
 * finds its count where it was. Counts never go negative: an `end` without a `start` (an
 * endpoint this balancer never counted) is ignored.
 */
export class ActiveRequests {
  readonly #byId = new Map<string, ActiveCount>();

  /** The counts for a new endpoint set, by position; forgets idle endpoints that left. */
  track(endpoints: readonly Endpoint[]): ActiveCount[] {
    for (const count of this.#byId.values()) count.inSet = false;
    const counts = endpoints.map((endpoint) => {
      let count = this.#byId.get(endpoint.id);
      if (count === undefined) {
        count = new ActiveCount();
        this.#byId.set(endpoint.id, count);
      }
      count.inSet = true;
      return count;
    });
    for (const [id, count] of this.#byId) {
      if (!count.inSet && count.active === 0) this.#byId.delete(id);
    }
    return counts;
  }

  start(endpoint: Endpoint): void {
    let count = this.#byId.get(endpoint.id);
    if (count === undefined) {
      // Started on an endpoint outside the set (picked just before an update): count it so its
      // end balances.
      count = new ActiveCount();
      this.#byId.set(endpoint.id, count);
    }
    count.active++;
  }

  end(endpoint: Endpoint): void {
    const count = this.#byId.get(endpoint.id);
    if (count === undefined || count.active === 0) return;
    count.active--;
    if (count.active === 0 && !count.inSet) this.#byId.delete(endpoint.id);
  }

  activeOn(endpointId: string): number {
    return this.#byId.get(endpointId)?.active ?? 0;
  }

  /** Endpoint ids with a count kept (current set plus departed ones still active). */
  get size(): number {
    return this.#byId.size;
  }
}
