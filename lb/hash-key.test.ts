import { describe, expect, it } from "vitest";
import {
  cookieHash,
  FNV_OFFSET_BASIS,
  fmix32,
  fnv1a,
  fnv1aDecimal,
  hashString,
  headerHash,
  NO_KEY,
  queryParameterHash,
  RequestHashKey,
  sourceIpHash,
} from "./hash-key.js";
import { chiSquare } from "./testing.js";

const sizes = { minimumRingSize: 1024, tableSize: 65537 };

describe("hashString", () => {
  it("is FNV-1a then fmix32, stable across releases", () => {
    // Pinned values: changing the hash would move every key in a mixed-version mesh.
    expect(fnv1a(FNV_OFFSET_BASIS, "a", 0, 1) >>> 0).toBe(0xe40c292c); // FNV-1a's own test vector
    expect(hashString("")).toBe(fmix32(FNV_OFFSET_BASIS));
    expect(hashString("10.0.0.1:8080_0")).toBe(hashString("10.0.0.1:8080_0"));
    // Computed independently (Python) from the definition.
    expect(hashString("user-42")).toBe(2083131798);
  });

  it("returns unsigned 32-bit integers", () => {
    for (const text of ["", "a", "ß", "10.0.0.1:8080", "x".repeat(1000)]) {
      const h = hashString(text);
      expect(Number.isInteger(h) && h >= 0 && h <= 0xffffffff).toBe(true);
    }
  });

  it("gives independent hashes for different seeds", () => {
    expect(hashString("10.0.0.1:8080", 1)).not.toBe(hashString("10.0.0.1:8080", 2));
    let sameLowBit = 0;
    for (let i = 0; i < 10_000; i++) {
      if ((hashString(`id-${i}`, 0x1234) & 1) === (hashString(`id-${i}`, 0x9876) & 1)) sameLowBit++;
    }
    expect(Math.abs(sameLowBit - 5000)).toBeLessThan(300);
  });

  it("spreads similar keys evenly over 16 buckets (chi-square over 100,000 keys)", () => {
    // Ring points differ only in their last digits: exactly where bare FNV-1a mixes poorly.
    for (const shift of [0, 28]) {
      const buckets = new Array<number>(16).fill(0);
      for (let i = 0; i < 100_000; i++)
        buckets[(hashString(`10.0.0.1:8080_${i}`) >>> shift) & 15]!++;
      const result = chiSquare(
        buckets,
        buckets.map(() => 1),
      );
      expect(result.statistic).toBeLessThan(result.critical);
    }
  });

  it("hashes decimal digits as their text", () => {
    for (const value of [0, 7, 10, 99, 100, 12345, 8388607]) {
      const state = fnv1a(FNV_OFFSET_BASIS, "id_", 0, 3);
      expect(fmix32(fnv1aDecimal(state, value))).toBe(hashString(`id_${value}`));
    }
  });
});

describe("headerHash", () => {
  const headers = ["Host", "svc", "X-User", "alice", "accept", "*/*"];

  it("hashes the named header's value, names compared case-insensitively", () => {
    expect(headerHash(headers, "x-user")).toBe(hashString("alice"));
    expect(headerHash(["X-USER", "alice"], "x-user")).toBe(hashString("alice"));
    expect(headerHash(["x-usex", "alice"], "x-user")).toBe(NO_KEY);
  });

  it("returns NO_KEY when the header or the header list is missing", () => {
    expect(headerHash(headers, "x-tenant")).toBe(NO_KEY);
    expect(headerHash(undefined, "x-user")).toBe(NO_KEY);
    expect(headerHash([], "x-user")).toBe(NO_KEY);
  });

  it("hashes an empty value as a key, and repeated lines as their combined value", () => {
    expect(headerHash(["x-user", ""], "x-user")).toBe(hashString(""));
    expect(headerHash(["x-user", "a", "Host", "h", "X-User", "b"], "x-user")).toBe(
      hashString("a, b"),
    );
  });
});

describe("cookieHash", () => {
  it("finds a cookie among several, in any position", () => {
    const headers = ["cookie", "theme=dark; session=abc123; cart=3"];
    expect(cookieHash(headers, "session")).toBe(hashString("abc123"));
    expect(cookieHash(headers, "theme")).toBe(hashString("dark"));
    expect(cookieHash(headers, "cart")).toBe(hashString("3"));
  });

  it("reads every Cookie field (any case), first match wins", () => {
    const headers = ["Cookie", "a=1", "Host", "h", "COOKIE", "session=x; session=y"];
    expect(cookieHash(headers, "session")).toBe(hashString("x"));
  });

  it("matches cookie names exactly and case-sensitively", () => {
    const headers = ["cookie", "xsession=1; Session=2; session_id=3"];
    expect(cookieHash(headers, "session")).toBe(NO_KEY);
    expect(cookieHash(headers, "Session")).toBe(hashString("2"));
  });

  it("tolerates loose spacing, empty values, quotes and valueless pairs", () => {
    const headers = ["cookie", '  a = 1 ;flag; b=; c="q";d=4'];
    expect(cookieHash(headers, "a")).toBe(hashString("1"));
    expect(cookieHash(headers, "b")).toBe(hashString(""));
    expect(cookieHash(headers, "c")).toBe(hashString('"q"'));
    expect(cookieHash(headers, "d")).toBe(hashString("4"));
    expect(cookieHash(headers, "flag")).toBe(NO_KEY);
  });

  it("returns NO_KEY without a Cookie header or the cookie", () => {
    expect(cookieHash(["host", "h"], "session")).toBe(NO_KEY);
    expect(cookieHash(["cookie", ""], "session")).toBe(NO_KEY);
    expect(cookieHash(undefined, "session")).toBe(NO_KEY);
  });
});

describe("sourceIpHash", () => {
  it("hashes the address; IPv4-mapped IPv6 as plain IPv4", () => {
    expect(sourceIpHash("10.1.2.3")).toBe(hashString("10.1.2.3"));
    expect(sourceIpHash("::ffff:10.1.2.3")).toBe(hashString("10.1.2.3"));
    expect(sourceIpHash("::ffff:a01:203")).toBe(hashString("::ffff:a01:203"));
    expect(sourceIpHash("2001:db8::1")).toBe(hashString("2001:db8::1"));
  });

  it("returns NO_KEY without an address", () => {
    expect(sourceIpHash(undefined)).toBe(NO_KEY);
    expect(sourceIpHash("")).toBe(NO_KEY);
  });
});

describe("queryParameterHash", () => {
  it("hashes the named parameter's raw value", () => {
    expect(queryParameterHash("/p?user=bob&x=1", "user")).toBe(hashString("bob"));
    expect(queryParameterHash("/p?x=1&user=bob", "user")).toBe(hashString("bob"));
    expect(queryParameterHash("/p?user=a%20b", "user")).toBe(hashString("a%20b"));
  });

  it("matches names exactly; first occurrence wins; no '=' means the empty value", () => {
    expect(queryParameterHash("/p?username=x&user=y&user=z", "user")).toBe(hashString("y"));
    expect(queryParameterHash("/p?debug&user=1", "debug")).toBe(hashString(""));
    expect(queryParameterHash("/p?User=1", "user")).toBe(NO_KEY);
  });

  it("returns NO_KEY without a query, the parameter or a path", () => {
    expect(queryParameterHash("/p", "user")).toBe(NO_KEY);
    expect(queryParameterHash("/p?", "user")).toBe(NO_KEY);
    expect(queryParameterHash("/p?x=1", "user")).toBe(NO_KEY);
    expect(queryParameterHash(undefined, "user")).toBe(NO_KEY);
  });

  it("stops at a fragment", () => {
    expect(queryParameterHash("/p?user=bob#frag", "user")).toBe(hashString("bob"));
    expect(queryParameterHash("/p?x=1#user=bob", "user")).toBe(NO_KEY);
  });
});

describe("RequestHashKey", () => {
  const ctx = {
    headers: ["X-User", "alice", "cookie", "session=s1"],
    sourceAddress: "10.9.8.7",
    path: "/cart?tenant=t1",
  };

  it("reads the one configured source", () => {
    expect(new RequestHashKey({ ...sizes, httpHeaderName: "x-user" }).hash(ctx)).toBe(
      hashString("alice"),
    );
    expect(
      new RequestHashKey({ ...sizes, httpCookie: { name: "session", ttlMs: 0 } }).hash(ctx),
    ).toBe(hashString("s1"));
    expect(new RequestHashKey({ ...sizes, useSourceIp: true }).hash(ctx)).toBe(
      hashString("10.9.8.7"),
    );
    expect(new RequestHashKey({ ...sizes, httpQueryParameterName: "tenant" }).hash(ctx)).toBe(
      hashString("t1"),
    );
  });

  it("hashes a caller-chosen key (a generated sticky cookie) as that cookie will hash later", () => {
    const cookie = new RequestHashKey({ ...sizes, httpCookie: { name: "session", ttlMs: 60_000 } });
    const generated = "3f9a2c7d1b5e8a04";
    expect(cookie.hash({ hashKey: generated })).toBe(
      cookie.hash({ headers: ["Cookie", `other=1; session=${generated}`] }),
    );
    // The chosen key wins over the request's own source.
    expect(cookie.hash({ ...ctx, hashKey: generated })).toBe(hashString(generated));
  });

  it("lower-cases a header name given in any case", () => {
    expect(new RequestHashKey({ ...sizes, httpHeaderName: "X-User" }).hash(ctx)).toBe(
      hashString("alice"),
    );
  });

  it("has no key without settings or with useSourceIp false", () => {
    expect(new RequestHashKey(undefined).hash(ctx)).toBe(NO_KEY);
    expect(new RequestHashKey({ ...sizes, useSourceIp: false }).hash(ctx)).toBe(NO_KEY);
    expect(new RequestHashKey({ ...sizes, httpHeaderName: "x-user" }).hash({})).toBe(NO_KEY);
  });
});
