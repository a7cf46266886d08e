/**
 * The nat-table rules of `remora iptables`, as iptables-restore text: pure functions of the
 * settings (and of `iptables-save` output, for idempotent installs and cleanups), so every rule is
 * unit-tested as text. deploy/iptables.ts runs them. Istio's istio-iptables installs the same
 * shape of chains; the differences are remora's (see `inboundRules` and docs/deploy.md).
 *
 * Traffic, in the order the kernel sees it:
 * - inbound: PREROUTING → REMORA_INBOUND: excluded ports RETURN (go straight to the app); each
 *   captured app port is redirected to its own inbound listener (interception.ts), or with
 *   `inboundPorts: "*"` every other port to REMORA_IN_REDIRECT (15006).
 * - outbound: OUTPUT → REMORA_OUTPUT: excluded ports and ranges RETURN; the proxy's own traffic
 *   (its UID or GID) RETURNs, so its upstream connections are never captured again (no loop);
 *   loopback traffic of the app RETURNs; what remains goes to REMORA_REDIRECT (15001), for every
 *   destination or only `includeOutboundIpRanges`.
 * - the proxy calling its own pod's address (over lo, not to 127.0.0.1) goes through
 *   REMORA_INBOUND, as Istio's hairpin rule sends it to the inbound listener: a request to this
 *   pod through the mesh gets the inbound side's policy too.
 */
import { isIP } from "node:net";
import { ALWAYS_EXCLUDED_INBOUND, inboundListenerPorts, PORTS } from "./interception.js";

export type IpFamily = "ipv4" | "ipv6";

export interface InterceptionSettings {
  /** The proxy's user and group (`--proxy-uid`, `--proxy-gid`): their traffic is not captured. */
  readonly proxyUid: number;
  readonly proxyGid: number;
  /** Where outbound TCP is redirected (the outbound listener). */
  readonly outboundPort: number;
  /**
   * Inbound ports to capture, in the order the sidecar's app ports are listed (each goes to its
   * own listener), or "*": every inbound TCP port not excluded, to 15006.
   */
  readonly inboundPorts: "*" | readonly number[];
  /** Added to 15090, 15021 and 15000. */
  readonly excludeInboundPorts: readonly number[];
  readonly excludeOutboundPorts: readonly number[];
  /** CIDRs whose outbound TCP is captured, or "*" for every destination. */
  readonly includeOutboundIpRanges: "*" | readonly string[];
  /** CIDRs never captured (checked before the included ones). */
  readonly excludeOutboundIpRanges: readonly string[];
}

export const DEFAULT_SETTINGS: InterceptionSettings = {
  proxyUid: 1337,
  proxyGid: 1337,
  outboundPort: PORTS.outbound,
  inboundPorts: "*",
  excludeInboundPorts: [],
  excludeOutboundPorts: [],
  includeOutboundIpRanges: "*",
  excludeOutboundIpRanges: [],
};

/** The four chains, in Istio's names with remora's prefix. */
export const CHAINS = ["REMORA_INBOUND", "REMORA_REDIRECT", "REMORA_IN_REDIRECT", "REMORA_OUTPUT"];

/** `ADDRESS/PREFIX` (or a bare address) of either family; the reason it is not one, or undefined. */
export function cidrProblem(text: string): string | undefined {
  const slash = text.indexOf("/");
  const address = slash < 0 ? text : text.slice(0, slash);
  const family = isIP(address);
  if (family === 0) return `"${text}" is not an IP address or CIDR`;
  if (slash < 0) return undefined;
  const prefix = text.slice(slash + 1);
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max) {
    return `"${text}": the prefix length must be 0-${max}`;
  }
  return undefined;
}

function familyOf(cidr: string): IpFamily {
  return cidr.includes(":") ? "ipv6" : "ipv4";
}

/**
 * The rules for one address family, as iptables-restore input for `--noflush`: declaring a chain
 * creates it or flushes it, so applying the same text twice leaves one copy of every rule — except
 * the jumps from PREROUTING and OUTPUT, which `installPlan` removes first.
 */
export function interceptionRules(settings: InterceptionSettings, family: IpFamily): string {
  const loopback = family === "ipv4" ? "127.0.0.1/32" : "::1/128";
  const uid = settings.proxyUid;
  const gid = settings.proxyGid;
  const lines = ["*nat", ...CHAINS.map((chain) => `:${chain} - [0:0]`)];
  lines.push(`-A REMORA_REDIRECT -p tcp -j REDIRECT --to-ports ${settings.outboundPort}`);
  lines.push(`-A REMORA_IN_REDIRECT -p tcp -j REDIRECT --to-ports ${PORTS.inbound}`);
  lines.push(...inboundRules(settings));

  const out = (rule: string) => lines.push(`-A REMORA_OUTPUT ${rule}`);
  for (const port of settings.excludeOutboundPorts) out(`-p tcp --dport ${port} -j RETURN`);
  for (const cidr of settings.excludeOutboundIpRanges) {
    if (familyOf(cidr) === family) out(`-d ${cidr} -j RETURN`);
  }
  // The proxy's own traffic: to its pod's address through the inbound side (hairpin), anything
  // else left alone. Then the app's loopback traffic is left alone too (Istio's order).
  out(`-o lo ! -d ${loopback} -m owner --uid-owner ${uid} -j REMORA_INBOUND`);
  out(`-o lo -m owner ! --uid-owner ${uid} -j RETURN`);
  out(`-m owner --uid-owner ${uid} -j RETURN`);
  out(`-o lo ! -d ${loopback} -m owner --gid-owner ${gid} -j REMORA_INBOUND`);
  out(`-o lo -m owner ! --gid-owner ${gid} -j RETURN`);
  out(`-m owner --gid-owner ${gid} -j RETURN`);
  out(`-d ${loopback} -j RETURN`);
  if (settings.includeOutboundIpRanges === "*") out("-j REMORA_REDIRECT");
  else {
    for (const cidr of settings.includeOutboundIpRanges) {
      if (familyOf(cidr) === family) out(`-d ${cidr} -j REMORA_REDIRECT`);
    }
  }

  lines.push(...JUMPS, "COMMIT", "");
  return lines.join("\n");
}

/** The jumps from the built-in chains: the only rules outside remora's own chains. */
const JUMPS = ["-A PREROUTING -p tcp -j REMORA_INBOUND", "-A OUTPUT -p tcp -j REMORA_OUTPUT"];

/** REMORA_INBOUND: excluded ports first, then one redirect per captured port (or the catch-all). */
function inboundRules(settings: InterceptionSettings): string[] {
  const rules: string[] = [];
  const excluded = [...new Set([...ALWAYS_EXCLUDED_INBOUND, ...settings.excludeInboundPorts])];
  for (const port of excluded) rules.push(`-A REMORA_INBOUND -p tcp --dport ${port} -j RETURN`);
  if (settings.inboundPorts === "*") {
    rules.push("-A REMORA_INBOUND -p tcp -j REMORA_IN_REDIRECT");
    return rules;
  }
  // The same function and list the sidecar uses for its listeners (interception.ts); a port that
  // is also excluded keeps its place in the mapping but its RETURN above comes first.
  for (const [app, listener] of inboundListenerPorts(settings.inboundPorts)) {
    if (excluded.includes(app)) continue;
    rules.push(`-A REMORA_INBOUND -p tcp --dport ${app} -j REDIRECT --to-ports ${listener}`);
  }
  return rules;
}

/** What `iptables-save -t nat` shows of remora: its chains and the jumps into them. */
export interface InstalledRules {
  readonly chains: string[];
  /** `-A CHAIN ...` lines of built-in chains that jump to a remora chain, as saved. */
  readonly jumps: string[];
}

/** Reads remora's chains and jumps from `iptables-save` output (other tables are ignored). */
export function installedRules(saved: string): InstalledRules {
  const chains: string[] = [];
  const jumps: string[] = [];
  let nat = false;
  for (const raw of saved.split("\n")) {
    const line = raw.trim();
    if (line.startsWith("*")) nat = line === "*nat";
    if (!nat) continue;
    const chain = /^:(REMORA_[A-Z0-9_]+)\s/.exec(line);
    if (chain !== null) chains.push(chain[1]!);
    else if (/^-A (PREROUTING|INPUT|OUTPUT|POSTROUTING) .*-j REMORA_[A-Z0-9_]+(\s|$)/.test(line)) {
      jumps.push(line);
    }
  }
  return { chains, jumps };
}

/**
 * One iptables-restore transaction (`--noflush`) that installs the rules whatever is there now:
 * remora's chains are flushed by their declarations, old jumps into them deleted, then everything
 * added. Running it on a namespace that has the rules already gives the same rules, once.
 */
export function installPlan(saved: string, settings: InterceptionSettings, family: IpFamily) {
  const deletes = installedRules(saved).jumps.map((jump) => `-D${jump.slice(2)}`);
  const rules = interceptionRules(settings, family).split("\n");
  const firstJump = rules.indexOf(JUMPS[0]!);
  rules.splice(firstJump, 0, ...deletes);
  return rules.join("\n");
}

/**
 * The transaction that removes remora's chains and jumps, or "" when there is nothing to remove.
 * Chains are declared (flushed) before the jumps go, and deleted last, once nothing refers to them.
 */
export function cleanupPlan(saved: string): string {
  const { chains, jumps } = installedRules(saved);
  if (chains.length === 0 && jumps.length === 0) return "";
  return [
    "*nat",
    ...chains.map((chain) => `:${chain} - [0:0]`),
    ...jumps.map((jump) => `-D${jump.slice(2)}`),
    ...chains.map((chain) => `-X ${chain}`),
    "COMMIT",
    "",
  ].join("\n");
}
