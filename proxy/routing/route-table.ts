import type { ServiceConfig } from "../config/schema.js";

/*
 * One service's VirtualService `http` routes (Istio's semantics), compiled once per config so
 * that choosing a destination for a request allocates nothing:
 *
 * - routes are tried in order and the first whose `match` holds takes the request;
 * - `match` is a list of alternatives, any of which may hold (empty = every request); within
 *   one alternative every condition given (uri, method, headers) must hold;
 * - a route with several destinations splits by weight.
 *
 * A service with routes where none matches gets no destination: the caller answers 404 (NR), as
 * Istio does. A service without routes sends every request to every endpoint.
 */

type RouteConfig = ServiceConfig["routes"][number];
type RouteMatchConfig = RouteConfig["match"][number];
type StringMatchConfig = NonNullable<RouteMatchConfig["uri"]>;

/** Where one request goes: shared, frozen objects (callers must not mutate them). */
export interface RouteDestinationChoice {
  /** The subset to balance over; undefined = every endpoint of the service. */
  readonly subset: string | undefined;
  /** The route's `name`, or its index in `routes` as text when unnamed; for logs and metrics. */
  readonly route: string;
}

/** The choice of a service without routes (Istio names its catch-all route "default"). */
export const EVERY_ENDPOINT: RouteDestinationChoice = Object.freeze({
  subset: undefined,
  route: "default",
});

export interface RouteTableOptions {
  /** Uniform in [0, 1), like Math.random; called only for routes with a real split. */
  readonly random: () => number;
}

export class RouteTable {
  /** True when the service has no routes: every request goes to every endpoint. */
  readonly empty: boolean;
  readonly #routes: readonly CompiledRoute[];
  readonly #random: () => number;

  /** Throws a TypeError on input the config schema rejects (a weighted split without weights). */
  constructor(routes: readonly ServiceConfig["routes"][number][], options: RouteTableOptions) {
    this.#random = options.random;
    this.#routes = routes.map((route, index) => new CompiledRoute(route, index));
    this.empty = this.#routes.length === 0;
  }

  /**
   * The destination for a request, or undefined when the service has routes and none matches.
   * `target` is origin-form (`/path?query`) or `*`; `headers` is the codec's flat list.
   */
  select(
    method: string,
    target: string,
    headers: readonly string[],
  ): RouteDestinationChoice | undefined {
    const routes = this.#routes;
    if (routes.length === 0) return EVERY_ENDPOINT;
    // The path is target[0, pathEnd): matchers read it in place instead of slicing.
    const query = target.indexOf("?");
    const pathEnd = query < 0 ? target.length : query;
    for (let i = 0; i < routes.length; i++) {
      const route = routes[i]!;
      if (route.matches(method, target, pathEnd, headers)) return route.choose(this.#random);
    }
    return undefined;
  }
}

class CompiledRoute {
  /** Empty: the route matches every request. */
  readonly #alternatives: readonly Alternative[];
  /** Destinations with a share of traffic, in config order; weight-0 ones are dropped. */
  readonly #choices: readonly RouteDestinationChoice[];
  /** Running sums of the kept destinations' weights; the last one is the total. */
  readonly #cumulative: readonly number[];

  constructor(config: RouteConfig, index: number) {
    const label = config.name ?? String(index);
    this.#alternatives = config.match.map((match) => new Alternative(match));
    const destinations = config.route;
    if (destinations.length === 0) {
      throw new TypeError(`route ${label}: at least one destination is required`);
    }
    if (destinations.length === 1) {
      // Istio: a lone destination takes all of the route's traffic whatever its weight says.
      this.#choices = [choice(destinations[0]!.subset, label)];
      this.#cumulative = [1];
      return;
    }
    const choices: RouteDestinationChoice[] = [];
    const cumulative: number[] = [];
    let total = 0;
    for (const destination of destinations) {
      const weight = destination.weight;
      if (weight === undefined || !Number.isFinite(weight) || weight < 0) {
        throw new TypeError(
          `route ${label}: with more than one destination, every destination needs a weight of 0 or more`,
        );
      }
      if (weight === 0) continue; // never chosen
      total += weight;
      choices.push(choice(destination.subset, label));
      cumulative.push(total);
    }
    if (choices.length === 0) {
      throw new TypeError(`route ${label}: at least one destination needs a weight above 0`);
    }
    this.#choices = choices;
    this.#cumulative = cumulative;
  }

  matches(method: string, target: string, pathEnd: number, headers: readonly string[]): boolean {
    const alternatives = this.#alternatives;
    if (alternatives.length === 0) return true;
    for (let i = 0; i < alternatives.length; i++) {
      if (alternatives[i]!.matches(method, target, pathEnd, headers)) return true;
    }
    return false;
  }

  choose(random: () => number): RouteDestinationChoice {
    const choices = this.#choices;
    if (choices.length === 1) return choices[0]!;
    const cumulative = this.#cumulative;
    const last = cumulative.length - 1;
    // Weights need not add up to 100: scale the draw to their total instead of normalising them.
    const point = random() * cumulative[last]!;
    // Linear: a route splits over a handful of destinations, where a scan beats a bisection.
    for (let i = 0; i < last; i++) {
      if (point < cumulative[i]!) return choices[i]!;
    }
    // Also where a misbehaving random() returned 1 or more.
    return choices[last]!;
  }
}

function choice(subset: string | undefined, route: string): RouteDestinationChoice {
  return Object.freeze({ subset, route });
}

/** One HTTPMatchRequest: every condition it gives must hold. */
class Alternative {
  readonly #uri: StringMatcher | undefined;
  readonly #method: StringMatcher | undefined;
  /** Lower-case field names, and for each the matcher at the same index. */
  readonly #headerNames: readonly string[];
  readonly #headerMatchers: readonly StringMatcher[];

  constructor(config: RouteMatchConfig) {
    this.#uri = config.uri === undefined ? undefined : new StringMatcher(config.uri);
    this.#method = config.method === undefined ? undefined : new StringMatcher(config.method);
    const names: string[] = [];
    const matchers: StringMatcher[] = [];
    for (const [name, match] of Object.entries(config.headers ?? {})) {
      // Field names are case-insensitive (RFC 9110 §5.1); the schema checks they are tokens
      // (ASCII), so lower-casing here and ASCII folding per request agree.
      names.push(name.toLowerCase());
      matchers.push(new StringMatcher(match));
    }
    this.#headerNames = names;
    this.#headerMatchers = matchers;
  }

  matches(method: string, target: string, pathEnd: number, headers: readonly string[]): boolean {
    if (this.#method !== undefined && !this.#method.matches(method, method.length)) return false;
    if (this.#uri !== undefined && !this.#uri.matches(target, pathEnd)) return false;
    const names = this.#headerNames;
    for (let i = 0; i < names.length; i++) {
      const value = firstFieldValue(headers, names[i]!);
      // A condition on a field the request does not carry never holds.
      if (value === undefined || !this.#headerMatchers[i]!.matches(value, value.length)) {
        return false;
      }
    }
    return true;
  }
}

const EXACT = 0;
const PREFIX = 1;
const REGEX = 2;

/** Istio's StringMatch: exactly one of exact, prefix, regex (the schema enforces "one"). */
class StringMatcher {
  readonly #kind: typeof EXACT | typeof PREFIX | typeof REGEX;
  readonly #text: string;
  readonly #regex: RegExp | undefined;

  constructor(config: StringMatchConfig) {
    if (config.exact !== undefined) {
      this.#kind = EXACT;
      this.#text = config.exact;
      this.#regex = undefined;
    } else if (config.prefix !== undefined) {
      this.#kind = PREFIX;
      this.#text = config.prefix;
      this.#regex = undefined;
    } else if (config.regex !== undefined) {
      this.#kind = REGEX;
      this.#text = config.regex;
      // Istio's regex is RE2 with a full match: anchor both ends. No flags, as the schema's
      // check compiled it; no g/y either, so test() keeps no lastIndex state between requests.
      this.#regex = new RegExp(`^(?:${config.regex})$`);
    } else {
      throw new TypeError("a string match needs one of exact, prefix, regex");
    }
  }

  /** Whether `value[0, end)` matches; reads `value` in place unless a regex needs a copy. */
  matches(value: string, end: number): boolean {
    switch (this.#kind) {
      case EXACT:
        return end === this.#text.length && value.startsWith(this.#text);
      case PREFIX:
        return this.#text.length <= end && value.startsWith(this.#text);
      case REGEX:
        return this.#regex!.test(end === value.length ? value : value.slice(0, end));
    }
  }
}

/** The value of the first field named `lowerName` (ASCII case-insensitive), or undefined. */
function firstFieldValue(headers: readonly string[], lowerName: string): string | undefined {
  for (let i = 0; i + 1 < headers.length; i += 2) {
    if (sameFieldName(headers[i]!, lowerName)) return headers[i + 1];
  }
  return undefined;
}

/** `name` equals `lowerName` ignoring ASCII case, without allocating a lower-cased copy. */
function sameFieldName(name: string, lowerName: string): boolean {
  const length = lowerName.length;
  if (name.length !== length) return false;
  for (let i = 0; i < length; i++) {
    let c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) c += 32; // A-Z → a-z
    if (c !== lowerName.charCodeAt(i)) return false;
  }
  return true;
}
