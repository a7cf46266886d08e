import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { isIPv4, isIPv6, type LookupFunction } from "node:net";
import { Cluster, type ClusterSettings } from "../cluster.js";
import { formatAddress, parseAddress } from "../config/address.js";
import type { ErrorCode } from "../errors.js";
import { PASSTHROUGH_CLUSTER } from "./outside-mesh.js";

/*
 * Istio's outboundTrafficPolicy for an outbound request whose Host is no mesh service (the
 * router found nothing). iptables capture sends every outbound TCP connection of the app here,
 * and Node.js cannot read the connection's original destination (SO_ORIGINAL_DST), so the
 * request's Host is the only destination there is:
 *
 * - ALLOW_ANY: the request goes to the host it names — an IP:port as is, a name through DNS, port
 *   80 when the Host has none — on one cluster per destination, all keyed `PassthroughCluster` so
 *   access logs and metrics show it as Istio does. Never to loopback (127.0.0.0/8, ::1,
 *   `localhost`, 0.0.0.0) nor to any of the proxy's own ports, whatever the host: the sidecar
 *   must not become a way into its admin API or a loop into itself (502 NR, a clear body). A
 *   name that resolves to loopback fails its connect (502 UF, the reason in the debug log).
 * - REGISTRY_ONLY: 502 NR, recorded as `BlackHoleCluster` (Istio's name).
 *
 * Nothing here runs for a request the router routes; a passthrough destination is built once
 * and reused (a bounded cache).
 */

export type OutboundMode = "ALLOW_ANY" | "REGISTRY_ONLY";

export interface PassthroughOptions {
  readonly mode: OutboundMode;
  /** Every passthrough destination's settings (timeouts, pool); retries are turned off. */
  readonly settings: ClusterSettings;
  /** The proxy's own bound ports now (listeners, admin, probes, metrics). */
  readonly ownPorts: () => ReadonlySet<number>;
  /** Destinations kept at once; the oldest is closed beyond it. Default 1024. */
  readonly limit?: number;
}

/** Why an authority cannot be passed through, or undefined when it can. */
type Verdict = Cluster | ErrorCode;

export class OutboundPassthrough {
  readonly mode: OutboundMode;
  readonly #settings: ClusterSettings;
  readonly #ownPorts: () => ReadonlySet<number>;
  readonly #limit: number;
  /** Authority as received → its destination or the reason it has none. */
  readonly #known = new Map<string, Verdict>();

  constructor(options: PassthroughOptions) {
    this.mode = options.mode;
    const settings = options.settings;
    this.#settings = {
      ...settings,
      // One endpoint per destination, chosen by the client: nothing else to retry on.
      retry: { ...settings.retry, attempts: 0 },
      pool: { ...settings.pool, lookup: refuseLoopbackLookup },
    };
    this.#ownPorts = options.ownPorts;
    this.#limit = options.limit ?? 1024;
  }

  /** The passthrough destination for an authority no service claims, or undefined (see `unrouted`). */
  route(authority: string): Cluster | undefined {
    if (this.mode === "REGISTRY_ONLY") return undefined;
    const verdict = this.#verdict(authority);
    return typeof verdict === "string" ? undefined : verdict;
  }

  /** The error for an authority `route` gave no cluster. */
  unrouted(authority: string): ErrorCode {
    if (this.mode === "REGISTRY_ONLY") return "REMORA_ERR_REGISTRY_ONLY";
    const verdict = this.#verdict(authority);
    return typeof verdict === "string" ? verdict : "REMORA_ERR_NO_ROUTE";
  }

  /** Destinations currently kept (admin, tests). */
  get size(): number {
    return this.#known.size;
  }

  close(): void {
    for (const verdict of this.#known.values()) if (typeof verdict !== "string") verdict.close();
    this.#known.clear();
  }

  #verdict(authority: string): Verdict {
    const known = this.#known.get(authority);
    if (known !== undefined) return known;
    const verdict = this.#judge(authority);
    if (this.#known.size >= this.#limit) {
      const [oldest, evicted] = this.#known.entries().next().value!;
      this.#known.delete(oldest);
      if (typeof evicted !== "string") evicted.close();
    }
    this.#known.set(authority, verdict);
    return verdict;
  }

  #judge(authority: string): Verdict {
    const destination = passthroughDestination(authority);
    if (destination === undefined) return "REMORA_ERR_NO_ROUTE";
    const { host, port } = destination;
    if (isLoopbackHost(host) || this.#ownPorts().has(port)) return "REMORA_ERR_PASSTHROUGH_REFUSED";
    const cluster = new Cluster(
      PASSTHROUGH_CLUSTER,
      "passthrough",
      this.#settings,
      PASSTHROUGH_CLUSTER,
    );
    const id = formatAddress(host, port);
    cluster.update({
      key: PASSTHROUGH_CLUSTER,
      name: PASSTHROUGH_CLUSTER,
      namespace: "passthrough",
      version: 1,
      endpoints: [{ id, host, port, weight: 1, labels: {}, ready: true }],
    });
    return cluster;
  }
}

/** `host[:port]` → host and port (80 when absent), or undefined when it is no usable authority. */
export function passthroughDestination(
  authority: string,
): { host: string; port: number } | undefined {
  if (authority === "") return undefined;
  let text = authority.endsWith(".") ? authority.slice(0, -1) : authority;
  const bracketed = text.startsWith("[");
  const hasPort = bracketed ? /\]:\d*$/.test(text) : text.includes(":");
  if (!hasPort) text = `${text}:80`;
  try {
    const { host, port } = parseAddress(text);
    if (host.endsWith(".")) return undefined;
    return port === 0 ? undefined : { host, port };
  } catch {
    return undefined;
  }
}

/** Loopback and "this host" addresses and names (RFC 6761 reserves `localhost` and below). */
export function isLoopbackHost(host: string): boolean {
  const name = host.toLowerCase();
  if (name === "localhost" || name.endsWith(".localhost")) return true;
  return isLoopbackAddress(name);
}

function isLoopbackAddress(address: string): boolean {
  if (isIPv4(address)) return address.startsWith("127.") || address.startsWith("0.");
  if (!isIPv6(address)) return false;
  const lower = address.toLowerCase();
  if (lower === "::1" || lower === "::" || /^0*(:0*)*:0*1$/.test(lower) || /^[0:]+$/.test(lower)) {
    return true;
  }
  // IPv4-mapped (::ffff:127.0.0.1)
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  return mapped !== null && isLoopbackAddress(mapped[1]!);
}

/** A passthrough connect's DNS lookup: a name that resolves to loopback fails the connect. */
export const refuseLoopbackLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, options, (error, address, family) => {
    if (error !== null) {
      callback(error, address as string, family);
      return;
    }
    const list: LookupAddress[] = Array.isArray(address)
      ? address
      : [{ address: address as string, family: family ?? 4 }];
    const loopback = list.find((entry) => isLoopbackAddress(entry.address));
    if (loopback === undefined) {
      (callback as (e: null, a: unknown, f?: number) => void)(null, address, family);
      return;
    }
    const refused = Object.assign(
      new Error(`passthrough refused: ${hostname} resolves to loopback ${loopback.address}`),
      { code: "REMORA_ERR_PASSTHROUGH_REFUSED" },
    );
    callback(refused, "", 0);
  });
};
