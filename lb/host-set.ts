import type { Endpoint } from "../discovery/endpoint.js";

/**
 * Which endpoints a balancer may send new requests to, and whether the set is in panic.
 * Envoy's rule: endpoints flagged unhealthy (by any health source) are left out, unless fewer
 * than `panicThreshold` percent of the endpoints are healthy; then every endpoint takes traffic
 * again, since sending some requests to a host that may be failing beats overloading the few
 * that are left (or failing everything). Endpoints with weight 0 never take new requests, panic
 * or not; discovery's not-ready endpoints (starting or terminating pods) are never used and do
 * not count in the percentage.
 */
export interface HostSelection {
  readonly endpoints: readonly Endpoint[];
  /** Healthy endpoints were below the threshold, so unhealthy ones are included. */
  readonly panic: boolean;
  /** Ready endpoints with weight above 0: the base of the percentage. */
  readonly total: number;
  readonly healthy: number;
}

/**
 * `isHealthy` answers for one endpoint across every health source (active checks, outlier
 * detection); `panicThreshold` is a percentage, 0 disables panic.
 */
export function selectHosts(
  endpoints: readonly Endpoint[],
  isHealthy: (endpoint: Endpoint) => boolean,
  panicThreshold: number,
): HostSelection {
  const usable: Endpoint[] = [];
  const healthy: Endpoint[] = [];
  for (const endpoint of endpoints) {
    if (!endpoint.ready || endpoint.weight <= 0) continue;
    usable.push(endpoint);
    if (isHealthy(endpoint)) healthy.push(endpoint);
  }
  const panic =
    panicThreshold > 0 &&
    healthy.length < usable.length &&
    healthy.length * 100 < panicThreshold * usable.length;
  return {
    endpoints: panic ? usable : healthy,
    panic,
    total: usable.length,
    healthy: healthy.length,
  };
}

/** Every label of `selector` is on the endpoint with the same value; `{}` selects all. */
export function matchesLabels(
  labels: Readonly<Record<string, string>>,
  selector: Readonly<Record<string, string>>,
): boolean {
  for (const key in selector) {
    if (!Object.hasOwn(selector, key)) continue;
    if (!Object.hasOwn(labels, key) || labels[key] !== selector[key]) return false;
  }
  return true;
}
