import type { Endpoint } from "../discovery/endpoint.js";
import type { Balancer, BalancerOptions, PickContext } from "./balancer.js";
import { takingRequests } from "./weights.js";

/**
 * Virtual time after which every deadline is moved back by this much, so deadlines stay small
 * numbers whose floating-point spacing is far finer than the gaps between them.
 */
const REBASE_AT = 1024;

/**
 * Smooth weighted round-robin as an earliest-deadline-first scheduler (Envoy's EDF): endpoint i
 * of n, with weight w, is due for its k-th pick (k = 0, 1, ...) at virtual time
 *
 *     deadline = (k + (i + 0.5) / n) / w
 *
 * and each pick serves the earliest deadline (ties: lower index). Within one unit of virtual
 * time every endpoint gets exactly `w` picks, spread evenly: with weights 5:1:1 the sequence is
 * A A A B A A C, repeated, so the heavy endpoint never runs more than 3 in a row, and equal
 * weights rotate exactly. The offsets (i + 0.5) / n stagger endpoints of equal weight so they
 * are not all due at once.
 *
 * Deadlines sit in a binary min-heap: a pick is O(log n) and allocates nothing. A deadline is
 * computed as one division of two exact integers, (2kn + 2i + 1) / (2nw), so deadlines that are
 * equal as fractions are equal as numbers and ties break by index, deterministically.
 */
export class WeightedBalancer implements Balancer {
  readonly policy = "weighted";
  readonly #random: () => number;
  #endpoints: readonly Endpoint[] = [];
  #weight = new Float64Array(0);
  /** Picks so far, per endpoint index (minus the rebased periods). */
  #served = new Float64Array(0);
  #deadline = new Float64Array(0);
  /** Min-heap of endpoint indices by (deadline, index). */
  #heap = new Int32Array(0);
  /** Where endpoint i sits in #heap. */
  #position = new Int32Array(0);
  /** Virtual time of the latest pick (or of the random start). */
  #now = 0;
  /** True from a (re)start until the first pick: deadlines equal to #now are still due. */
  #nowDue = true;

  constructor(options: Pick<BalancerOptions, "random">) {
    this.#random = options.random;
  }

  update(endpoints: readonly Endpoint[]): void {
    const wasEmpty = this.#endpoints.length === 0;
    const next = takingRequests(endpoints);
    const n = next.length;
    if (this.#sameSchedule(next)) {
      // The same ids and weights in the same order (a re-published snapshot, a change only to
      // labels): keep the schedule exactly, including whose turn a tie gives next.
      this.#endpoints = next;
      return;
    }
    this.#endpoints = next;
    this.#weight = new Float64Array(n);
    this.#served = new Float64Array(n);
    this.#deadline = new Float64Array(n);
    this.#heap = new Int32Array(n);
    this.#position = new Int32Array(n);
    if (n === 0) {
      this.#now = 0;
      this.#nowDue = true;
      return;
    }
    if (wasEmpty) {
      // Random start: sidecars that all receive the same list at once (rollout, cold start)
      // would otherwise all begin with the same endpoint. The schedule repeats every unit of
      // virtual time, so starting at a random point of [0, 1) is a random phase of it.
      this.#now = this.#random();
      this.#nowDue = true;
    }
    // Everyone's next deadline is the first one after the current virtual time: the schedule
    // carries on where it was; a new endpoint joins without a burst of catch-up picks, and an
    // endpoint whose weight changed is due at its new pace from now on.
    for (let i = 0; i < n; i++) {
      this.#weight[i] = next[i]!.weight;
      this.#served[i] = this.#firstServedAfter(i, this.#now, this.#nowDue);
      this.#deadline[i] = this.#deadlineOf(i);
      this.#heap[i] = i;
    }
    this.#heapify();
  }

  #sameSchedule(next: readonly Endpoint[]): boolean {
    const current = this.#endpoints;
    if (next.length !== current.length || next.length === 0) return false;
    for (let i = 0; i < next.length; i++) {
      if (next[i]!.id !== current[i]!.id || next[i]!.weight !== this.#weight[i]) return false;
    }
    return true;
  }

  pick(ctx: PickContext): Endpoint | undefined {
    const endpoints = this.#endpoints;
    if (endpoints.length === 0) return undefined;
    let chosen = this.#heap[0]!;
    const exclude = ctx.exclude;
    if (exclude !== undefined && exclude.size > 0 && exclude.has(endpoints[chosen]!.id)) {
      chosen = this.#earliestAllowed(exclude, chosen);
    }
    this.#advance(chosen);
    return endpoints[chosen];
  }

  /**
   * The earliest-due endpoint not in `exclude` (retries only: a linear scan), or `fallback` when
   * everything is excluded — a retry on a host already tried beats failing outright.
   */
  #earliestAllowed(exclude: ReadonlySet<string>, fallback: number): number {
    const endpoints = this.#endpoints;
    const deadline = this.#deadline;
    let best = -1;
    for (let i = 0; i < endpoints.length; i++) {
      if (exclude.has(endpoints[i]!.id)) continue;
      // Scanning in index order, a strictly earlier deadline is needed to win a tie.
      if (best < 0 || deadline[i]! < deadline[best]!) best = i;
    }
    return best < 0 ? fallback : best;
  }

  /** Serve endpoint `i`: its deadline moves on by one pick and it sinks in the heap. */
  #advance(i: number): void {
    this.#now = this.#deadline[i]!;
    this.#nowDue = false;
    this.#served[i]!++;
    this.#deadline[i] = this.#deadlineOf(i);
    this.#siftDown(this.#position[i]!);
    if (this.#now >= REBASE_AT) this.#rebase();
  }

  #deadlineOf(i: number): number {
    const n = this.#endpoints.length;
    return (2 * this.#served[i]! * n + 2 * i + 1) / (2 * n * this.#weight[i]!);
  }

  /** The smallest pick count whose deadline is after `now` (or at it, when `due`). */
  #firstServedAfter(i: number, now: number, due: boolean): number {
    const n = this.#endpoints.length;
    const w = this.#weight[i]!;
    // Solve (2kn + 2i + 1) / (2nw) > now for k, then correct for rounding either way.
    let k = Math.max(0, Math.ceil((2 * n * w * now - 2 * i - 1) / (2 * n)));
    while (!this.#dueAfter(i, k, now, due)) k++;
    while (k > 0 && this.#dueAfter(i, k - 1, now, due)) k--;
    return k;
  }

  #dueAfter(i: number, served: number, now: number, due: boolean): boolean {
    const n = this.#endpoints.length;
    const deadline = (2 * served * n + 2 * i + 1) / (2 * n * this.#weight[i]!);
    return due ? deadline >= now : deadline > now;
  }

  /** Moves virtual time back by REBASE_AT: every deadline drops by exactly that much. */
  #rebase(): void {
    this.#now -= REBASE_AT;
    for (let i = 0; i < this.#endpoints.length; i++) {
      this.#served[i] = this.#served[i]! - REBASE_AT * this.#weight[i]!;
      this.#deadline[i] = this.#deadlineOf(i);
    }
    this.#heapify();
  }

  #before(a: number, b: number): boolean {
    const da = this.#deadline[a]!;
    const db = this.#deadline[b]!;
    return da < db || (da === db && a < b);
  }

  #heapify(): void {
    const heap = this.#heap;
    for (let slot = 0; slot < heap.length; slot++) this.#position[heap[slot]!] = slot;
    for (let slot = (heap.length >> 1) - 1; slot >= 0; slot--) this.#siftDown(slot);
  }

  #siftDown(slot: number): void {
    const heap = this.#heap;
    const position = this.#position;
    const size = heap.length;
    const item = heap[slot]!;
    for (;;) {
      const left = 2 * slot + 1;
      if (left >= size) break;
      const right = left + 1;
      const child = right < size && this.#before(heap[right]!, heap[left]!) ? right : left;
      if (!this.#before(heap[child]!, item)) break;
      heap[slot] = heap[child]!;
      position[heap[slot]!] = slot;
      slot = child;
    }
    heap[slot] = item;
    position[item] = slot;
  }
}
