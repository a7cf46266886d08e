import { isIPv4, isIPv6 } from "node:net";

/** A `HOST:PORT` string could not be parsed. */
export class InvalidAddressError extends Error {
  override readonly name = "InvalidAddressError";
  readonly code = "REMORA_ERR_INVALID_ADDRESS";
  readonly input: string;

  constructor(input: string, reason: string) {
    super(
      `invalid address "${input}": ${reason}; expected HOST:PORT such as 127.0.0.1:8080, [::1]:8080 or db.internal:5432`,
    );
    this.input = input;
  }
}

export interface HostPort {
  /** IP address (IPv6 without brackets, as node:net wants it) or DNS name, lower-cased. */
  readonly host: string;
  /** 1..65535: a destination, so port 0 is meaningless. */
  readonly port: number;
}

/**
 * Parse a destination `HOST:PORT`: IPv4, bracketed IPv6 (`[::1]:8080`, RFC 3986 §3.2.2) or an
 * RFC 1123 host name. Bare IPv6 is rejected because its last group is indistinguishable from a port.
 */
export function parseAddress(text: string): HostPort {
  let host: string;
  let portText: string;
  if (text.startsWith("[")) {
    const close = text.indexOf("]");
    if (close < 0) throw new InvalidAddressError(text, "missing ] after the IPv6 address");
    host = text.slice(1, close);
    if (!isIPv6(host)) throw new InvalidAddressError(text, `"${host}" is not an IPv6 address`);
    if (text[close + 1] !== ":") throw new InvalidAddressError(text, "missing :PORT");
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(":");
    if (colon < 0) throw new InvalidAddressError(text, "missing :PORT");
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(":")) {
      throw new InvalidAddressError(text, "IPv6 addresses must be in brackets, e.g. [::1]:8080");
    }
    if (host === "") throw new InvalidAddressError(text, "missing host");
    if (!isIPv4(host) && !isHostname(host)) {
      throw new InvalidAddressError(text, `"${host}" is neither an IPv4 address nor a host name`);
    }
  }
  // Host names and IPv6 hex digits are case-insensitive; one spelling keeps endpoint ids unique.
  return { host: host.toLowerCase(), port: parsePort(text, portText) };
}

/** `host:port` with IPv6 bracketed: the inverse of parseAddress, and an endpoint's id. */
export function formatAddress(host: string, port: number): string {
  return isIPv6(host) ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * A local address to bind: IPv4, IPv6 (brackets optional; callers strip them) or a host name such
 * as `localhost`.
 */
export function isBindHost(text: string): boolean {
  const bare = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  return isIPv4(bare) || isIPv6(bare) || isHostname(bare);
}

const LABEL = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/i;

/**
 * RFC 1123 host name. A name whose last label is all digits is rejected (as the WHATWG URL parser
 * does) so a mistyped IPv4 address like 10.0.0.300 is not taken for a DNS name.
 */
export function isHostname(text: string): boolean {
  if (text.length === 0 || text.length > 253) return false;
  const labels = text.split(".");
  for (const label of labels) if (!LABEL.test(label)) return false;
  return !/^\d+$/.test(labels[labels.length - 1]!);
}

function parsePort(input: string, text: string): number {
  if (text === "") throw new InvalidAddressError(input, "missing port after :");
  if (!/^\d{1,5}$/.test(text))
    throw new InvalidAddressError(input, `port "${text}" is not a number`);
  const port = Number(text);
  if (port < 1 || port > 65535) {
    throw new InvalidAddressError(input, `port ${port} is out of range 1..65535`);
  }
  return port;
}
