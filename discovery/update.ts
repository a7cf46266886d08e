import type { Endpoint } from "./endpoint.js";

/** All endpoints of one service as one source currently sees them. */
export interface ServiceEndpoints {
  readonly name: string;
  readonly namespace: string;
  readonly endpoints: readonly Endpoint[];
}

/**
 * What every discovery source emits, in linkerd's vocabulary. Updates are scoped to the source
 * that sends them: one source can never reset or remove what another contributed.
 *
 * - `reset`: the complete set this source contributes; services it sent before and leaves out
 *   here are removed.
 * - `add`: upserts whole services (a service's endpoint list is replaced, not merged).
 * - `remove`: deletes services, by key, that this source had contributed.
 */
export type Update =
  | { readonly kind: "reset"; readonly services: readonly ServiceEndpoints[] }
  | { readonly kind: "add"; readonly services: readonly ServiceEndpoints[] }
  | { readonly kind: "remove"; readonly keys: readonly string[] };

/** The registry key of a service: `name.namespace`, e.g. `hello.default`. */
export function serviceKey(name: string, namespace: string): string {
  return `${name}.${namespace}`;
}
