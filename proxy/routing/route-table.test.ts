import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { matchesLabels as subsetMatches } from "../../lb/host-set.js";
import { seededRandom } from "../../lb/testing.js";
import { loadConfigFile } from "../config/load.js";
import {
  type RemoraConfigInput,
  type ServiceConfig,
  servicesFileSchema,
} from "../config/schema.js";
import { EVERY_ENDPOINT, RouteTable } from "./route-table.js";

type RoutesInput = NonNullable<NonNullable<RemoraConfigInput["services"]>[number]["routes"]>;

const SUBSETS = ["v1", "v2", "v3"].map((name) => ({ name, labels: { version: name } }));

/** Routes as the config loader produces them (through the real schema, defaults applied). */
function routes(input: RoutesInput): ServiceConfig["routes"] {
  const file = servicesFileSchema.parse({
    services: [{ name: "reviews", subsets: SUBSETS, routes: input }],
  });
  return file.services[0]!.routes;
}

/** A random() that returns the given values in turn and fails the test if asked for more. */
function scripted(...values: number[]): () => number {
  let next = 0;
  return () => {
    if (next >= values.length) throw new Error("random() called more often than scripted");
    return values[next++]!;
  };
}

const never = scripted();

function table(input: RoutesInput, random: () => number = never): RouteTable {
  return new RouteTable(routes(input), { random });
}

/** The subset chosen, "none" when no route matches, "all" for every endpoint. */
function subsetFor(
  t: RouteTable,
  target: string,
  headers: readonly string[] = [],
  method = "GET",
): string {
  const choice = t.select(method, target, headers);
  if (choice === undefined) return "none";
  return choice.subset ?? "all";
}

describe("RouteTable without routes", () => {
  it("is empty and sends every request to every endpoint", () => {
    const t = new RouteTable([], { random: never });
    expect(t.empty).toBe(true);
    expect(t.select("GET", "/anything?x=1", ["Host", "reviews"])).toBe(EVERY_ENDPOINT);
    expect(t.select("OPTIONS", "*", [])).toEqual({ subset: undefined, route: "default" });
  });

  it("is not empty once it has a route", () => {
    expect(table([{ route: [{ subset: "v1" }] }]).empty).toBe(false);
  });
});

describe("RouteTable route order", () => {
  it("takes the first matching route, not the most specific one", () => {
    const t = table([
      { name: "api", match: [{ uri: { prefix: "/api" } }], route: [{ subset: "v1" }] },
      { name: "api-v2", match: [{ uri: { prefix: "/api/v2" } }], route: [{ subset: "v2" }] },
      { name: "rest", route: [{ subset: "v3" }] },
    ]);
    expect(subsetFor(t, "/api/v2/users")).toBe("v1");
    expect(subsetFor(t, "/api")).toBe("v1");
    expect(subsetFor(t, "/other")).toBe("v3");
  });

  it("falls through to later routes when earlier ones do not match", () => {
    const t = table([
      { match: [{ uri: { exact: "/a" } }], route: [{ subset: "v1" }] },
      { match: [{ uri: { exact: "/b" } }], route: [{ subset: "v2" }] },
    ]);
    expect(subsetFor(t, "/a")).toBe("v1");
    expect(subsetFor(t, "/b")).toBe("v2");
  });

  it("answers no route when routes exist and none matches", () => {
    const t = table([{ match: [{ uri: { exact: "/a" } }], route: [{ subset: "v1" }] }]);
    expect(t.select("GET", "/b", [])).toBeUndefined();
  });

  it("names the choice after the route, or its index when unnamed", () => {
    const t = table([
      { name: "canary", match: [{ uri: { exact: "/a" } }], route: [{ subset: "v1" }] },
      { route: [{}] },
    ]);
    expect(t.select("GET", "/a", [])).toEqual({ subset: "v1", route: "canary" });
    expect(t.select("GET", "/b", [])).toEqual({ subset: undefined, route: "1" });
  });

  it("returns the same frozen choice object on every request", () => {
    const t = table([{ route: [{ subset: "v1" }] }]);
    const first = t.select("GET", "/", [])!;
    expect(t.select("POST", "/x?y", ["a", "b"])).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
  });
});

describe("RouteTable match alternatives", () => {
  const t = table([
    {
      match: [
        { uri: { prefix: "/admin" }, method: { exact: "POST" } },
        { headers: { "x-debug": { exact: "1" } } },
      ],
      route: [{ subset: "v2" }],
    },
    { route: [{ subset: "v1" }] },
  ]);

  it("matches when any alternative holds (OR)", () => {
    expect(subsetFor(t, "/admin/users", [], "POST")).toBe("v2");
    expect(subsetFor(t, "/public", ["x-debug", "1"], "GET")).toBe("v2");
  });

  it("requires every condition of one alternative (AND)", () => {
    expect(subsetFor(t, "/admin/users", [], "GET")).toBe("v1");
    expect(subsetFor(t, "/public", [], "POST")).toBe("v1");
  });

  it("does not combine conditions from different alternatives", () => {
    // uri from the first alternative and the header from the second, method missing.
    expect(subsetFor(t, "/admin", ["x-debug", "0"], "GET")).toBe("v1");
  });

  it("matches every request with an empty match list", () => {
    const all = table([{ match: [], route: [{ subset: "v3" }] }]);
    expect(subsetFor(all, "/", [], "DELETE")).toBe("v3");
    expect(subsetFor(all, "*", [], "OPTIONS")).toBe("v3");
  });

  it("matches every request with an alternative that has no conditions", () => {
    const all = table([{ match: [{}], route: [{ subset: "v3" }] }]);
    expect(subsetFor(all, "/x", [])).toBe("v3");
  });
});

describe("RouteTable uri", () => {
  const uri = (match: { exact?: string; prefix?: string; regex?: string }) =>
    table([{ match: [{ uri: match }], route: [{ subset: "v1" }] }]);

  it("exact matches the whole path only", () => {
    const t = uri({ exact: "/api/v1" });
    expect(subsetFor(t, "/api/v1")).toBe("v1");
    expect(subsetFor(t, "/api/v1/")).toBe("none");
    expect(subsetFor(t, "/api/v")).toBe("none");
    expect(subsetFor(t, "/API/v1")).toBe("none");
  });

  it("prefix matches the start of the path", () => {
    const t = uri({ prefix: "/api" });
    expect(subsetFor(t, "/api")).toBe("v1");
    expect(subsetFor(t, "/api/v1")).toBe("v1");
    expect(subsetFor(t, "/apiary")).toBe("v1"); // plain string prefix, as Istio's
    expect(subsetFor(t, "/ap")).toBe("none");
    expect(subsetFor(t, "/v1/api")).toBe("none");
  });

  it("regex must match the whole path (anchored)", () => {
    const t = uri({ regex: "/users/[0-9]+" });
    expect(subsetFor(t, "/users/42")).toBe("v1");
    expect(subsetFor(t, "/users/42/orders")).toBe("none");
    expect(subsetFor(t, "/v2/users/42")).toBe("none");
    expect(subsetFor(t, "/users/")).toBe("none");
  });

  it("anchors every branch of an alternation", () => {
    const t = uri({ regex: "/a|/b" });
    expect(subsetFor(t, "/a")).toBe("v1");
    expect(subsetFor(t, "/b")).toBe("v1");
    expect(subsetFor(t, "/ab")).toBe("none");
    expect(subsetFor(t, "/b/c")).toBe("none");
  });

  it("ignores the query string for exact, prefix and regex", () => {
    expect(subsetFor(uri({ exact: "/api/v1" }), "/api/v1?x=1")).toBe("v1");
    expect(subsetFor(uri({ exact: "/api/v1" }), "/api/v1?")).toBe("v1");
    expect(subsetFor(uri({ prefix: "/api" }), "/api?x=1")).toBe("v1");
    expect(subsetFor(uri({ regex: "/api/v[0-9]" }), "/api/v1?x=1")).toBe("v1");
    expect(subsetFor(uri({ regex: "/api/v[0-9]" }), "/api/v1?x=/api/v2")).toBe("v1");
  });

  it("never matches into the query string", () => {
    // Each would match the target text if the query were part of the path.
    expect(subsetFor(uri({ prefix: "/api?x" }), "/api?x=1")).toBe("none");
    expect(subsetFor(uri({ exact: "/api?x=1" }), "/api?x=1")).toBe("none");
    expect(subsetFor(uri({ regex: "/api.*" }), "/api?x=1")).toBe("v1");
    expect(subsetFor(uri({ regex: "/api\\?.*" }), "/api?x=1")).toBe("none");
    expect(subsetFor(uri({ prefix: "/api" }), "/?x=/api")).toBe("none");
  });

  it("sees the asterisk-form target as the path *", () => {
    expect(subsetFor(uri({ exact: "*" }), "*", [], "OPTIONS")).toBe("v1");
    expect(subsetFor(uri({ prefix: "/" }), "*", [], "OPTIONS")).toBe("none");
    expect(subsetFor(uri({ regex: "\\*" }), "*", [], "OPTIONS")).toBe("v1");
  });
});

describe("RouteTable method", () => {
  const method = (match: { exact?: string; prefix?: string; regex?: string }) =>
    table([{ match: [{ method: match }], route: [{ subset: "v1" }] }]);

  it("exact is case-sensitive, as Istio's", () => {
    const t = method({ exact: "GET" });
    expect(subsetFor(t, "/", [], "GET")).toBe("v1");
    expect(subsetFor(t, "/", [], "get")).toBe("none");
    expect(subsetFor(t, "/", [], "GETX")).toBe("none");
  });

  it("prefix and regex", () => {
    expect(subsetFor(method({ prefix: "P" }), "/", [], "PUT")).toBe("v1");
    expect(subsetFor(method({ prefix: "P" }), "/", [], "GET")).toBe("none");
    const write = method({ regex: "POST|PUT|PATCH" });
    expect(subsetFor(write, "/", [], "PATCH")).toBe("v1");
    expect(subsetFor(write, "/", [], "POSTX")).toBe("none");
    expect(subsetFor(write, "/", [], "GET")).toBe("none");
  });
});

describe("RouteTable headers", () => {
  const header = (name: string, match: { exact?: string; prefix?: string; regex?: string }) =>
    table([{ match: [{ headers: { [name]: match } }], route: [{ subset: "v2" }] }]);

  it("exact, prefix and regex on the value", () => {
    expect(subsetFor(header("x-canary", { exact: "always" }), "/", ["x-canary", "always"])).toBe(
      "v2",
    );
    expect(subsetFor(header("x-canary", { exact: "always" }), "/", ["x-canary", "Always"])).toBe(
      "none",
    );
    expect(subsetFor(header("x-canary", { exact: "always" }), "/", ["x-canary", "always!"])).toBe(
      "none",
    );
    const prefix = header("user-agent", { prefix: "curl/" });
    expect(subsetFor(prefix, "/", ["User-Agent", "curl/8.5.0"])).toBe("v2");
    expect(subsetFor(prefix, "/", ["User-Agent", "Mozilla/5.0 curl/8"])).toBe("none");
    const regex = header("cookie", { regex: ".*user=jason.*" });
    expect(subsetFor(regex, "/", ["Cookie", "a=1; user=jason; b=2"])).toBe("v2");
    expect(subsetFor(regex, "/", ["Cookie", "user=json"])).toBe("none");
  });

  it("anchors a header regex (a partial match does not count)", () => {
    const t = header("x-version", { regex: "v[0-9]+" });
    expect(subsetFor(t, "/", ["x-version", "v12"])).toBe("v2");
    expect(subsetFor(t, "/", ["x-version", "v12-beta"])).toBe("none");
    expect(subsetFor(t, "/", ["x-version", "old-v12"])).toBe("none");
  });

  it("compares field names case-insensitively, both in config and in the request", () => {
    const t = header("X-Canary", { exact: "always" });
    expect(subsetFor(t, "/", ["x-canary", "always"])).toBe("v2");
    expect(subsetFor(t, "/", ["X-CANARY", "always"])).toBe("v2");
    expect(subsetFor(t, "/", ["x-Canary", "always"])).toBe("v2");
    // Same length, different name: case folding must not make these equal.
    expect(subsetFor(t, "/", ["x-canarz", "always"])).toBe("none");
    expect(subsetFor(t, "/", ["x_canary", "always"])).toBe("none");
  });

  it("uses the first occurrence of a repeated field", () => {
    const t = header("x-canary", { exact: "always" });
    expect(subsetFor(t, "/", ["X-Canary", "always", "x-canary", "never"])).toBe("v2");
    expect(subsetFor(t, "/", ["x-canary", "never", "X-Canary", "always"])).toBe("none");
  });

  it("never matches a condition on an absent field, whatever the condition", () => {
    expect(subsetFor(header("x-canary", { prefix: "" }), "/", ["x-other", "1"])).toBe("none");
    expect(subsetFor(header("x-canary", { regex: ".*" }), "/", [])).toBe("none");
    expect(subsetFor(header("x-canary", { exact: "" }), "/", ["Host", "reviews"])).toBe("none");
    // ...while an empty value that is present does match these.
    expect(subsetFor(header("x-canary", { exact: "" }), "/", ["x-canary", ""])).toBe("v2");
    expect(subsetFor(header("x-canary", { prefix: "" }), "/", ["x-canary", "x"])).toBe("v2");
  });

  it("does not take a value for a name", () => {
    // "x-canary" appears as the value of another field, not as a field name.
    const t = header("x-canary", { exact: "always" });
    expect(subsetFor(t, "/", ["x-note", "x-canary", "always", "always"])).toBe("none");
  });

  it("requires every header condition of an alternative", () => {
    const t = table([
      {
        match: [{ headers: { "x-a": { exact: "1" }, "x-b": { exact: "2" } } }],
        route: [{ subset: "v2" }],
      },
    ]);
    expect(subsetFor(t, "/", ["x-b", "2", "x-a", "1"])).toBe("v2");
    expect(subsetFor(t, "/", ["x-a", "1"])).toBe("none");
    expect(subsetFor(t, "/", ["x-a", "1", "x-b", "3"])).toBe("none");
  });
});

describe("RouteTable weighted split", () => {
  const split = (random: () => number) =>
    table(
      [
        {
          route: [
            { subset: "v1", weight: 90 },
            { subset: "v2", weight: 10 },
          ],
        },
      ],
      random,
    );

  it("splits at the exact cumulative boundaries", () => {
    const t = split(scripted(0, 0.5, 0.8999, 0.9, 0.95, 0.9999));
    const picks = Array.from({ length: 6 }, () => subsetFor(t, "/"));
    expect(picks).toEqual(["v1", "v1", "v1", "v2", "v2", "v2"]);
  });

  it("normalises weights that do not add up to 100", () => {
    // 1:3 → [0, 0.25) v1, [0.25, 1) v2.
    const t = table(
      [
        {
          route: [
            { subset: "v1", weight: 1 },
            { subset: "v2", weight: 3 },
          ],
        },
      ],
      scripted(0.2499, 0.25, 0.99),
    );
    expect([subsetFor(t, "/"), subsetFor(t, "/"), subsetFor(t, "/")]).toEqual(["v1", "v2", "v2"]);
  });

  it("takes the last destination when random() misbehaves and returns 1", () => {
    expect(subsetFor(split(scripted(1)), "/")).toBe("v2");
  });

  it("never chooses a destination of weight 0", () => {
    const t = table(
      [
        {
          route: [
            { subset: "v1", weight: 0 },
            { subset: "v2", weight: 50 },
            { subset: "v3", weight: 0 },
            { weight: 50 },
          ],
        },
      ],
      scripted(0, 0.4999, 0.5, 0.9999, 1),
    );
    const picks = Array.from({ length: 5 }, () => subsetFor(t, "/"));
    expect(picks).toEqual(["v2", "v2", "all", "all", "all"]);
  });

  it("does not draw when only one destination has a share", () => {
    const t = table([
      {
        route: [
          { subset: "v1", weight: 0 },
          { subset: "v2", weight: 100 },
        ],
      },
    ]);
    expect(subsetFor(t, "/")).toBe("v2"); // `never` throws if random() is called
  });

  it("sends everything to a lone destination whatever its weight", () => {
    expect(subsetFor(table([{ route: [{ subset: "v1", weight: 10 }] }]), "/")).toBe("v1");
    expect(subsetFor(table([{ route: [{ subset: "v1", weight: 0 }] }]), "/")).toBe("v1");
  });

  it("draws only for the route that matched", () => {
    const t = table(
      [
        { match: [{ uri: { prefix: "/a" } }], route: [{ subset: "v3" }] },
        {
          route: [
            { subset: "v1", weight: 50 },
            { subset: "v2", weight: 50 },
          ],
        },
      ],
      scripted(0.7),
    );
    expect(subsetFor(t, "/a")).toBe("v3");
    expect(subsetFor(t, "/b")).toBe("v2");
  });

  it("splits 90/10 within chi-square tolerance over 100,000 selections", () => {
    const t = split(seededRandom(9));
    const counts = { v1: 0, v2: 0 };
    const n = 100_000;
    for (let i = 0; i < n; i++) counts[subsetFor(t, "/") as "v1" | "v2"]++;
    const expected = { v1: n * 0.9, v2: n * 0.1 };
    const chiSquare =
      (counts.v1 - expected.v1) ** 2 / expected.v1 + (counts.v2 - expected.v2) ** 2 / expected.v2;
    // Critical value for 1 degree of freedom at p = 0.001.
    expect(chiSquare).toBeLessThan(10.828);
  });

  it("is far outside tolerance for a wrong split (the test above can fail)", () => {
    const t = table(
      [
        {
          route: [
            { subset: "v1", weight: 80 },
            { subset: "v2", weight: 20 },
          ],
        },
      ],
      seededRandom(9),
    );
    let v1 = 0;
    const n = 100_000;
    for (let i = 0; i < n; i++) if (subsetFor(t, "/") === "v1") v1++;
    const chiSquare = (v1 - n * 0.9) ** 2 / (n * 0.9) + (n - v1 - n * 0.1) ** 2 / (n * 0.1);
    expect(chiSquare).toBeGreaterThan(10.828);
  });
});

describe("RouteTable input checks", () => {
  it("rejects a split without weights or with only zero weights (the schema does too)", () => {
    const random = { random: never };
    expect(
      () =>
        new RouteTable(
          [{ name: "r", match: [], route: [{ subset: "v1" }, { subset: "v2" }] }],
          random,
        ),
    ).toThrow(/route r: .*needs a weight/);
    expect(
      () =>
        new RouteTable(
          [
            {
              match: [],
              route: [
                { subset: "v1", weight: 0 },
                { subset: "v2", weight: 0 },
              ],
            },
          ],
          random,
        ),
    ).toThrow(/route 0: at least one destination needs a weight above 0/);
    expect(() => new RouteTable([{ match: [], route: [] }], random)).toThrow(/route 0/);
  });
});

describe("examples/canary.yaml", () => {
  const file = resolve(dirname(fileURLToPath(import.meta.url)), "../../examples/canary.yaml");
  const reviews = loadConfigFile(file).services.find((service) => service.name === "reviews")!;

  it("sends x-canary: always to v2 (any case of the name) without drawing", () => {
    const t = new RouteTable(reviews.routes, { random: never });
    expect(t.select("GET", "/", ["Host", "reviews", "X-Canary", "always"])).toEqual({
      subset: "v2",
      route: "canary-header",
    });
  });

  it("splits everything else 90/10 between v1 and v2", () => {
    const t = new RouteTable(reviews.routes, { random: scripted(0.8999, 0.9) });
    expect(t.select("GET", "/", ["x-canary", "sometimes"])).toEqual({
      subset: "v1",
      route: "default",
    });
    expect(t.select("POST", "/x?y=1", [])).toEqual({ subset: "v2", route: "default" });
  });

  it("has subsets that select its v1 and v2 endpoints", () => {
    const members = (name: string) => {
      const selector = reviews.subsets.find((subset) => subset.name === name)!.labels;
      return reviews.endpoints
        .filter((endpoint) => subsetMatches(endpoint.labels, selector))
        .map((endpoint) => endpoint.address);
    };
    expect(members("v1")).toEqual(["127.0.0.1:9101", "127.0.0.1:9102"]);
    expect(members("v2")).toEqual(["127.0.0.1:9103"]);
  });
});
