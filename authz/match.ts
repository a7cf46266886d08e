import { BlockList, isIPv4, isIPv6 } from "node:net";

/**
 * Istio's value matchers, compiled once per config: string values (exact, `prefix*`, `*suffix`,
 * `*` for any non-empty value) and IP blocks (single addresses or CIDRs, IPv4 and IPv6).
 */

/** A compiled list of Istio string values; `test` is true when one of them matches. */
export class StringMatcher {
  readonly #exact: ReadonlySet<string>;
  readonly #prefixes: readonly string[];
  readonly #suffixes: readonly string[];
  /** `*`: any non-empty value (Istio's presence match). */
  readonly #present: boolean;
  readonly #lowerCase: boolean;

  /** `lowerCase`: compare case-insensitively (values are lower-cased here, inputs by the caller). */
  constructor(values: readonly string[], lowerCase = false) {
    const exact = new Set<string>();
    const prefixes: string[] = [];
    const suffixes: string[] = [];
    let present = false;
    for (const raw of values) {
      const value = lowerCase ? raw.toLowerCase() : raw;
      if (value === "*") present = true;
      else if (value.endsWith("*")) prefixes.push(value.slice(0, -1));
      else if (value.startsWith("*")) suffixes.push(value.slice(1));
      else exact.add(value);
    }
    this.#exact = exact;
    this.#prefixes = prefixes;
    this.#suffixes = suffixes;
    this.#present = present;
    this.#lowerCase = lowerCase;
  }

  get lowerCase(): boolean {
    return this.#lowerCase;
  }

  test(value: string): boolean {
    if (this.#present && value.length > 0) return true;
    if (this.#exact.has(value)) return true;
    for (const prefix of this.#prefixes) if (value.startsWith(prefix)) return true;
    for (const suffix of this.#suffixes) if (value.endsWith(suffix)) return true;
    return false;
  }
}

/**
 * Why `value` is not an Istio string match, or undefined. `*` may only stand alone, lead or
 * trail (Istio's rule); path templates (`{*}`, `{**}`) are not supported.
 */
export function stringMatchProblem(value: string): string | undefined {
  if (value.length === 0) return "empty: use * to match any value";
  const inner = value.length > 1 ? value.slice(1, -1) : "";
  if (inner.includes("*")) {
    return "* may only be the whole value, its first character (suffix match) or its last (prefix match)";
  }
  return undefined;
}

/** Parsed `ipBlocks`: `test` is true when the address is in one of them. */
export class IpMatcher {
  readonly #blocks = new BlockList();

  constructor(blocks: readonly string[]) {
    for (const block of blocks) {
      const parsed = parseIpBlock(block);
      if (parsed === undefined) throw new Error(`invalid IP block ${JSON.stringify(block)}`);
      this.#blocks.addSubnet(parsed.address, parsed.prefix, parsed.family);
    }
  }

  /** `address`: as the socket reports it, IPv4-mapped IPv6 already unmapped (policy.ts). */
  test(address: string): boolean {
    return this.#blocks.check(address, address.includes(":") ? "ipv6" : "ipv4");
  }
}

interface IpBlock {
  readonly address: string;
  readonly prefix: number;
  readonly family: "ipv4" | "ipv6";
}

/** `10.1.0.0/16`, `fd00::/8`, or a single address (the whole-address prefix); undefined if bad. */
export function parseIpBlock(text: string): IpBlock | undefined {
  const slash = text.indexOf("/");
  const address = slash < 0 ? text : text.slice(0, slash);
  const family = isIPv4(address) ? "ipv4" : isIPv6(address) ? "ipv6" : undefined;
  if (family === undefined) return undefined;
  const max = family === "ipv4" ? 32 : 128;
  if (slash < 0) return { address, prefix: max, family };
  const bits = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return undefined;
  return { address, prefix: Number(bits), family };
}

/** Why `text` is not an IP block, or undefined. */
export function ipBlockProblem(text: string): string | undefined {
  if (parseIpBlock(text) !== undefined) return undefined;
  return `expected an IP address or CIDR (10.0.0.1, 10.0.0.0/8, fd00::/8), got ${JSON.stringify(text)}`;
}
