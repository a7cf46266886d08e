import type { Endpoint } from "./endpoint.js";

/**
 * The published state of one service. Frozen at publish and never mutated, so readers can hold
 * it across awaits; a change produces a new snapshot with a higher `version`.
 */
export interface EndpointSnapshot {
  /** `name.namespace`. */
  readonly key: string;
  readonly name: string;
  readonly namespace: string;
  /** In the order the winning source listed them, de-duplicated by `id`. */
  readonly endpoints: readonly Endpoint[];
  /**
   * Registry-wide increasing counter, not per service, so a service that disappears and comes
   * back never repeats a version a consumer may have cached.
   */
  readonly version: number;
}
