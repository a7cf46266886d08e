import { describe, expect, it } from "vitest";
import { compilePolicies } from "./compile.js";
import {
  type AuthorizationPolicyConfig,
  connectionFacts,
  NO_ALLOW_MATCHED,
  type RequestFacts,
  type RuleConfig,
} from "./policy.js";

const FRONTEND = "cluster.local/ns/shop/sa/frontend";
const BATCH = "cluster.local/ns/jobs/sa/batch";

interface Request {
  principal?: string;
  sourceIp?: string;
  destinationIp?: string;
  port?: number;
  sni?: string;
  method?: string;
  host?: string;
  path?: string;
  headers?: string[];
}

/** Facts as the session fills them: namespace from the principal, as tls/inbound.ts does. */
function facts(request: Request = {}): RequestFacts {
  const principal = request.principal ?? FRONTEND;
  const namespace = /\/ns\/([^/]+)\//.exec(principal)?.[1] ?? "";
  const f = connectionFacts(
    principal,
    namespace,
    request.sourceIp ?? "10.1.2.3",
    request.destinationIp ?? "10.9.9.9",
    request.port ?? 15006,
    request.sni ?? "",
  );
  f.method = request.method ?? "GET";
  f.host = request.host ?? "reviews";
  f.path = request.path ?? "/api/items";
  f.headers = request.headers ?? [];
  return f;
}

function policy(
  name: string,
  action: "ALLOW" | "DENY",
  rules?: RuleConfig[],
): AuthorizationPolicyConfig {
  return rules === undefined ? { name, action } : { name, action, rules };
}

/** The verdict: "allow", or the name of what denied it. */
function decide(policies: AuthorizationPolicyConfig[], request: Request = {}): string {
  const authorizer = compilePolicies(policies);
  if (authorizer === undefined) return "allow (no policies)";
  return authorizer.authorize(facts(request)) ?? "allow";
}

/** One ALLOW policy with one rule: "allow" when the rule matches `request`, "deny" otherwise. */
function ruleMatches(rule: RuleConfig, request: Request = {}): boolean {
  const verdict = decide([policy("p", "ALLOW", [rule])], request);
  if (verdict !== "allow" && verdict !== NO_ALLOW_MATCHED) throw new Error(verdict);
  return verdict === "allow";
}

describe("policy evaluation (Istio's order)", () => {
  const allowFrontend = policy("allow-frontend", "ALLOW", [
    { from: [{ source: { principals: [FRONTEND] } }] },
  ]);
  const denyAdmin = policy("deny-admin", "DENY", [{ to: [{ operation: { paths: ["/admin*"] } }] }]);

  it("no policies: nothing to compile, every request allowed", () => {
    expect(compilePolicies([])).toBeUndefined();
  });

  it("only DENY policies: what none matches is allowed", () => {
    expect(decide([denyAdmin], { path: "/api" })).toBe("allow");
    expect(decide([denyAdmin], { path: "/admin/users" })).toBe("deny-admin");
  });

  it("an ALLOW policy exists and none matches: denied", () => {
    expect(decide([allowFrontend], { principal: BATCH })).toBe(NO_ALLOW_MATCHED);
    expect(decide([allowFrontend], { principal: FRONTEND })).toBe("allow");
  });

  it("a matching DENY wins over a matching ALLOW, whatever the order", () => {
    expect(decide([allowFrontend, denyAdmin], { path: "/admin" })).toBe("deny-admin");
    expect(decide([denyAdmin, allowFrontend], { path: "/admin" })).toBe("deny-admin");
    expect(decide([allowFrontend, denyAdmin], { path: "/api" })).toBe("allow");
  });

  it("any of several ALLOW policies may allow", () => {
    const allowBatch = policy("allow-batch", "ALLOW", [
      { from: [{ source: { principals: [BATCH] } }] },
    ]);
    expect(decide([allowFrontend, allowBatch], { principal: BATCH })).toBe("allow");
    expect(decide([allowFrontend, allowBatch], { principal: "cluster.local/ns/x/sa/y" })).toBe(
      NO_ALLOW_MATCHED,
    );
  });

  it("the first matching DENY policy is named", () => {
    const denyAll = policy("deny-all", "DENY", [{}]);
    expect(decide([denyAdmin, denyAll], { path: "/admin" })).toBe("deny-admin");
    expect(decide([denyAdmin, denyAll], { path: "/api" })).toBe("deny-all");
  });

  it("ALLOW without rules (Istio's `spec: {}`) denies everything; `rules: [{}]` allows everything", () => {
    expect(decide([policy("nothing", "ALLOW")])).toBe(NO_ALLOW_MATCHED);
    expect(decide([policy("nothing", "ALLOW", [])])).toBe(NO_ALLOW_MATCHED);
    expect(decide([policy("all", "ALLOW", [{}])])).toBe("allow");
  });

  it("DENY without rules matches nothing; `rules: [{}]` denies everything", () => {
    expect(decide([policy("never", "DENY")])).toBe("allow");
    expect(decide([policy("always", "DENY", [{}])])).toBe("always");
  });

  it("a policy matches when any one of its rules does", () => {
    const rules: RuleConfig[] = [
      { to: [{ operation: { methods: ["POST"] } }] },
      { to: [{ operation: { paths: ["/health"] } }] },
    ];
    expect(ruleMatches(rules[0]!, { method: "POST" })).toBe(true);
    expect(decide([policy("p", "ALLOW", rules)], { path: "/health" })).toBe("allow");
    expect(decide([policy("p", "ALLOW", rules)], { path: "/other" })).toBe(NO_ALLOW_MATCHED);
  });
});

describe("a rule: from AND to AND when; entries OR; fields AND; values OR", () => {
  const rule: RuleConfig = {
    from: [{ source: { principals: [FRONTEND] } }, { source: { namespaces: ["jobs"] } }],
    to: [{ operation: { methods: ["GET"], paths: ["/api/*"] } }],
    when: [{ key: "request.headers[x-tenant]", values: ["acme"] }],
  };
  const ok: Request = { path: "/api/x", headers: ["X-Tenant", "acme"] };

  it("matches when every part matches", () => {
    expect(ruleMatches(rule, ok)).toBe(true);
  });

  it("from entries are alternatives", () => {
    expect(ruleMatches(rule, { ...ok, principal: BATCH })).toBe(true);
    expect(ruleMatches(rule, { ...ok, principal: "cluster.local/ns/other/sa/x" })).toBe(false);
  });

  it("fields within an operation all have to match", () => {
    expect(ruleMatches(rule, { ...ok, method: "POST" })).toBe(false);
    expect(ruleMatches(rule, { ...ok, path: "/other" })).toBe(false);
  });

  it("the when condition has to match too", () => {
    expect(ruleMatches(rule, { ...ok, headers: ["X-Tenant", "other"] })).toBe(false);
    expect(ruleMatches(rule, { ...ok, headers: [] })).toBe(false);
  });

  it("every when condition has to match", () => {
    const two: RuleConfig = {
      when: [
        { key: "source.namespace", values: ["shop"] },
        { key: "destination.port", values: ["15006"] },
      ],
    };
    expect(ruleMatches(two)).toBe(true);
    expect(ruleMatches(two, { port: 8080 })).toBe(false);
    expect(ruleMatches(two, { principal: BATCH })).toBe(false);
  });
});

describe("source fields", () => {
  it("principals: with or without spiffe://, exact, prefix, suffix and *", () => {
    const match = (principals: string[], principal: string) =>
      ruleMatches({ from: [{ source: { principals } }] }, { principal });
    expect(match([FRONTEND], FRONTEND)).toBe(true);
    expect(match([`spiffe://${FRONTEND}`], FRONTEND)).toBe(true);
    expect(match([FRONTEND], BATCH)).toBe(false);
    expect(match(["cluster.local/ns/shop/*"], FRONTEND)).toBe(true);
    expect(match(["spiffe://cluster.local/ns/shop/*"], FRONTEND)).toBe(true);
    expect(match(["cluster.local/ns/shop/*"], BATCH)).toBe(false);
    expect(match(["*/sa/frontend"], FRONTEND)).toBe(true);
    expect(match(["*/sa/frontend"], BATCH)).toBe(false);
    expect(match(["*"], BATCH)).toBe(true);
    // Plaintext (no peer certificate): no principal, so even * does not match.
    expect(match(["*"], "")).toBe(false);
  });

  it("notPrincipals: * matches only requests without a principal (Istio's plaintext deny)", () => {
    const denyPlaintext = policy("require-mtls", "DENY", [
      { from: [{ source: { notPrincipals: ["*"] } }] },
    ]);
    expect(decide([denyPlaintext], { principal: "" })).toBe("require-mtls");
    expect(decide([denyPlaintext], { principal: FRONTEND })).toBe("allow");
    const notFrontend = { from: [{ source: { notPrincipals: [FRONTEND] } }] };
    expect(ruleMatches(notFrontend, { principal: BATCH })).toBe(true);
    expect(ruleMatches(notFrontend, { principal: FRONTEND })).toBe(false);
  });

  it("namespaces and notNamespaces match the principal's namespace segment", () => {
    const ns = { from: [{ source: { namespaces: ["shop", "team-*"] } }] };
    expect(ruleMatches(ns, { principal: FRONTEND })).toBe(true);
    expect(ruleMatches(ns, { principal: "cluster.local/ns/team-a/sa/x" })).toBe(true);
    expect(ruleMatches(ns, { principal: BATCH })).toBe(false);
    expect(ruleMatches(ns, { principal: "" })).toBe(false);
    const notNs = { from: [{ source: { notNamespaces: ["jobs"] } }] };
    expect(ruleMatches(notNs, { principal: FRONTEND })).toBe(true);
    expect(ruleMatches(notNs, { principal: BATCH })).toBe(false);
  });

  it("ipBlocks: IPv4 CIDRs and single addresses", () => {
    const ips = { from: [{ source: { ipBlocks: ["10.1.0.0/16", "192.168.1.7"] } }] };
    expect(ruleMatches(ips, { sourceIp: "10.1.200.3" })).toBe(true);
    expect(ruleMatches(ips, { sourceIp: "10.2.0.1" })).toBe(false);
    expect(ruleMatches(ips, { sourceIp: "192.168.1.7" })).toBe(true);
    expect(ruleMatches(ips, { sourceIp: "192.168.1.8" })).toBe(false);
    // A dual-stack socket reports an IPv4 peer as IPv4-mapped IPv6.
    expect(ruleMatches(ips, { sourceIp: "::ffff:10.1.2.3" })).toBe(true);
  });

  it("ipBlocks: IPv6 CIDRs and single addresses", () => {
    const ips = { from: [{ source: { ipBlocks: ["fd00:1::/32", "::1"] } }] };
    expect(ruleMatches(ips, { sourceIp: "fd00:1:0:5::9" })).toBe(true);
    expect(ruleMatches(ips, { sourceIp: "fd00:2::9" })).toBe(false);
    expect(ruleMatches(ips, { sourceIp: "::1" })).toBe(true);
    expect(ruleMatches(ips, { sourceIp: "::2" })).toBe(false);
    expect(ruleMatches(ips, { sourceIp: "10.1.2.3" })).toBe(false);
  });

  it("notIpBlocks and remoteIpBlocks (the peer: no X-Forwarded-For is trusted)", () => {
    const notIps = { from: [{ source: { notIpBlocks: ["10.0.0.0/8"] } }] };
    expect(ruleMatches(notIps, { sourceIp: "10.1.2.3" })).toBe(false);
    expect(ruleMatches(notIps, { sourceIp: "172.16.0.1" })).toBe(true);
    const remote = { from: [{ source: { remoteIpBlocks: ["172.16.0.0/12"] } }] };
    const spoofed = ["X-Forwarded-For", "172.16.0.1"];
    expect(ruleMatches(remote, { sourceIp: "10.1.2.3", headers: spoofed })).toBe(false);
    expect(ruleMatches(remote, { sourceIp: "172.16.0.1" })).toBe(true);
    const notRemote = { from: [{ source: { notRemoteIpBlocks: ["172.16.0.0/12"] } }] };
    expect(ruleMatches(notRemote, { sourceIp: "172.16.0.1" })).toBe(false);
  });

  it("fields of one source all have to match", () => {
    const both = { from: [{ source: { namespaces: ["shop"], ipBlocks: ["10.0.0.0/8"] } }] };
    expect(ruleMatches(both)).toBe(true);
    expect(ruleMatches(both, { sourceIp: "172.16.0.1" })).toBe(false);
    expect(ruleMatches(both, { principal: BATCH })).toBe(false);
  });
});

describe("operation fields", () => {
  const op = (operation: object) => ({ to: [{ operation }] });

  it("paths: exact, prefix *, suffix * and *", () => {
    const paths = op({ paths: ["/exact", "/api/*", "*.png"] });
    expect(ruleMatches(paths, { path: "/exact" })).toBe(true);
    expect(ruleMatches(paths, { path: "/exact/more" })).toBe(false);
    expect(ruleMatches(paths, { path: "/api/" })).toBe(true);
    expect(ruleMatches(paths, { path: "/api/v1/items" })).toBe(true);
    expect(ruleMatches(paths, { path: "/api" })).toBe(false);
    expect(ruleMatches(paths, { path: "/img/logo.png" })).toBe(true);
    expect(ruleMatches(paths, { path: "/img/logo.gif" })).toBe(false);
    expect(ruleMatches(op({ paths: ["*"] }), { path: "/anything" })).toBe(true);
  });

  it("notPaths", () => {
    const notPaths = op({ notPaths: ["/admin*"] });
    expect(ruleMatches(notPaths, { path: "/api" })).toBe(true);
    expect(ruleMatches(notPaths, { path: "/admin" })).toBe(false);
    expect(ruleMatches(notPaths, { path: "/administrators" })).toBe(false);
  });

  it("methods are exact and case-sensitive; notMethods", () => {
    const methods = op({ methods: ["GET", "HEAD"] });
    expect(ruleMatches(methods, { method: "GET" })).toBe(true);
    expect(ruleMatches(methods, { method: "HEAD" })).toBe(true);
    expect(ruleMatches(methods, { method: "POST" })).toBe(false);
    expect(ruleMatches(methods, { method: "get" })).toBe(false);
    const notMethods = op({ notMethods: ["DELETE"] });
    expect(ruleMatches(notMethods, { method: "GET" })).toBe(true);
    expect(ruleMatches(notMethods, { method: "DELETE" })).toBe(false);
  });

  it("ports and notPorts match the listener's port", () => {
    expect(ruleMatches(op({ ports: [15006, 9080] }), { port: 9080 })).toBe(true);
    expect(ruleMatches(op({ ports: [15006] }), { port: 9080 })).toBe(false);
    expect(ruleMatches(op({ notPorts: [9080] }), { port: 9080 })).toBe(false);
    expect(ruleMatches(op({ notPorts: [9080] }), { port: 15006 })).toBe(true);
  });

  it("hosts: case-insensitive, with or without the port; notHosts", () => {
    const hosts = op({ hosts: ["Reviews.shop.svc.cluster.local", "*.example.com"] });
    expect(ruleMatches(hosts, { host: "reviews.shop.svc.cluster.local" })).toBe(true);
    expect(ruleMatches(hosts, { host: "reviews.shop.svc.cluster.local:9080" })).toBe(true);
    expect(ruleMatches(hosts, { host: "API.Example.com" })).toBe(true);
    expect(ruleMatches(hosts, { host: "example.org" })).toBe(false);
    expect(ruleMatches(op({ notHosts: ["*.internal"] }), { host: "db.internal:80" })).toBe(false);
    expect(ruleMatches(op({ notHosts: ["*.internal"] }), { host: "reviews" })).toBe(true);
  });

  it("to entries are alternatives", () => {
    const rule = { to: [{ operation: { methods: ["GET"] } }, { operation: { paths: ["/up"] } }] };
    expect(ruleMatches(rule, { method: "POST", path: "/up" })).toBe(true);
    expect(ruleMatches(rule, { method: "POST", path: "/down" })).toBe(false);
  });
});

describe("when conditions", () => {
  const when = (key: string, values?: string[], notValues?: string[]) => ({
    when: [{ key, ...(values ? { values } : {}), ...(notValues ? { notValues } : {}) }],
  });

  it("request.headers[NAME]: name case-insensitive, Istio string matches, repeated fields joined", () => {
    const agent = when("request.headers[User-Agent]", ["curl/*"]);
    expect(ruleMatches(agent, { headers: ["user-agent", "curl/8.5"] })).toBe(true);
    expect(ruleMatches(agent, { headers: ["user-agent", "wget"] })).toBe(false);
    expect(ruleMatches(agent, { headers: [] })).toBe(false);
    const joined = when("request.headers[x-a]", ["1,2"]);
    expect(ruleMatches(joined, { headers: ["x-a", "1", "X-A", "2"] })).toBe(true);
  });

  it("notValues: an absent header satisfies it", () => {
    const notDebug = when("request.headers[x-debug]", undefined, ["*"]);
    expect(ruleMatches(notDebug, { headers: [] })).toBe(true);
    expect(ruleMatches(notDebug, { headers: ["x-debug", "1"] })).toBe(false);
  });

  it("values and notValues together must both hold", () => {
    const both = when("source.principal", ["cluster.local/ns/shop/*"], [FRONTEND]);
    expect(ruleMatches(both, { principal: "cluster.local/ns/shop/sa/cart" })).toBe(true);
    expect(ruleMatches(both, { principal: FRONTEND })).toBe(false);
  });

  it("source.ip, remote.ip and destination.ip take IPs and CIDRs", () => {
    expect(ruleMatches(when("source.ip", ["10.1.0.0/16"]), { sourceIp: "10.1.9.9" })).toBe(true);
    expect(ruleMatches(when("source.ip", ["10.1.0.0/16"]), { sourceIp: "10.2.9.9" })).toBe(false);
    expect(ruleMatches(when("remote.ip", ["fd00::/8"]), { sourceIp: "fd12::1" })).toBe(true);
    expect(ruleMatches(when("destination.ip", ["10.9.9.9"]))).toBe(true);
    expect(ruleMatches(when("destination.ip", undefined, ["10.9.0.0/16"]))).toBe(false);
  });

  it("source.namespace, source.principal (spiffe:// optional), destination.port, connection.sni", () => {
    expect(ruleMatches(when("source.namespace", ["shop"]))).toBe(true);
    expect(ruleMatches(when("source.namespace", ["jobs"]))).toBe(false);
    expect(ruleMatches(when("source.principal", [`spiffe://${FRONTEND}`]))).toBe(true);
    expect(ruleMatches(when("destination.port", ["15006", "9080"]), { port: 9080 })).toBe(true);
    expect(ruleMatches(when("destination.port", undefined, ["9080"]), { port: 9080 })).toBe(false);
    expect(ruleMatches(when("connection.sni", ["*.svc"]), { sni: "reviews.svc" })).toBe(true);
    expect(ruleMatches(when("connection.sni", ["*.svc"]), { sni: "" })).toBe(false);
  });

  it("a JWT key cannot be compiled (the schema refuses it first)", () => {
    expect(() =>
      compilePolicies([policy("jwt", "ALLOW", [when("request.auth.claims[iss]", ["x"])])]),
    ).toThrow(/JWT/);
  });
});
