import { describe, expect, it } from "vitest";
import { formatAddress, InvalidAddressError, isBindHost, parseAddress } from "./address.js";

describe("parseAddress", () => {
  it.each([
    ["127.0.0.1:8080", "127.0.0.1", 8080],
    ["[::1]:8080", "::1", 8080],
    ["[2001:DB8::1]:443", "2001:db8::1", 443],
    ["localhost:1", "localhost", 1],
    ["Db.Internal:5432", "db.internal", 5432],
    ["hello.default.svc.cluster.local:65535", "hello.default.svc.cluster.local", 65535],
  ])("%s → %s port %d", (text, host, port) => {
    expect(parseAddress(text)).toEqual({ host, port });
  });

  it.each([
    ["127.0.0.1", /missing :PORT/],
    ["127.0.0.1:", /missing port/],
    [":8080", /missing host/],
    ["127.0.0.1:0", /out of range/],
    ["127.0.0.1:65536", /out of range/],
    ["127.0.0.1:http", /not a number/],
    ["127.0.0.1:-1", /not a number/],
    ["127.0.0.1:123456", /not a number/],
    ["::1:8080", /must be in brackets/],
    ["[::1]8080", /missing :PORT/],
    ["[::1:8080", /missing \]/],
    ["[127.0.0.1]:80", /not an IPv6 address/],
    ["10.0.0.300:80", /neither an IPv4 address nor a host name/],
    ["under_score:80", /neither/],
    ["-bad.example:80", /neither/],
    ["a b:80", /neither/],
  ])("rejects %s", (text, reason) => {
    expect(() => parseAddress(text)).toThrow(InvalidAddressError);
    expect(() => parseAddress(text)).toThrow(reason);
  });

  it("carries a stable code", () => {
    expect(() => parseAddress("x")).toThrow(
      expect.objectContaining({ code: "REMORA_ERR_INVALID_ADDRESS", input: "x" }),
    );
  });
});

describe("formatAddress", () => {
  it("brackets IPv6 only, inverting parseAddress", () => {
    expect(formatAddress("::1", 80)).toBe("[::1]:80");
    expect(formatAddress("10.0.0.1", 80)).toBe("10.0.0.1:80");
    expect(formatAddress("db", 5432)).toBe("db:5432");
    const { host, port } = parseAddress("[fe80::1]:9000");
    expect(formatAddress(host, port)).toBe("[fe80::1]:9000");
  });
});

describe("isBindHost", () => {
  it.each(["0.0.0.0", "127.0.0.1", "::", "[::]", "::1", "localhost"])("accepts %s", (text) => {
    expect(isBindHost(text)).toBe(true);
  });
  it.each(["", "127.0.0.1:80", "256.0.0.1", "[::1", "host name"])("rejects %j", (text) => {
    expect(isBindHost(text)).toBe(false);
  });
});
