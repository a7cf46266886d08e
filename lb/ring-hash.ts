import type { Endpoint } from "../discovery/endpoint.js";
import type { Balancer, BalancerOptions, LoadBalancerSettings, PickContext } from "./balancer.js";
import { FNV_OFFSET_BASIS, fmix32, fnv1a, fnv1aDecimal, RequestHashKey } from "./hash-key.js";
import { takingRequests } from "./weights.js";

/** Envoy's maximum_ring_size default (8M points, 64 MB of ring): the ring never grows past it. */
export const MAX_RING_SIZE = 8 * 1024 * 1024;
/** Envoy's minimum_ring_size default, for a caller that passed no consistentHash settings. */
const DEFAULT_MINIMUM_RING_SIZE = 1024;

/**
 * Consistent hashing on a ring (ketama-style). Each endpoint owns points on a 32-bit circle,
 * point i of endpoint `id` at hash(`${id}_${i}`); a request's key hash goes to the owner of the
 * first point at or after it (wrapping). Adding or removing an endpoint adds or removes only
 * its own points, so only the keys on those arcs move: about 1/N of them.
 *
 * Points per endpoint = weight × density, where density (points per unit of weight) is the
 * smallest power of two that puts at least `minimumRingSize` points on the ring. A power of two
 * rather than minimumRingSize / totalWeight keeps the density, and so every other endpoint's
 * points, unchanged when an endpoint comes or goes, except when the total weight crosses a power
 * of two; then every endpoint keeps the first half of its points (or gains a second half). The
 * ring holds at most MAX_RING_SIZE points, and always one per endpoint at least.
 *
 * A request without the key goes to a random point's owner: a random endpoint in proportion to
 * weight. Retries walk the ring forward past excluded endpoints. `pick` is a binary search over
 * a sorted Uint32Array: O(log points), no allocation.
 */
export class RingHashBalancer implements Balancer {
  readonly policy = "ring-hash";
  readonly #random: () => number;
  readonly #key: RequestHashKey;
  readonly #minimumRingSize: number;
  /** Sorted by id, so the ring does not depend on the order discovery lists endpoints in. */
  #endpoints: readonly Endpoint[] = [];
  #indexById = new Map<string, number>();
  /** Point hashes, ascending. */
  #hashes: Uint32Array = new Uint32Array(0);
  /** Index into #endpoints of each point's owner, parallel to #hashes. */
  #owners: Uint32Array = new Uint32Array(0);

  constructor(options: Pick<BalancerOptions, "random"> & { settings?: LoadBalancerSettings }) {
    this.#random = options.random;
    const hash = options.settings?.consistentHash;
    this.#key = new RequestHashKey(hash);
    this.#minimumRingSize = Math.max(1, hash?.minimumRingSize ?? DEFAULT_MINIMUM_RING_SIZE);
  }

  update(endpoints: readonly Endpoint[]): void {
    const next = takingRequests(endpoints).sort(byId);
    this.#endpoints = next;
    this.#indexById = new Map(next.map((endpoint, index) => [endpoint.id, index]));
    const counts = pointCounts(next, this.#minimumRingSize);
    let size = 0;
    for (const count of counts) size += count;
    const hashes = new Uint32Array(size);
    const owners = new Uint32Array(size);
    let point = 0;
    for (let index = 0; index < next.length; index++) {
      const id = next[index]!.id;
      // hash(`${id}_${i}`) without building the strings: FNV-1a runs on, from "id_" to the digits.
      const prefix = fnv1a(fnv1a(FNV_OFFSET_BASIS, id, 0, id.length), "_", 0, 1);
      for (let i = 0; i < counts[index]!; i++) {
        hashes[point] = fmix32(fnv1aDecimal(prefix, i));
        owners[point++] = index;
      }
    }
    sortPairs(hashes, owners);
    this.#hashes = hashes;
    this.#owners = owners;
  }

  pick(ctx: PickContext): Endpoint | undefined {
    const endpoints = this.#endpoints;
    if (endpoints.length === 0) return undefined;
    const hashes = this.#hashes;
    const size = hashes.length;
    const key = this.#key.hash(ctx);
    let point: number;
    if (key < 0) {
      point = Math.min(size - 1, Math.floor(this.#random() * size));
    } else {
      // The first point at or after the key; past the last point, the ring wraps to the first.
      let low = 0;
      let high = size;
      while (low < high) {
        const middle = (low + high) >>> 1;
        if (hashes[middle]! < key) low = middle + 1;
        else high = middle;
      }
      point = low === size ? 0 : low;
    }
    const endpoint = endpoints[this.#owners[point]!]!;
    const exclude = ctx.exclude;
    if (exclude !== undefined && exclude.size > 0 && exclude.has(endpoint.id)) {
      return this.#nextAllowed(point, exclude);
    }
    return endpoint;
  }

  /**
   * A retry: the owner of the next point clockwise that is not excluded, as if the excluded
   * endpoints had left the ring. With every endpoint excluded, the key's own endpoint — a retry on
   * a host already tried beats failing outright.
   */
  #nextAllowed(point: number, exclude: ReadonlySet<string>): Endpoint {
    const endpoints = this.#endpoints;
    const owners = this.#owners;
    let excluded = 0;
    for (const id of exclude) if (this.#indexById.has(id)) excluded++;
    if (excluded >= endpoints.length) return endpoints[owners[point]!]!;
    for (;;) {
      point = point + 1 === owners.length ? 0 : point + 1;
      const endpoint = endpoints[owners[point]!]!;
      if (!exclude.has(endpoint.id)) return endpoint;
    }
  }

  /** Points on the ring now (admin API, tests). */
  get ringSize(): number {
    return this.#hashes.length;
  }
}

function byId(a: Endpoint, b: Endpoint): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Points per endpoint: weight × a power-of-two density (see the class comment). */
export function pointCounts(endpoints: readonly Endpoint[], minimumRingSize: number): number[] {
  let totalWeight = 0;
  for (const endpoint of endpoints) totalWeight += endpoint.weight;
  if (totalWeight === 0) return [];
  let density = 1;
  while (totalWeight * density < minimumRingSize) density *= 2;
  while (density > 2 ** -30 && totalWeight * density > MAX_RING_SIZE) density /= 2;
  return endpoints.map((endpoint) => Math.max(1, Math.floor(endpoint.weight * density)));
}

/**
 * Sorts `keys` ascending, carrying `values` along: an LSD radix sort on two 16-bit digits. O(n)
 * and stable, it builds an 8M-point ring in a fraction of the time a comparison sort would need.
 */
export function sortPairs(keys: Uint32Array, values: Uint32Array): void {
  const n = keys.length;
  if (n < 2) return;
  const spareKeys = new Uint32Array(n);
  const spareValues = new Uint32Array(n);
  const starts = new Uint32Array(65536);
  let fromKeys: Uint32Array = keys;
  let fromValues: Uint32Array = values;
  let toKeys: Uint32Array = spareKeys;
  let toValues: Uint32Array = spareValues;
  for (const shift of [0, 16]) {
    starts.fill(0);
    for (let i = 0; i < n; i++) starts[(fromKeys[i]! >>> shift) & 0xffff]!++;
    let sum = 0;
    for (let digit = 0; digit < 65536; digit++) {
      const count = starts[digit]!;
      starts[digit] = sum;
      sum += count;
    }
    for (let i = 0; i < n; i++) {
      const key = fromKeys[i]!;
      const at = starts[(key >>> shift) & 0xffff]!++;
      toKeys[at] = key;
      toValues[at] = fromValues[i]!;
    }
    [fromKeys, toKeys] = [toKeys, fromKeys];
    [fromValues, toValues] = [toValues, fromValues];
  }
  // After an even number of passes the sorted data is back in the caller's arrays.
}
