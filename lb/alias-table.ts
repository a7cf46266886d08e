/**
 * Walker's alias method with Vose's construction: after an O(n) build, one uniform draw picks
 * index i with probability weights[i] / sum(weights), in O(1) and without allocating. Used
 * where a weighted random choice runs per request (random, least-request's sampling).
 *
 * The table splits [0, n) into n unit columns; column i keeps index i for the share `keep[i]`
 * of its width and hands the rest to `alias[i]`. A draw u * n selects the column by its integer
 * part and the side by its fraction, so one random number serves both.
 */
export class AliasTable {
  readonly size: number;
  readonly #keep: Float64Array;
  readonly #alias: Int32Array;

  /** Weights must be finite and >= 0 with a positive sum (callers drop weight-0 endpoints). */
  constructor(weights: ArrayLike<number>) {
    const n = weights.length;
    this.size = n;
    this.#keep = new Float64Array(n);
    this.#alias = new Int32Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) total += weights[i]!;
    // Scaled so the average column holds exactly 1: columns below 1 ("small") are topped up
    // by columns above 1 ("large").
    const scaled = new Float64Array(n);
    const small = new Int32Array(n);
    const large = new Int32Array(n);
    let smallCount = 0;
    let largeCount = 0;
    for (let i = 0; i < n; i++) {
      scaled[i] = total > 0 ? (weights[i]! * n) / total : 1;
      if (scaled[i]! < 1) small[smallCount++] = i;
      else large[largeCount++] = i;
    }
    while (smallCount > 0 && largeCount > 0) {
      const less = small[--smallCount]!;
      const more = large[--largeCount]!;
      this.#keep[less] = scaled[less]!;
      this.#alias[less] = more;
      // The large column gives away what the small one lacked; it may become small itself.
      scaled[more] = scaled[more]! + scaled[less]! - 1;
      if (scaled[more]! < 1) small[smallCount++] = more;
      else large[largeCount++] = more;
    }
    // What remains is 1 up to rounding error: those columns keep themselves entirely.
    while (largeCount > 0) {
      const i = large[--largeCount]!;
      this.#keep[i] = 1;
      this.#alias[i] = i;
    }
    while (smallCount > 0) {
      const i = small[--smallCount]!;
      this.#keep[i] = 1;
      this.#alias[i] = i;
    }
  }

  /** The index chosen by a uniform draw `u` in [0, 1). */
  pick(u: number): number {
    const n = this.size;
    const x = u * n;
    let column = Math.floor(x);
    // A misbehaving random() returning 1 must not index past the end.
    if (column >= n) column = n - 1;
    return x - column < this.#keep[column]! ? column : this.#alias[column]!;
  }
}
