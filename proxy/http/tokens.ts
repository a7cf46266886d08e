/**
 * Byte classes for the HTTP/1.1 codec. Each class is a 256-entry table built once at load, so
 * every validity check on the hot path is a single indexed load instead of a chain of compares
 * or a regex.
 */

export const HTAB = 0x09;
export const LF = 0x0a;
export const CR = 0x0d;
export const SP = 0x20;
export const DQUOTE = 0x22;
export const COMMA = 0x2c;
export const COLON = 0x3a;
export const SEMICOLON = 0x3b;
export const EQUALS = 0x3d;
export const BACKSLASH = 0x5c;

function byteTable(member: (c: number) => boolean): Uint8Array {
  const table = new Uint8Array(256);
  for (let c = 0; c < 256; c++) table[c] = member(c) ? 1 : 0;
  return table;
}

const isAlpha = (c: number): boolean => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const isVchar = (c: number): boolean => c >= 0x21 && c <= 0x7e;

/** tchar (RFC 9110 §5.6.2): the bytes of method names, field names and list tokens. */
export const TCHAR = byteTable(
  (c) => isAlpha(c) || isDigit(c) || "!#$%&'*+-.^_`|~".includes(String.fromCharCode(c)),
);

/**
 * Bytes allowed inside a field value (RFC 9110 §5.5): field-vchar (VCHAR / obs-text) plus SP
 * and HTAB. NUL, CR, LF, the other CTLs and DEL are excluded: §5.5 lets a recipient reject them
 * and they are the raw material of header injection.
 */
export const FIELD_VALUE = byteTable((c) => c === SP || c === HTAB || isVchar(c) || c >= 0x80);

/** Visible ASCII (VCHAR, RFC 5234 B.1): the request-target bytes we accept (RFC 9112 §3.2). */
export const VCHAR = byteTable(isVchar);

/**
 * qdtext of a quoted-string (RFC 9110 §5.6.4): HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text.
 * The quote and backslash are handled by the caller.
 */
export const QDTEXT = byteTable(
  (c) => c === HTAB || c === SP || (isVchar(c) && c !== DQUOTE && c !== BACKSLASH) || c >= 0x80,
);

/**
 * Bytes of uri-host [ ":" port ] (RFC 3986 §3.2.2: reg-name's unreserved / pct-encoded /
 * sub-delims, plus "[", "]" and ":" for IP-literals and the port). Anything else in Host (SP,
 * "/", "@", "?", "#", "\", quotes, obs-text) is how routing-confusion attacks start.
 */
export const HOST_CHAR = byteTable(
  (c) => isAlpha(c) || isDigit(c) || "-._~%!$&'()*+,;=[]:".includes(String.fromCharCode(c)),
);

/** Value of a HEXDIG (RFC 5234 B.1, case-insensitive), or -1. */
export const HEX_VALUE = new Int8Array(256).fill(-1);
for (let c = 0x30; c <= 0x39; c++) HEX_VALUE[c] = c - 0x30;
for (let c = 0x41; c <= 0x46; c++) HEX_VALUE[c] = c - 0x41 + 10;
for (let c = 0x61; c <= 0x66; c++) HEX_VALUE[c] = c - 0x61 + 10;

/** ASCII lower-casing of one byte; every other byte maps to itself. */
export const LOWER = new Uint8Array(256);
for (let c = 0; c < 256; c++) LOWER[c] = c >= 0x41 && c <= 0x5a ? c | 0x20 : c;

/** OWS / BWS byte (RFC 9110 §5.6.3). */
export function isOws(c: number): boolean {
  return c === SP || c === HTAB;
}

/**
 * Whether buf[start..start + lower.length) equals `lower` ignoring ASCII case. `lower` must be a
 * lower-case ASCII literal; the caller has already checked the length, so names are matched
 * without building a lower-cased copy of every field name.
 */
export function equalsLowerAscii(buf: Buffer, start: number, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    if (LOWER[buf[start + i]!] !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** Node's Buffer has latin1Slice (what toString("latin1") calls) but @types/node omits it. */
interface Latin1Sliceable {
  latin1Slice(start: number, end: number): string;
}

/**
 * buf[start..end) as a string, one char per byte. Latin-1 is the only lossless decoding of
 * field bytes (obs-text included) and is what node:http uses, so values round-trip exactly.
 */
export function latin1(buf: Buffer, start: number, end: number): string {
  return (buf as unknown as Latin1Sliceable).latin1Slice(start, end);
}
