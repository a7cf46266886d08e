import type { ConsistentHashSettings, PickContext } from "./balancer.js";

/**
 * The 32-bit string hash behind ring-hash and maglev: FNV-1a over UTF-16 code units, then
 * murmur3's fmix32 finaliser. FNV-1a alone is cheap but mixes its last characters poorly (keys
 * that differ only at the end, like `10.0.0.1:8080_17` and `..._18`, land close together);
 * fmix32 spreads every input bit over the whole word. Both run on 32-bit integers with
 * Math.imul, so hashing allocates nothing.
 *
 * The value must never change between releases: sidecars of different versions in one mesh
 * must send the same key to the same endpoint.
 */

/**
 * FNV-1a's 32-bit offset basis: the state before any character. Kept as a signed 32-bit
 * integer (same bits) so the state never leaves V8's small-integer range: 0x811c9dc5 as written
 * is a double, and hashing ran at half speed with a double-typed state.
 */
export const FNV_OFFSET_BASIS = 0x811c9dc5 | 0;
const FNV_PRIME = 0x01000193;

/** Feeds `text[start..end)` (UTF-16 code units) into an FNV-1a state. */
export function fnv1a(state: number, text: string, start: number, end: number): number {
  for (let i = start; i < end; i++) state = Math.imul(state ^ text.charCodeAt(i), FNV_PRIME);
  return state;
}

/** Feeds the decimal digits of a non-negative integer, as `String(value)` would spell them. */
export function fnv1aDecimal(state: number, value: number): number {
  let unit = 1;
  while (unit * 10 <= value) unit *= 10;
  for (; unit >= 1; unit /= 10) {
    const digit = Math.floor(value / unit) % 10;
    state = Math.imul(state ^ (48 + digit), FNV_PRIME);
  }
  return state;
}

/** murmur3's 32-bit finaliser: every input bit affects every output bit. Unsigned result. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Hash of a whole string, unsigned 32-bit. A different `seed` gives an independent hash of the
 * same text (maglev needs two per endpoint); seed 0 is plain FNV-1a + fmix32.
 */
export function hashString(text: string, seed = 0): number {
  return fmix32(fnv1a(FNV_OFFSET_BASIS ^ seed, text, 0, text.length));
}

/** The key was not in the request: ring-hash and maglev then pick at random. */
export const NO_KEY = -1;

const COOKIE = "cookie";
const IPV4_MAPPED_PREFIX = "::ffff:";

/**
 * Where a request's consistent-hash key comes from (Istio's `consistentHash`: exactly one of
 * header, cookie, source IP, query parameter). Built once per balancer; `hash` reads the
 * request in place and allocates nothing.
 */
export class RequestHashKey {
  readonly #header: string | undefined;
  readonly #cookie: string | undefined;
  readonly #sourceIp: boolean;
  readonly #query: string | undefined;

  /** `undefined` settings (a caller that passed no consistentHash): every request lacks a key. */
  constructor(settings: ConsistentHashSettings | undefined) {
    this.#header = settings?.httpHeaderName?.toLowerCase();
    this.#cookie = settings?.httpCookie?.name;
    this.#sourceIp = settings?.useSourceIp === true;
    this.#query = settings?.httpQueryParameterName;
  }

  /** Unsigned 32-bit hash of the request's key, or NO_KEY (-1) when the request has none. */
  hash(ctx: PickContext): number {
    const chosen = ctx.hashKey;
    if (chosen !== undefined) return fmix32(fnv1a(FNV_OFFSET_BASIS, chosen, 0, chosen.length));
    if (this.#header !== undefined) return headerHash(ctx.headers, this.#header);
    if (this.#cookie !== undefined) return cookieHash(ctx.headers, this.#cookie);
    if (this.#sourceIp) return sourceIpHash(ctx.sourceAddress);
    if (this.#query !== undefined) return queryParameterHash(ctx.path, this.#query);
    return NO_KEY;
  }
}

/** ASCII case-insensitive field-name match (RFC 9110 §5.1); `lowerName` is lower-case. */
function isFieldName(candidate: string, lowerName: string): boolean {
  const length = lowerName.length;
  if (candidate.length !== length) return false;
  for (let i = 0; i < length; i++) {
    let c = candidate.charCodeAt(i);
    if (c >= 65 && c <= 90) c |= 0x20;
    if (c !== lowerName.charCodeAt(i)) return false;
  }
  return true;
}

/** Whether `text[start..end)` is exactly `name` (case-sensitive). */
function rangeEquals(text: string, start: number, end: number, name: string): boolean {
  if (end - start !== name.length) return false;
  for (let i = 0; i < name.length; i++) {
    if (text.charCodeAt(start + i) !== name.charCodeAt(i)) return false;
  }
  return true;
}

/**
 * Hash of header `lowerName`'s value. Several field lines of that name hash as their
 * combination `a, b` (RFC 9110 §5.3), so splitting a value over lines does not move the key.
 * A present but empty value is a key (the empty string), not a missing one.
 */
export function headerHash(headers: readonly string[] | undefined, lowerName: string): number {
  if (headers === undefined) return NO_KEY;
  let state = FNV_OFFSET_BASIS;
  let found = false;
  for (let i = 0; i + 1 < headers.length; i += 2) {
    if (!isFieldName(headers[i]!, lowerName)) continue;
    if (found) state = fnv1a(state, ", ", 0, 2);
    const value = headers[i + 1]!;
    state = fnv1a(state, value, 0, value.length);
    found = true;
  }
  return found ? fmix32(state) : NO_KEY;
}

/**
 * Hash of cookie `name`'s value, from the Cookie field(s) (RFC 6265 §5.4: `a=1; b=2`). Names
 * match case-sensitively, as browsers send them back. The first match wins; a quoted value
 * hashes with its quotes (§4.1.1 makes them part of the value).
 */
export function cookieHash(headers: readonly string[] | undefined, name: string): number {
  if (headers === undefined) return NO_KEY;
  for (let h = 0; h + 1 < headers.length; h += 2) {
    if (!isFieldName(headers[h]!, COOKIE)) continue;
    const text = headers[h + 1]!;
    const end = text.length;
    let i = 0;
    while (i < end) {
      while (i < end && isCookieSpace(text.charCodeAt(i))) i++;
      const nameStart = i;
      while (i < end && text.charCodeAt(i) !== 0x3d /* = */ && text.charCodeAt(i) !== 0x3b /* ; */)
        i++;
      let nameEnd = i;
      while (nameEnd > nameStart && isCookieSpace(text.charCodeAt(nameEnd - 1))) nameEnd--;
      if (i < end && text.charCodeAt(i) === 0x3d) {
        while (i + 1 < end && isCookieSpace(text.charCodeAt(i + 1))) i++;
        const valueStart = ++i;
        while (i < end && text.charCodeAt(i) !== 0x3b) i++;
        if (rangeEquals(text, nameStart, nameEnd, name)) {
          let valueEnd = i;
          while (valueEnd > valueStart && isCookieSpace(text.charCodeAt(valueEnd - 1))) valueEnd--;
          return fmix32(fnv1a(FNV_OFFSET_BASIS, text, valueStart, valueEnd));
        }
      }
      i++; // past the ';' (or the end)
    }
  }
  return NO_KEY;
}

function isCookieSpace(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

/**
 * Hash of the downstream peer's IP address. An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`, what
 * a dual-stack socket reports for IPv4 peers) hashes as the plain IPv4 address, so one client is
 * one key whichever way the listener was bound.
 */
export function sourceIpHash(address: string | undefined): number {
  if (address === undefined || address.length === 0) return NO_KEY;
  const start =
    address.length > IPV4_MAPPED_PREFIX.length &&
    address.startsWith(IPV4_MAPPED_PREFIX) &&
    address.includes(".", IPV4_MAPPED_PREFIX.length)
      ? IPV4_MAPPED_PREFIX.length
      : 0;
  return fmix32(fnv1a(FNV_OFFSET_BASIS, address, start, address.length));
}

/**
 * Hash of query parameter `name`'s value in a request target (`/p?a=1&b=2`). Names match
 * exactly, undecoded; the first occurrence wins; `?flag` (no `=`) has the empty value.
 */
export function queryParameterHash(path: string | undefined, name: string): number {
  if (path === undefined) return NO_KEY;
  const query = path.indexOf("?");
  if (query < 0) return NO_KEY;
  const fragment = path.indexOf("#", query);
  const end = fragment < 0 ? path.length : fragment;
  let i = query + 1;
  while (i <= end) {
    const nameStart = i;
    while (i < end && path.charCodeAt(i) !== 0x26 /* & */ && path.charCodeAt(i) !== 0x3d /* = */)
      i++;
    const nameEnd = i;
    let valueStart = i;
    if (i < end && path.charCodeAt(i) === 0x3d) valueStart = ++i;
    while (i < end && path.charCodeAt(i) !== 0x26) i++;
    if (rangeEquals(path, nameStart, nameEnd, name)) {
      return fmix32(fnv1a(FNV_OFFSET_BASIS, path, valueStart, i));
    }
    i++; // past the '&' (or the end)
  }
  return NO_KEY;
}
