/**
 * Test support for lb/*.test.ts (not used by the proxy): a seeded random source, so
 * distribution tests are reproducible, and Pearson's chi-square test against expected shares.
 */

/**
 * Uniform in [0, 1) from a seed: a Weyl sequence through murmur3's fmix32. Good enough for
 * distribution tests; the same seed always gives the same sequence.
 */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    z ^= z >>> 16;
    return (z >>> 0) / 4294967296;
  };
}

/** Upper critical values of chi-square at p = 0.001, by degrees of freedom (index). */
const CRITICAL_P001 = [
  Number.NaN,
  10.828,
  13.816,
  16.266,
  18.467,
  20.515,
  22.458,
  24.322,
  26.124,
  27.877,
  29.588,
  31.264,
  32.909,
  34.528,
  36.123,
  37.697,
  39.252,
  40.79,
  42.312,
  43.82,
  45.315,
];

export interface ChiSquare {
  readonly statistic: number;
  readonly degreesOfFreedom: number;
  /** The statistic's critical value at p = 0.001: above it, the counts do not fit. */
  readonly critical: number;
}

/** Pearson's statistic of `observed` counts against `expectedShares` (any positive scale). */
export function chiSquare(
  observed: readonly number[],
  expectedShares: readonly number[],
): ChiSquare {
  if (observed.length !== expectedShares.length) throw new Error("length mismatch");
  const total = observed.reduce((sum, n) => sum + n, 0);
  const shares = expectedShares.reduce((sum, n) => sum + n, 0);
  let statistic = 0;
  for (let i = 0; i < observed.length; i++) {
    const expected = (total * expectedShares[i]!) / shares;
    statistic += (observed[i]! - expected) ** 2 / expected;
  }
  const degreesOfFreedom = observed.length - 1;
  const critical = CRITICAL_P001[degreesOfFreedom];
  if (critical === undefined) throw new Error(`no critical value for ${degreesOfFreedom} df`);
  return { statistic, degreesOfFreedom, critical };
}
