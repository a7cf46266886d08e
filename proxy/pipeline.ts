import { normalizeTarget, pathOf } from "../authz/path.js";
import type { Authorizer, RequestFacts } from "../authz/policy.js";
import type { Cluster } from "./cluster.js";
import type { ErrorCode } from "./errors.js";
import type { HostSet } from "./host-set.js";
import type { RequestHead } from "./http/head.js";
import type { SessionContext } from "./http-session.js";

/**
 * What happens to a request, in order. The first steps run here, synchronously, once the
 * head is parsed; the rest run in the session as the exchange proceeds.
 *
 *   1. target   — authority and path from the request target (RFC 9112 §3.2)
 *   2. route    — authority → cluster (outbound: by service name, else outboundTrafficPolicy:
 *                 passthrough to the host or 502 NR, proxy/routing/passthrough.ts; inbound: the
 *                 local app), then
 *                 the cluster's VirtualService routes (first match wins; weighted split) → the
 *                 host set: the whole service or one subset (Cluster#hostsFor, proxy/routing/)
 *      While the heap is past `overload.maxHeapMb`, every request stops here with 503 `OM` (one
 *      branch on a boolean overload/ flips every second, in HttpSession#startExchange)
 *   3. authorize — inbound listeners with `authorizationPolicies`: Istio's AuthorizationPolicy
 *                 over the peer's identity (the mTLS client certificate), addresses, port, method,
 *                 host, normalised path and headers (authorizeRequest, authz/); a denial is a
 *                 403 `RBAC: access denied` and never reaches the app. Without policies (and on
 *                 outbound listeners) this step is one branch in HttpSession#startExchange
 *   4. balance  — the host set's balancer picks an endpoint, or queues the request for a slot
 *                 (first-come) (HttpSession#startExchange → HostSet#acquire, lb/)
 *   5. timeout  — the request's timer starts (HttpSession#startExchange); `perTryTimeout` per
 *                 attempt (HttpSession#useEndpoint)
 *   6. forward  — an upstream connection from the endpoint's pool (HttpSession#acquire; the
 *                 pending-request limit, http1MaxPendingRequests). Each attempt ends with one
 *                 report to the balancer and the endpoint's health (HttpSession#endAttempt →
 *                 health/). A failed attempt, or a retriable response (a 503), may be retried on
 *                 another endpoint: the retry policy, the request's safety and the retry budget
 *                 decide (HttpSession#mayRetry, health/retry-policy.ts); the body is re-sent from
 *                 the copy proxy/attempts.ts keeps. A request that dies on a reused connection
 *                 before any response byte goes once more on a fresh one
 *                 (HttpSession#onUpstreamClose)
 */
export interface RouteResult {
  authority: string;
  /** Path for the upstream request line (origin-form, or "*"). */
  path: string;
  /** The client used absolute-form: Host must be regenerated from the target. */
  rewriteHost: boolean;
  cluster: Cluster | undefined;
  /** The endpoints the request may go to (the whole service or a subset). */
  hosts: HostSet | undefined;
  error: ErrorCode | undefined;
}

export function newRouteResult(): RouteResult {
  return {
    authority: "",
    path: "",
    rewriteHost: false,
    cluster: undefined,
    hosts: undefined,
    error: undefined,
  };
}

/** Steps 1–2 for one request; `out` is reused per connection. */
export function routeRequest(head: RequestHead, ctx: SessionContext, out: RouteResult): void {
  out.error = undefined;
  out.rewriteHost = false;
  if (!splitTarget(head, out)) return;
  const cluster = ctx.route(out.authority);
  if (cluster === undefined) {
    // ExternalName services and the outboundTrafficPolicy decide (404 or 502 NR).
    const unrouted = ctx.unrouted;
    out.error = unrouted === undefined ? "REMORA_ERR_NO_ROUTE" : unrouted(out.authority);
    return;
  }
  const hosts = cluster.hostsFor(head.method, out.path, head.headers);
  if (hosts === undefined) {
    out.error = "REMORA_ERR_NO_ROUTE_MATCH";
    return;
  }
  out.cluster = cluster;
  out.hosts = hosts;
}

/**
 * Step 3 for one request on a listener with policies. The path is normalised first (authz/path.ts)
 * and forwarded as judged; `facts` is the connection's, refilled per request. A denial sets
 * `out.error` (the caller answers it like any local reply); both outcomes are counted.
 */
export function authorizeRequest(
  head: RequestHead,
  authorizer: Authorizer,
  facts: RequestFacts,
  ctx: SessionContext,
  out: RouteResult,
): void {
  const target = normalizeTarget(out.path);
  out.path = target;
  facts.method = head.method;
  facts.host = out.authority;
  facts.path = pathOf(target);
  facts.headers = head.headers;
  const denied = authorizer.authorize(facts);
  const tally = ctx.authorization!;
  if (denied === undefined) tally.allowed++;
  else {
    tally.deny(denied);
    out.error = "REMORA_ERR_RBAC_DENIED";
  }
}

/** Sets authority and path; false (with `error`) for targets this proxy does not forward. */
function splitTarget(head: RequestHead, out: RouteResult): boolean {
  const target = head.target;
  out.authority = head.host ?? "";
  out.path = target;
  const first = target.charCodeAt(0);
  if (first === 47 /* / */) return true;
  if (head.method === "CONNECT") {
    out.error = "REMORA_ERR_METHOD";
    return false;
  }
  if (target === "*" && head.method === "OPTIONS") return true;
  const scheme = schemeLength(target);
  if (scheme === 0) {
    out.error = "REMORA_ERR_BAD_REQUEST";
    return false;
  }
  let end = scheme;
  while (end < target.length) {
    const c = target.charCodeAt(end);
    if (c === 47 || c === 63 /* ? */ || c === 35 /* # */) break;
    end++;
  }
  const authority = target.slice(scheme, end);
  // Userinfo in a target is deprecated (RFC 9110 §4.2.4) and a classic confusion vector.
  if (authority === "" || authority.includes("@")) {
    out.error = "REMORA_ERR_BAD_REQUEST";
    return false;
  }
  out.authority = authority;
  out.rewriteHost = true;
  out.path =
    end === target.length
      ? "/"
      : target.charCodeAt(end) === 47
        ? target.slice(end)
        : `/${target.slice(end)}`;
  return true;
}

/** Length of "http://" or "https://" (any case) at the start of an absolute-form target, or 0. */
function schemeLength(target: string): number {
  const lower = target.slice(0, 8).toLowerCase();
  if (lower.startsWith("http://")) return 7;
  if (lower.startsWith("https://")) return 8;
  return 0;
}
