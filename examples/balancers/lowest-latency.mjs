// A user balancer for remora: send each request to the endpoint with the lowest observed
// latency, weighed by how busy it is. Load it from a config:
//
//   trafficPolicy:
//     loadBalancer:
//       module: ./balancers/lowest-latency.mjs   # relative to the config file
//       options: { alpha: 0.3, explore: 0.05, failurePenaltyMs: 1000 }
//
// The contract (docs/load-balancing.md): export a function (or a class) that takes
// `{ random, clock, settings }` and returns an object with `update(endpoints)` and
// `pick(ctx)`, and optionally `onStart(endpoint)` / `onEnd(endpoint, ok)`. `settings.module.options`
// holds the `options` from the config. remora calls these on its event loop for every request:
// never block, never do I/O in them.

/**
 * @param {{ random: () => number, clock: () => number,
 *           settings: { module: { options: Record<string, unknown> } } }} init
 */
export default function createBalancer({ random, clock, settings }) {
  const options = settings.module.options;
  /** Weight of the newest sample in the moving average. */
  const alpha = numberOption(options.alpha, 0.3, 0, 1);
  /** Share of requests sent to a random endpoint, so estimates of slow ones stay fresh. */
  const explore = numberOption(options.explore, 0.05, 0, 1);
  /** A failed request counts as at least this slow (ms). */
  const failurePenaltyMs = numberOption(options.failurePenaltyMs, 1000, 0, 3_600_000);

  /** Per endpoint id: { ewma: number | undefined, starts: number[], active: number }. */
  const stats = new Map();
  let endpoints = [];
  let next = 0;

  function statsOf(id) {
    let s = stats.get(id);
    if (s === undefined) {
      s = { ewma: undefined, starts: [], active: 0 };
      stats.set(id, s);
    }
    return s;
  }

  return {
    policy: "lowest-latency",

    update(list) {
      endpoints = list.slice();
      const live = new Set(endpoints.map((e) => e.id));
      // Forget endpoints that left, unless requests to them are still running.
      for (const [id, s] of stats) if (!live.has(id) && s.active === 0) stats.delete(id);
      if (next >= endpoints.length) next = 0;
    },

    pick(ctx) {
      const candidates = ctx.exclude?.size
        ? endpoints.filter((e) => !ctx.exclude.has(e.id))
        : endpoints;
      if (candidates.length === 0) return endpoints[0];
      // Endpoints never measured go first, in turn, so every one gets an estimate.
      for (let i = 0; i < candidates.length; i++) {
        const e = candidates[(next + i) % candidates.length];
        if (statsOf(e.id).ewma === undefined) {
          next = (next + i + 1) % candidates.length;
          return e;
        }
      }
      if (random() < explore) return candidates[Math.floor(random() * candidates.length)];
      let best = candidates[0];
      let bestScore = Number.POSITIVE_INFINITY;
      for (const e of candidates) {
        const s = statsOf(e.id);
        // Latency times queue length: a fast endpoint stops winning once it is busy.
        const score = (s.ewma * (s.active + 1)) / e.weight;
        if (score < bestScore) {
          bestScore = score;
          best = e;
        }
      }
      return best;
    },

    onStart(endpoint) {
      const s = statsOf(endpoint.id);
      s.active++;
      s.starts.push(clock());
    },

    onEnd(endpoint, ok) {
      const s = stats.get(endpoint.id);
      if (s === undefined || s.active === 0) return;
      s.active--;
      // HTTP/1.1 requests to one endpoint mostly finish in the order they started, so the
      // oldest start is a fair estimate of this request's.
      let sample = clock() - s.starts.shift();
      if (!ok) sample = Math.max(sample, failurePenaltyMs);
      s.ewma = s.ewma === undefined ? sample : s.ewma + alpha * (sample - s.ewma);
    },
  };
}

function numberOption(value, fallback, min, max) {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !(value >= min && value <= max)) {
    throw new Error(`expected a number from ${min} to ${max}, got ${JSON.stringify(value)}`);
  }
  return value;
}
