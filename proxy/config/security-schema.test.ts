import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "./load.js";

const LISTENER = "listeners:\n  - { name: in, kind: inbound, port: 15006, app: 127.0.0.1:8080 }\n";

function parse(policies: string) {
  return parseConfig(`${LISTENER}authorizationPolicies:\n${policies}`, "test.yaml");
}

/** [path, message] of every issue of a config that must fail. */
function issuesOf(policies: string): [string, string][] {
  try {
    parse(policies);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues.map((issue) => [issue.path, issue.message]);
  }
  throw new Error("config was accepted");
}

describe("authorizationPolicies", () => {
  it("defaults to none", () => {
    expect(parseConfig(LISTENER, "x").authorizationPolicies).toEqual([]);
  });

  it("parses Istio's shapes: action defaults to ALLOW, rules to none, ports to numbers", () => {
    const config = parse(
      [
        "  - name: frontend-api",
        "    rules:",
        "      - from: [{ source: { principals: [cluster.local/ns/shop/sa/frontend] } }]",
        '        to: [{ operation: { methods: [GET], paths: ["/api/*"], ports: ["15006", 9080] } }]',
        "        when: [{ key: 'request.headers[x-tenant]', values: [acme] }]",
        "  - { name: deny-nothing, action: DENY }",
      ].join("\n"),
    );
    expect(config.authorizationPolicies).toEqual([
      {
        name: "frontend-api",
        action: "ALLOW",
        rules: [
          {
            from: [{ source: { principals: ["cluster.local/ns/shop/sa/frontend"] } }],
            to: [{ operation: { methods: ["GET"], paths: ["/api/*"], ports: [15006, 9080] } }],
            when: [{ key: "request.headers[x-tenant]", values: ["acme"] }],
          },
        ],
      },
      { name: "deny-nothing", action: "DENY", rules: [] },
    ]);
  });

  it("refuses CUSTOM and AUDIT, naming what is supported", () => {
    expect(issuesOf("  - { name: ext, action: CUSTOM }")).toEqual([
      [
        "authorizationPolicies[0].action",
        'expected "ALLOW" or "DENY" (remora does not support CUSTOM or AUDIT), got "CUSTOM"',
      ],
    ]);
    expect(issuesOf("  - { name: audit, action: AUDIT }")[0]![0]).toBe(
      "authorizationPolicies[0].action",
    );
  });

  it("requires unique, Kubernetes-style names", () => {
    expect(issuesOf("  - { name: a }\n  - { name: b }\n  - { name: a }")).toEqual([
      [
        "authorizationPolicies[2].name",
        'duplicate policy name "a" (also authorizationPolicies[0])',
      ],
    ]);
    expect(issuesOf("  - { name: Bad_Name }")[0]![0]).toBe("authorizationPolicies[0].name");
    expect(issuesOf("  - { action: DENY }")[0]).toEqual([
      "authorizationPolicies[0].name",
      "required: the policy's name",
    ]);
  });

  it("refuses JWT fields and keys with a reason", () => {
    const issues = issuesOf(
      [
        "  - name: jwt",
        "    rules:",
        "      - from: [{ source: { requestPrincipals: ['*'] } }]",
        "        when: [{ key: 'request.auth.claims[iss]', values: [x] }]",
      ].join("\n"),
    );
    expect(issues.map(([path]) => path)).toEqual([
      "authorizationPolicies[0].rules[0].from[0].source.requestPrincipals",
      "authorizationPolicies[0].rules[0].when[0].key",
    ]);
    expect(issues[0]![1]).toMatch(/JWT request authentication .* not supported/);
    expect(issues[1]![1]).toMatch(/request\.auth\.claims\[iss\] needs JWT .* not support/);
  });

  it("refuses unknown when keys, listing the supported ones", () => {
    const [[path, message]] = issuesOf(
      "  - { name: p, rules: [{ when: [{ key: destination.labels, values: [x] }] }] }",
    ) as [[string, string]];
    expect(path).toBe("authorizationPolicies[0].rules[0].when[0].key");
    expect(message).toContain('unsupported key "destination.labels"');
    expect(message).toContain("request.headers[NAME], source.ip, remote.ip");
  });

  it("checks when values by key: IPs, ports, string matches; one of values/notValues", () => {
    expect(
      issuesOf(
        [
          "  - name: p",
          "    rules:",
          "      - when:",
          "          - { key: source.ip, values: [10.0.0.0/33] }",
          "          - { key: destination.port, notValues: [http] }",
          "          - { key: source.namespace, values: [a*b] }",
          "          - { key: connection.sni }",
        ].join("\n"),
      ).map(([path]) => path),
    ).toEqual([
      "authorizationPolicies[0].rules[0].when[0].values[0]",
      "authorizationPolicies[0].rules[0].when[1].notValues[0]",
      "authorizationPolicies[0].rules[0].when[2].values[0]",
      "authorizationPolicies[0].rules[0].when[3]",
    ]);
  });

  it("checks source and operation values", () => {
    const issues = issuesOf(
      [
        "  - name: p",
        "    rules:",
        "      - from: [{ source: { ipBlocks: [10.0.0.1, 'fd00::/8', 300.1.1.1], principals: ['a*b'] } }]",
        "        to: [{ operation: { paths: [admin], ports: [0], methods: ['G T'] } }]",
      ].join("\n"),
    );
    expect(issues).toEqual([
      [
        "authorizationPolicies[0].rules[0].from[0].source.principals[0]",
        "* may only be the whole value, its first character (suffix match) or its last (prefix match)",
      ],
      [
        "authorizationPolicies[0].rules[0].from[0].source.ipBlocks[2]",
        'expected an IP address or CIDR (10.0.0.1, 10.0.0.0/8, fd00::/8), got "300.1.1.1"',
      ],
      [
        "authorizationPolicies[0].rules[0].to[0].operation.methods[0]",
        'expected an HTTP method such as GET, got "G T"',
      ],
      [
        "authorizationPolicies[0].rules[0].to[0].operation.paths[0]",
        'expected a path starting with "/" (or "*" for a suffix match), got "admin"',
      ],
      [
        "authorizationPolicies[0].rules[0].to[0].operation.ports[0]",
        "expected a port: an integer from 1 to 65535, got 0",
      ],
    ]);
  });

  it("refuses an empty source or operation and unknown keys", () => {
    const issues = issuesOf(
      [
        "  - name: p",
        "    rules:",
        "      - from: [{ source: {} }]",
        "        to: [{ operation: {} }]",
        "        selector: { matchLabels: { app: x } }",
      ].join("\n"),
    );
    expect(issues.map(([path]) => path)).toEqual([
      "authorizationPolicies[0].rules[0].from[0].source",
      "authorizationPolicies[0].rules[0].to[0].operation",
      "authorizationPolicies[0].rules[0].selector",
    ]);
    expect(issues[0]![1]).toMatch(/^empty source: set one of principals/);
    expect(issues[2]![1]).toBe("unknown key");
  });
});
