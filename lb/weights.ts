import type { Endpoint } from "../discovery/endpoint.js";

/**
 * Endpoints that may take new requests. Callers already drop weight 0 ("no new requests while
 * in-flight ones finish") before `update`; balancers filter again so a caller that forgets
 * cannot make them divide by zero or pick a draining endpoint.
 */
export function takingRequests(endpoints: readonly Endpoint[]): Endpoint[] {
  return endpoints.filter((endpoint) => endpoint.weight > 0);
}

/** Whether all weights are the same: balancers then use their cheaper unweighted path. */
export function equalWeights(endpoints: readonly Endpoint[]): boolean {
  for (let i = 1; i < endpoints.length; i++) {
    if (endpoints[i]!.weight !== endpoints[0]!.weight) return false;
  }
  return true;
}
