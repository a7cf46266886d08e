import type { Endpoint } from "../discovery/endpoint.js";
import type { Balancer, BalancerOptions, LoadBalancerSettings, PickContext } from "./balancer.js";
import { hashString, RequestHashKey } from "./hash-key.js";
import { takingRequests } from "./weights.js";

/** Envoy's table_size default (a prime), for a caller that passed no consistentHash settings. */
const DEFAULT_TABLE_SIZE = 65537;
/** Seeds of the two independent hashes of an endpoint id: where it starts, how far it steps. */
const OFFSET_SEED = 0x2545f491;
const SKIP_SEED = 0x6c8e9cf5;

/**
 * Maglev consistent hashing (Eisenbud et al., NSDI 2016, §3.4): a lookup table of M entries (M
 * prime, `tableSize`), each naming one endpoint; a request's key hash goes to entry key % M, in
 * O(1) with no allocation. Compared with ring-hash: a faster pick and a table that is spread
 * almost perfectly evenly, for slightly more keys moving when the set changes.
 *
 * Building: endpoint e has a preference list over all M entries, (offset + j × skip) mod M for
 * j = 0, 1, ..., where offset = h1(id) mod M and skip = h2(id) mod (M − 1) + 1 (M prime makes
 * every such list a permutation). Endpoints take turns, each claiming its most preferred entry
 * still free, until the table is full. Weighted as Envoy's weighted Maglev: per round an endpoint
 * earns its weight in credit and claims an entry for every maxWeight of credit, so the heaviest
 * endpoints claim every round and one of half their weight every other round; entries end up in
 * proportion to weight.
 *
 * Turns follow endpoint id order, so the table depends only on the set, not the order discovery
 * lists it in: every sidecar builds the same table.
 *
 * With more endpoints than M, each entry still names one endpoint, so only M endpoints (the
 * heaviest, then the first by id) get entries and the rest get no requests at all, keyed or not.
 * Keep tableSize well above the endpoint count (Maglev's paper suggests M ≥ 100 × N for an even
 * split; the default 65537 suits up to a few hundred endpoints per service).
 *
 * A request without the key goes to a random entry's endpoint: random in proportion to weight.
 * Retries probe forward in the table past excluded endpoints.
 */
export class MaglevBalancer implements Balancer {
  readonly policy = "maglev";
  readonly #random: () => number;
  readonly #key: RequestHashKey;
  readonly #tableSize: number;
  #endpoints: readonly Endpoint[] = [];
  #indexById = new Map<string, number>();
  /** Entry → index into #endpoints; empty while there are no endpoints. */
  #table: Int32Array = new Int32Array(0);

  constructor(options: Pick<BalancerOptions, "random"> & { settings?: LoadBalancerSettings }) {
    this.#random = options.random;
    const hash = options.settings?.consistentHash;
    this.#key = new RequestHashKey(hash);
    this.#tableSize = Math.max(2, hash?.tableSize ?? DEFAULT_TABLE_SIZE);
  }

  update(endpoints: readonly Endpoint[]): void {
    const next = takingRequests(endpoints).sort(byId);
    this.#endpoints = next;
    this.#indexById = new Map(next.map((endpoint, index) => [endpoint.id, index]));
    this.#table = next.length === 0 ? new Int32Array(0) : buildTable(next, this.#tableSize);
  }

  pick(ctx: PickContext): Endpoint | undefined {
    const endpoints = this.#endpoints;
    if (endpoints.length === 0) return undefined;
    const table = this.#table;
    const size = table.length;
    const key = this.#key.hash(ctx);
    const entry = key < 0 ? Math.min(size - 1, Math.floor(this.#random() * size)) : key % size;
    const endpoint = endpoints[table[entry]!]!;
    const exclude = ctx.exclude;
    if (exclude !== undefined && exclude.size > 0 && exclude.has(endpoint.id)) {
      return this.#nextAllowed(entry, exclude);
    }
    return endpoint;
  }

  /**
   * A retry: the endpoint of the next entry that is not excluded. Entries are spread evenly, so
   * this reaches a neighbour in a step or two. With every endpoint that has entries excluded,
   * the key's own endpoint — a retry on a host already tried beats failing outright.
   */
  #nextAllowed(entry: number, exclude: ReadonlySet<string>): Endpoint {
    const endpoints = this.#endpoints;
    const table = this.#table;
    let excluded = 0;
    for (const id of exclude) if (this.#indexById.has(id)) excluded++;
    if (excluded >= endpoints.length) return endpoints[table[entry]!]!;
    for (let step = 1; step < table.length; step++) {
      let probe = entry + step;
      if (probe >= table.length) probe -= table.length;
      const endpoint = endpoints[table[probe]!]!;
      if (!exclude.has(endpoint.id)) return endpoint;
    }
    return endpoints[table[entry]!]!;
  }

  /** Table entries per endpoint id (admin API, tests). */
  entriesPerEndpoint(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const index of this.#table) {
      const id = this.#endpoints[index]!.id;
      counts.set(id, (counts.get(id) ?? 0) + 1);
    }
    return counts;
  }
}

function byId(a: Endpoint, b: Endpoint): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Fills an M-entry table from `endpoints` (non-empty, positive weights), as described above. */
export function buildTable(endpoints: readonly Endpoint[], size: number): Int32Array {
  const n = endpoints.length;
  const table = new Int32Array(size).fill(-1);
  /** Each endpoint's next preferred entry: offset + j × skip, kept reduced mod size. */
  const next = new Int32Array(n);
  const skip = new Int32Array(n);
  const weight = new Float64Array(n);
  const credit = new Float64Array(n);
  let maxWeight = 0;
  for (let i = 0; i < n; i++) {
    const id = endpoints[i]!.id;
    next[i] = hashString(id, OFFSET_SEED) % size;
    skip[i] = (hashString(id, SKIP_SEED) % (size - 1)) + 1;
    weight[i] = endpoints[i]!.weight;
    maxWeight = Math.max(maxWeight, weight[i]!);
  }
  let filled = 0;
  while (filled < size) {
    for (let i = 0; i < n && filled < size; i++) {
      credit[i] = credit[i]! + weight[i]!;
      if (credit[i]! < maxWeight) continue;
      credit[i] = credit[i]! - maxWeight;
      let entry = next[i]!;
      while (table[entry] !== -1) {
        entry += skip[i]!;
        if (entry >= size) entry -= size;
      }
      table[entry] = i;
      entry += skip[i]!;
      next[i] = entry >= size ? entry - size : entry;
      filled++;
    }
  }
  return table;
}
