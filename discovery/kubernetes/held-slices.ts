/**
 * EndpointSlice events held as their raw watch lines (issue 12). A sidecar in a cluster of 1,000
 * Services talks to a few; parsing, digesting and republishing every slice update of the others
 * as it comes cost most of what watching a busy cluster costs. The Kubernetes source holds the
 * updates of Services it has not routed to here, and applies them when their Service is first
 * routed to, when someone reads the endpoints (the admin API), or at the latest
 * `idleRefresh` after the first of them came: a slice rewritten five times meanwhile is parsed
 * once.
 */

export type HeldType = "ADDED" | "MODIFIED" | "DELETED";

/** The latest event of one slice, not applied yet. */
export interface HeldEvent {
  readonly type: HeldType;
  /** The slice, `namespace/name`. */
  readonly slice: string;
  /** The Service the slice names, `namespace/name`; "" when it names none. */
  readonly owner: string;
  readonly line: string;
  /** When the slice's oldest unapplied event came (ms): staleness is bounded from there. */
  readonly since: number;
}

/** The latest unapplied event per slice, oldest first, findable by the Service it names. */
export class HeldSlices {
  /** By slice; Map order is insertion order, so the oldest held slice comes first. */
  readonly #bySlice = new Map<string, HeldEvent>();
  /** Service → its slices held here. */
  readonly #byOwner = new Map<string, Set<string>>();

  get size(): number {
    return this.#bySlice.size;
  }

  /** When the oldest held event came; undefined when none is held. */
  get oldestSince(): number | undefined {
    for (const held of this.#bySlice.values()) return held.since;
    return undefined;
  }

  /**
   * Hold a slice's event. It replaces the one held for the slice (only the latest version of an
   * object matters), keeping that one's place and time: a slice rewritten again and again is
   * still applied by the bound that started with its first unapplied event.
   */
  hold(type: HeldType, slice: string, owner: string, line: string, now: number): void {
    const previous = this.#bySlice.get(slice);
    if (previous !== undefined && previous.owner !== owner) this.#unindex(previous);
    if (previous === undefined || previous.owner !== owner) {
      let slices = this.#byOwner.get(owner);
      if (slices === undefined) {
        slices = new Set();
        this.#byOwner.set(owner, slices);
      }
      slices.add(slice);
    }
    this.#bySlice.set(slice, { type, slice, owner, line, since: previous?.since ?? now });
  }

  /** Forget a slice's held event (a newer one is being applied now). */
  drop(slice: string): void {
    const held = this.#bySlice.get(slice);
    if (held === undefined) return;
    this.#bySlice.delete(slice);
    this.#unindex(held);
  }

  /** Take out what is held for these slices and for the slices naming `owner`. */
  takeFor(owner: string, slices: Iterable<string>): HeldEvent[] {
    const out: HeldEvent[] = [];
    const named = this.#byOwner.get(owner);
    if (named !== undefined) for (const slice of [...named]) this.#take(slice, out);
    for (const slice of slices) this.#take(slice, out);
    return out;
  }

  /** Take out, oldest first, up to `limit` events held since `dueBefore` or earlier. */
  takeDue(dueBefore: number, limit: number): HeldEvent[] {
    const out: HeldEvent[] = [];
    for (const held of this.#bySlice.values()) {
      if (held.since > dueBefore || out.length >= limit) break;
      this.#take(held.slice, out);
    }
    return out;
  }

  /** Take out everything held. */
  takeAll(): HeldEvent[] {
    const out = [...this.#bySlice.values()];
    this.#bySlice.clear();
    this.#byOwner.clear();
    return out;
  }

  /** Forget what is held in `namespace` (undefined = all): a fresh list replaces it. */
  dropScope(namespace: string | undefined): void {
    if (namespace === undefined) {
      this.takeAll();
      return;
    }
    for (const slice of [...this.#bySlice.keys()]) {
      if (slice.startsWith(`${namespace}/`)) this.drop(slice);
    }
  }

  #take(slice: string, out: HeldEvent[]): void {
    const held = this.#bySlice.get(slice);
    if (held === undefined) return;
    this.#bySlice.delete(slice);
    this.#unindex(held);
    out.push(held);
  }

  #unindex(held: HeldEvent): void {
    const slices = this.#byOwner.get(held.owner);
    if (slices === undefined) return;
    slices.delete(held.slice);
    if (slices.size === 0) this.#byOwner.delete(held.owner);
  }
}
