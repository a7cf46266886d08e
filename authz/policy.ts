/**
 * Authorization policy (Istio's AuthorizationPolicy): what the data path calls, and the config
 * shape it is compiled from. Istio's evaluation (security/authorization-policy reference):
 *
 *   1. any DENY policy that matches denies the request;
 *   2. with no ALLOW policy at all, the request is allowed;
 *   3. an ALLOW policy that matches allows it;
 *   4. otherwise it is denied.
 *
 * A policy matches when one of its rules does; a policy without rules matches nothing (so an
 * ALLOW policy without rules denies everything, Istio's `spec: {}`, and `rules: [{}]` allows
 * everything). A rule matches when its `from`, `to` and `when` all do (an absent one matches);
 * `from` and `to` match when one of their entries does; a source or operation matches when every
 * field it sets matches (a value list matches when one value does; a `notX` list when none does);
 * every `when` condition must match.
 *
 * Policies are compiled once per config (authz/compile.ts); `authorize` runs once per request on
 * inbound listeners and only when policies exist. It must not allocate.
 */

/** Istio's actions remora enforces (CUSTOM and AUDIT are refused by the config schema). */
export type PolicyAction = "ALLOW" | "DENY";

/** `rules[].from[].source`: who sends the request. Absent fields match anything. */
export interface SourceConfig {
  /** Peer identities, `cluster.local/ns/x/sa/y` (a `spiffe://` prefix is accepted and ignored). */
  readonly principals?: readonly string[];
  readonly notPrincipals?: readonly string[];
  /** The namespace segment of the peer's identity. */
  readonly namespaces?: readonly string[];
  readonly notNamespaces?: readonly string[];
  /** The connection's peer address: single IPs or CIDRs, IPv4 or IPv6. */
  readonly ipBlocks?: readonly string[];
  readonly notIpBlocks?: readonly string[];
  /** The original client address; remora trusts no X-Forwarded-For, so the peer address too. */
  readonly remoteIpBlocks?: readonly string[];
  readonly notRemoteIpBlocks?: readonly string[];
}

/** `rules[].to[].operation`: what the request does. Absent fields match anything. */
export interface OperationConfig {
  /** The Host/authority, case-insensitive, with or without its port. */
  readonly hosts?: readonly string[];
  readonly notHosts?: readonly string[];
  /** Exact, case-sensitive method names. */
  readonly methods?: readonly string[];
  readonly notMethods?: readonly string[];
  /** The path before `?`, after normalisation (authz/path.ts): exact, `prefix*`, `*suffix`, `*`. */
  readonly paths?: readonly string[];
  readonly notPaths?: readonly string[];
  /** The listener's port (destination.port). */
  readonly ports?: readonly number[];
  readonly notPorts?: readonly number[];
}

/** `rules[].when[]`: one condition on a request attribute (authz/conditions.ts lists the keys). */
export interface ConditionConfig {
  readonly key: string;
  readonly values?: readonly string[];
  readonly notValues?: readonly string[];
}

export interface RuleConfig {
  readonly from?: readonly { readonly source: SourceConfig }[];
  readonly to?: readonly { readonly operation: OperationConfig }[];
  readonly when?: readonly ConditionConfig[];
}

export interface AuthorizationPolicyConfig {
  readonly name: string;
  readonly action: PolicyAction;
  /** Absent or empty: the policy matches nothing. */
  readonly rules?: readonly RuleConfig[];
}

/**
 * What the data path knows about one request. The session keeps one object per connection and
 * refills the per-request fields in place; the connection's fields are set once.
 */
export interface RequestFacts {
  // --- per connection ---
  /** The verified peer's identity without `spiffe://`; "" on a plaintext connection. */
  principal: string;
  /** The namespace segment of `principal`; "" when there is none. */
  namespace: string;
  /** The peer's address (IPv4-mapped IPv6 written as IPv4). */
  sourceIp: string;
  /** The local address the connection arrived on. */
  destinationIp: string;
  /** The listener's port. */
  destinationPort: number;
  /** The TLS server name the client sent; "" when none or plaintext. */
  sni: string;
  // --- per request ---
  method: string;
  /** The Host/authority as sent. */
  host: string;
  /** The normalised path without the query (authz/path.ts). */
  path: string;
  /** Request header fields, flat `[name, value, ...]` as the codec keeps them. */
  headers: readonly string[];
}

/** A fresh facts object for one connection; the per-request fields start empty. */
export function connectionFacts(
  principal: string,
  namespace: string,
  sourceIp: string,
  destinationIp: string,
  destinationPort: number,
  sni: string,
): RequestFacts {
  return {
    principal,
    namespace,
    sourceIp: unmapIPv4(sourceIp),
    destinationIp: unmapIPv4(destinationIp),
    destinationPort,
    sni,
    method: "",
    host: "",
    path: "",
    headers: NO_HEADERS,
  };
}

const NO_HEADERS: readonly string[] = Object.freeze([]);

/** `::ffff:10.0.0.1` (a dual-stack socket's IPv4 peer) → `10.0.0.1`, so IPv4 blocks match it. */
export function unmapIPv4(address: string): string {
  return address.length > 7 && address.startsWith("::ffff:") && address.includes(".")
    ? address.slice(7)
    : address;
}

/**
 * The denial's "policy" when ALLOW policies exist and none matched. Not a valid policy name (names
 * are DNS-1123 subdomains), so a metric label or log line cannot be mistaken for one.
 */
export const NO_ALLOW_MATCHED = "(no ALLOW policy matched)";

/** Compiled policies: the one call the data path makes. */
export interface Authorizer {
  /**
   * `undefined` when the request is allowed; otherwise the name of the DENY policy that matched,
   * or NO_ALLOW_MATCHED. Pure: reads `facts`; allocates only where a policy asks for it (a
   * lower-cased Host for `hosts`, a repeated header's joined value for `request.headers[...]`).
   */
  authorize(facts: RequestFacts): string | undefined;
  /** Policy names in config order (admin, logs). */
  readonly names: readonly string[];
}

/**
 * The policies in effect, swapped whole by a config reload. Listeners hold the slot, sessions read
 * `current` per request, so a new config decides the next request without a restart; a request
 * already decided keeps its verdict. `undefined` when no policies are configured.
 */
export interface PolicySlot {
  current: Authorizer | undefined;
}

/** Decisions on one listener, read by metrics at scrape time (plain fields: hot path). */
export class AuthorizationTally {
  allowed = 0;
  /** Denials by policy name (NO_ALLOW_MATCHED for the default deny). */
  readonly denied = new Map<string, number>();

  deny(policy: string): void {
    this.denied.set(policy, (this.denied.get(policy) ?? 0) + 1);
  }
}
