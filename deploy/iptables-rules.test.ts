import { describe, expect, it } from "vitest";
import { inboundListenerPorts, parsePortList } from "./interception.js";
import { type IptablesTools, parseIptablesArgs, runIptables } from "./iptables.js";
import {
  cidrProblem,
  cleanupPlan,
  DEFAULT_SETTINGS,
  installedRules,
  installPlan,
  interceptionRules,
} from "./iptables-rules.js";

const rulesOf = (text: string) => text.split("\n").filter((line) => line.startsWith("-A "));

describe("interceptionRules", () => {
  it("writes Istio's four chains, the proxy's exemptions and the two jumps (defaults, IPv4)", () => {
    expect(interceptionRules(DEFAULT_SETTINGS, "ipv4")).toBe(
      [
        "*nat",
        ":REMORA_INBOUND - [0:0]",
        ":REMORA_REDIRECT - [0:0]",
        ":REMORA_IN_REDIRECT - [0:0]",
        ":REMORA_OUTPUT - [0:0]",
        "-A REMORA_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
        "-A REMORA_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
        "-A REMORA_INBOUND -p tcp --dport 15090 -j RETURN",
        "-A REMORA_INBOUND -p tcp --dport 15021 -j RETURN",
        "-A REMORA_INBOUND -p tcp --dport 15000 -j RETURN",
        "-A REMORA_INBOUND -p tcp -j REMORA_IN_REDIRECT",
        "-A REMORA_OUTPUT -o lo ! -d 127.0.0.1/32 -m owner --uid-owner 1337 -j REMORA_INBOUND",
        "-A REMORA_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN",
        "-A REMORA_OUTPUT -m owner --uid-owner 1337 -j RETURN",
        "-A REMORA_OUTPUT -o lo ! -d 127.0.0.1/32 -m owner --gid-owner 1337 -j REMORA_INBOUND",
        "-A REMORA_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN",
        "-A REMORA_OUTPUT -m owner --gid-owner 1337 -j RETURN",
        "-A REMORA_OUTPUT -d 127.0.0.1/32 -j RETURN",
        "-A REMORA_OUTPUT -j REMORA_REDIRECT",
        "-A PREROUTING -p tcp -j REMORA_INBOUND",
        "-A OUTPUT -p tcp -j REMORA_OUTPUT",
        "COMMIT",
        "",
      ].join("\n"),
    );
  });

  it("redirects each listed inbound port to its own listener, the order the sidecar uses", () => {
    const text = interceptionRules({ ...DEFAULT_SETTINGS, inboundPorts: [8080, 9090] }, "ipv4");
    const inbound = rulesOf(text).filter((rule) => rule.startsWith("-A REMORA_INBOUND"));
    expect(inbound.slice(3)).toEqual([
      "-A REMORA_INBOUND -p tcp --dport 8080 -j REDIRECT --to-ports 15006",
      "-A REMORA_INBOUND -p tcp --dport 9090 -j REDIRECT --to-ports 15007",
    ]);
    // No catch-all: other ports reach the app directly.
    expect(text).not.toContain("-A REMORA_INBOUND -p tcp -j REMORA_IN_REDIRECT");
    const ports = inboundListenerPorts([8080, 9090]);
    expect([...ports]).toEqual([
      [8080, 15006],
      [9090, 15007],
    ]);
  });

  it("puts excluded inbound ports before the redirects, and keeps an excluded app port's place", () => {
    const text = interceptionRules(
      { ...DEFAULT_SETTINGS, inboundPorts: [8080, 9090], excludeInboundPorts: [8080, 7000] },
      "ipv4",
    );
    const inbound = rulesOf(text).filter((rule) => rule.startsWith("-A REMORA_INBOUND"));
    expect(inbound).toEqual([
      "-A REMORA_INBOUND -p tcp --dport 15090 -j RETURN",
      "-A REMORA_INBOUND -p tcp --dport 15021 -j RETURN",
      "-A REMORA_INBOUND -p tcp --dport 15000 -j RETURN",
      "-A REMORA_INBOUND -p tcp --dport 8080 -j RETURN",
      "-A REMORA_INBOUND -p tcp --dport 7000 -j RETURN",
      "-A REMORA_INBOUND -p tcp --dport 9090 -j REDIRECT --to-ports 15007",
    ]);
  });

  it("returns excluded outbound ports and ranges first, and captures only included ranges", () => {
    const text = interceptionRules(
      {
        ...DEFAULT_SETTINGS,
        excludeOutboundPorts: [443, 5432],
        includeOutboundIpRanges: ["198.18.0.0/15", "2001:db8::/32"],
        excludeOutboundIpRanges: ["198.18.7.0/24"],
      },
      "ipv4",
    );
    const output = rulesOf(text).filter((rule) => rule.startsWith("-A REMORA_OUTPUT"));
    expect(output.slice(0, 3)).toEqual([
      "-A REMORA_OUTPUT -p tcp --dport 443 -j RETURN",
      "-A REMORA_OUTPUT -p tcp --dport 5432 -j RETURN",
      "-A REMORA_OUTPUT -d 198.18.7.0/24 -j RETURN",
    ]);
    expect(output.at(-1)).toBe("-A REMORA_OUTPUT -d 198.18.0.0/15 -j REMORA_REDIRECT");
    expect(text).not.toContain("2001:db8");
    expect(text).not.toContain("-A REMORA_OUTPUT -j REMORA_REDIRECT");
  });

  it("writes IPv6 rules with ::1 and only IPv6 ranges", () => {
    const text = interceptionRules(
      {
        ...DEFAULT_SETTINGS,
        proxyUid: 2000,
        proxyGid: 3000,
        includeOutboundIpRanges: ["198.18.0.0/15", "2001:db8::/32"],
      },
      "ipv6",
    );
    expect(text).toContain("-A REMORA_OUTPUT -d ::1/128 -j RETURN");
    expect(text).toContain("-m owner --uid-owner 2000 -j RETURN");
    expect(text).toContain("-m owner --gid-owner 3000 -j RETURN");
    expect(text).toContain("-A REMORA_OUTPUT -d 2001:db8::/32 -j REMORA_REDIRECT");
    expect(text).not.toContain("127.0.0.1");
    expect(text).not.toContain("198.18");
  });
});

const SAVED_WITH_RULES = `# Generated by iptables-save v1.8.9 (nf_tables)
*filter
:INPUT ACCEPT [0:0]
-A INPUT -j REMORA_NOT_NAT
COMMIT
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:REMORA_INBOUND - [0:0]
:REMORA_OUTPUT - [0:0]
:OTHER - [0:0]
-A PREROUTING -p tcp -j REMORA_INBOUND
-A PREROUTING -p tcp -j OTHER
-A OUTPUT -p tcp -j REMORA_OUTPUT
-A REMORA_INBOUND -p tcp -j RETURN
COMMIT
`;

describe("installed rules, install and cleanup plans", () => {
  it("finds remora's chains and the built-in chains' jumps to them, in the nat table only", () => {
    expect(installedRules(SAVED_WITH_RULES)).toEqual({
      chains: ["REMORA_INBOUND", "REMORA_OUTPUT"],
      jumps: ["-A PREROUTING -p tcp -j REMORA_INBOUND", "-A OUTPUT -p tcp -j REMORA_OUTPUT"],
    });
  });

  it("an install over existing rules deletes the old jumps before adding them again", () => {
    const plan = installPlan(SAVED_WITH_RULES, DEFAULT_SETTINGS, "ipv4").split("\n");
    const at = (line: string) => plan.indexOf(line);
    expect(at("-D PREROUTING -p tcp -j REMORA_INBOUND")).toBeGreaterThan(0);
    expect(at("-D OUTPUT -p tcp -j REMORA_OUTPUT")).toBeGreaterThan(0);
    expect(at("-D OUTPUT -p tcp -j REMORA_OUTPUT")).toBeLessThan(
      at("-A PREROUTING -p tcp -j REMORA_INBOUND"),
    );
    expect(plan.filter((line) => line === "-A PREROUTING -p tcp -j REMORA_INBOUND")).toHaveLength(
      1,
    );
    expect(plan).not.toContain("-D PREROUTING -p tcp -j OTHER");
    // On an empty table the plan is the rules themselves.
    expect(installPlan("", DEFAULT_SETTINGS, "ipv4")).toBe(
      interceptionRules(DEFAULT_SETTINGS, "ipv4"),
    );
  });

  it("cleanup flushes, unhooks and deletes remora's chains; nothing to do on a clean table", () => {
    expect(cleanupPlan(SAVED_WITH_RULES)).toBe(
      [
        "*nat",
        ":REMORA_INBOUND - [0:0]",
        ":REMORA_OUTPUT - [0:0]",
        "-D PREROUTING -p tcp -j REMORA_INBOUND",
        "-D OUTPUT -p tcp -j REMORA_OUTPUT",
        "-X REMORA_INBOUND",
        "-X REMORA_OUTPUT",
        "COMMIT",
        "",
      ].join("\n"),
    );
    expect(cleanupPlan("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n")).toBe("");
  });
});

describe("flags", () => {
  it("parses lists and defaults", () => {
    const parsed = parseIptablesArgs([
      "--inbound-ports",
      "8080, 9090",
      "--exclude-outbound-ports",
      "443",
      "--include-outbound-ip-ranges",
      "198.18.0.0/15",
      "--proxy-uid",
      "2000",
    ]);
    expect(parsed.action).toBe("install");
    expect(parsed.ipv6).toBe("auto");
    expect(parsed.settings).toMatchObject({
      proxyUid: 2000,
      proxyGid: 1337,
      inboundPorts: [8080, 9090],
      excludeOutboundPorts: [443],
      includeOutboundIpRanges: ["198.18.0.0/15"],
    });
    expect(parseIptablesArgs(["--dry-run"]).settings.inboundPorts).toBe("*");
  });

  it("names the flag and the bad value", () => {
    expect(() => parseIptablesArgs(["--inbound-ports", "80,http"])).toThrow(
      '--inbound-ports: expected ports 1-65535 separated by commas, got "http"',
    );
    expect(() => parseIptablesArgs(["--include-outbound-ip-ranges", "198.18.0.0/40"])).toThrow(
      '--include-outbound-ip-ranges: "198.18.0.0/40": the prefix length must be 0-32',
    );
    expect(() => parseIptablesArgs(["--ipv6", "maybe"])).toThrow("--ipv6: expected auto");
    expect(() => parseIptablesArgs(["--dry-run", "--cleanup"])).toThrow("cannot be combined");
    expect(() => parsePortList("0", "X")).toThrow(
      'X: expected ports 1-65535 separated by commas, got "0"',
    );
    expect(cidrProblem("2001:db8::/64")).toBeUndefined();
    expect(cidrProblem("hello")).toBe('"hello" is not an IP address or CIDR');
  });
});

describe("runIptables", () => {
  /** Tools that keep each family's restore input, with an installed state to save. */
  function fakeTools(ipv6: boolean, saved = "") {
    const restored: [string, string][] = [];
    const tools: IptablesTools = {
      save: async () => saved,
      restore: async (family, input) => {
        restored.push([family, input]);
      },
      available: (family) => family === "ipv4" || ipv6,
    };
    return { tools, restored };
  }

  it("installs both families when IPv6 is there, IPv4 only (with a note) when it is not", async () => {
    const both = fakeTools(true);
    await runIptables(parseIptablesArgs([]), both.tools);
    expect(both.restored.map(([family]) => family)).toEqual(["ipv4", "ipv6"]);
    expect(both.restored[1]![1]).toContain("::1/128");
    const v4 = fakeTools(false);
    expect(await runIptables(parseIptablesArgs([]), v4.tools)).toContain("IPv6:");
    expect(v4.restored.map(([family]) => family)).toEqual(["ipv4"]);
    await expect(runIptables(parseIptablesArgs(["--ipv6", "true"]), v4.tools)).rejects.toThrow(
      "--ipv6 true",
    );
  });

  it("cleanup restores only when there is something to remove; dry-run touches nothing", async () => {
    const clean = fakeTools(false);
    expect(await runIptables(parseIptablesArgs(["--cleanup"]), clean.tools)).toContain(
      "no remora rules",
    );
    expect(clean.restored).toEqual([]);
    const dirty = fakeTools(false, SAVED_WITH_RULES);
    await runIptables(parseIptablesArgs(["--cleanup"]), dirty.tools);
    expect(dirty.restored[0]![1]).toBe(cleanupPlan(SAVED_WITH_RULES));
    const dry = fakeTools(true);
    const text = await runIptables(parseIptablesArgs(["--dry-run"]), dry.tools);
    expect(dry.restored).toEqual([]);
    expect(text).toContain("# IPv6 (ip6tables-restore)\n*nat");
  });
});
