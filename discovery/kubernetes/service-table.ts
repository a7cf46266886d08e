import { isIPv6 } from "node:net";
import { formatAddress } from "../../proxy/config/address.js";
import type { Endpoint } from "../endpoint.js";
import { type ServiceEndpoints, serviceKey } from "../update.js";
import {
  type EndpointSlice,
  SERVICE_NAME_LABEL,
  type Service,
  type ServicePort,
  type SliceEndpoint,
} from "./wire.js";

/** Endpoint labels taken from the slice, for balancers (subsets, zones), `/clusters` and logs. */
export const ZONE_LABEL = "topology.kubernetes.io/zone";
export const NODE_LABEL = "kubernetes.io/hostname";
export const POD_LABEL = "pod";

/**
 * The registry name of one port of a Service: `NAME:PORT`. A Service's ports are separate
 * clusters (Envoy's `outbound|PORT||NAME...`), since each port has its own endpoints; `:` never
 * appears in a Kubernetes name, so these never collide with configured services.
 */
export function portServiceName(name: string, port: number): string {
  return `${name}:${port}`;
}

export interface ServiceTableOptions {
  /** The sidecar's own namespace: a bare `NAME` resolves there. */
  readonly namespace: string;
  /** The cluster DNS suffix (`cluster.local`). */
  readonly clusterDomain: string;
  /** Told once per ExternalName service seen (they are not proxied; see docs/kubernetes.md). */
  readonly onExternalName?: (namespace: string, name: string, externalName: string) => void;
}

/** What `flush` found changed since the last flush. */
export interface TableChanges {
  /** Registry services (one per Service port) whose endpoints may have changed. */
  readonly upserts: ServiceEndpoints[];
  /** Registry keys of Service ports that no longer exist. */
  readonly removals: string[];
}

interface ServiceState {
  service: Service | undefined;
  /** Slices naming this service, by `namespace/name` of the slice. */
  readonly slices: Map<string, EndpointSlice>;
  /** Registry keys currently published for it, and the authorities that route to them. */
  published: readonly string[];
  authorities: readonly string[];
  /** Host names (no port) of an ExternalName Service, filed in the table's external names. */
  externalHosts: readonly string[];
}

/**
 * Services and EndpointSlices as the watches last reported them, turned into one registry
 * service per Service port, and the authorities (`NAME:PORT`, `NAME.NS.svc:PORT`, `ClusterIP:PORT`,
 * ...) that route to each.
 *
 * Incremental: every change marks only the Service it belongs to (a slice's
 * `kubernetes.io/service-name`, before and after), and `flush` recomputes only the marked ones,
 * from their own slices. A churn of one endpoint in a cluster of 1,000 services rebuilds one
 * service's endpoint list and its snapshots, never the others.
 */
export class ServiceTable {
  readonly #options: ServiceTableOptions;
  /** By `namespace/name` of the Service. */
  readonly #services = new Map<string, ServiceState>();
  /** Slice `namespace/name` → the `namespace/service` it was filed under. */
  readonly #sliceOwner = new Map<string, string>();
  readonly #dirty = new Set<string>();
  /** Authority (lower case, no trailing dot) → registry key. */
  readonly #routes = new Map<string, string>();
  readonly #externalNamesSeen = new Set<string>();
  /** Host (lower case) of an ExternalName Service → its `spec.externalName`. */
  readonly #externalNames = new Map<string, string>();
  #sliceCount = 0;
  #routesVersion = 0;

  constructor(options: ServiceTableOptions) {
    this.#options = options;
  }

  /** Services and slices held (the `objects held` metric). */
  get counts(): { services: number; endpointslices: number } {
    let services = 0;
    for (const state of this.#services.values()) if (state.service !== undefined) services++;
    return { services, endpointslices: this.#sliceCount };
  }

  /** The registry key an authority (`Host` value, any case, optional `:port`) routes to. */
  route(authority: string): string | undefined {
    return this.#routes.get(normalizeAuthority(authority));
  }

  /**
   * The `spec.externalName` of the ExternalName Service an authority names (any port), or
   * undefined. Such Services are not proxied; the router asks this only for an authority that
   * routes nowhere, to say why.
   */
  externalName(authority: string): string | undefined {
    if (this.#externalNames.size === 0) return undefined;
    const normalized = normalizeAuthority(authority);
    const colon = normalized.lastIndexOf(":");
    const host =
      colon !== -1 && normalized.indexOf("]", colon) === -1
        ? normalized.slice(0, colon)
        : normalized;
    return this.#externalNames.get(host);
  }

  upsertService(service: Service): void {
    const id = objectId(service);
    if (id === undefined) return;
    this.#state(id).service = service;
    this.#dirty.add(id);
  }

  deleteService(service: Service): void {
    const id = objectId(service);
    if (id === undefined) return;
    const state = this.#services.get(id);
    if (state === undefined) return;
    state.service = undefined;
    this.#dirty.add(id);
  }

  /**
   * A list's complete set of Services in `namespace` (undefined = all namespaces): those of that
   * scope not in it are deleted.
   */
  replaceServices(services: readonly Service[], namespace?: string): void {
    const keep = new Set<string>();
    for (const service of services) {
      const id = objectId(service);
      if (id !== undefined) keep.add(id);
      this.upsertService(service);
    }
    for (const [id, state] of this.#services) {
      if (!inScope(id, namespace)) continue;
      if (!keep.has(id) && state.service !== undefined) {
        state.service = undefined;
        this.#dirty.add(id);
      }
    }
  }

  upsertSlice(slice: EndpointSlice): void {
    const id = objectId(slice);
    if (id === undefined) return;
    const owner = sliceOwner(slice);
    this.#removeSlice(id);
    if (owner === undefined) return;
    this.#state(owner).slices.set(id, slice);
    this.#sliceOwner.set(id, owner);
    this.#sliceCount++;
    this.#dirty.add(owner);
  }

  deleteSlice(slice: EndpointSlice): void {
    const id = objectId(slice);
    if (id !== undefined) this.#removeSlice(id);
  }

  /** A list's complete set of slices in `namespace` (undefined = all): the others there go. */
  replaceSlices(slices: readonly EndpointSlice[], namespace?: string): void {
    const keep = new Set<string>();
    for (const slice of slices) {
      const id = objectId(slice);
      if (id !== undefined) keep.add(id);
      this.upsertSlice(slice);
    }
    for (const id of [...this.#sliceOwner.keys()]) {
      if (inScope(id, namespace) && !keep.has(id)) this.#removeSlice(id);
    }
  }

  /** Bumped whenever the authorities that route somewhere change (the router's cache). */
  get routesVersion(): number {
    return this.#routesVersion;
  }

  /** Recompute the Services changed since the last flush; the others are not looked at. */
  flush(): TableChanges {
    const upserts: ServiceEndpoints[] = [];
    const removals: string[] = [];
    for (const id of this.#dirty) {
      const state = this.#services.get(id);
      if (state === undefined) continue;
      const entries = this.#entries(state);
      const keys = entries.map((entry) => entry.service);
      const next = new Set(keys.map((entry) => serviceKey(entry.name, entry.namespace)));
      for (const key of state.published) if (!next.has(key)) removals.push(key);
      for (const authority of state.authorities) this.#routes.delete(authority);
      const authorities: string[] = [];
      for (const entry of entries) {
        const key = serviceKey(entry.service.name, entry.service.namespace);
        for (const authority of entry.authorities) {
          this.#routes.set(authority, key);
          authorities.push(authority);
        }
      }
      if (authorities.join(" ") !== state.authorities.join(" ") || removals.length > 0) {
        this.#routesVersion++;
      }
      state.published = [...next];
      state.authorities = authorities;
      for (const host of state.externalHosts) this.#externalNames.delete(host);
      state.externalHosts = this.#externalHosts(state);
      upserts.push(...keys);
      if (state.service === undefined && state.slices.size === 0) this.#services.delete(id);
    }
    this.#dirty.clear();
    return { upserts, removals };
  }

  /** Every registry service the table publishes now (for a `reset`); flushes first. */
  all(): ServiceEndpoints[] {
    this.flush();
    const out: ServiceEndpoints[] = [];
    for (const state of this.#services.values()) {
      for (const entry of this.#entries(state)) out.push(entry.service);
    }
    return out;
  }

  #state(id: string): ServiceState {
    let state = this.#services.get(id);
    if (state === undefined) {
      state = {
        service: undefined,
        slices: new Map(),
        published: [],
        authorities: [],
        externalHosts: [],
      };
      this.#services.set(id, state);
    }
    return state;
  }

  #removeSlice(id: string): void {
    const owner = this.#sliceOwner.get(id);
    if (owner === undefined) return;
    this.#sliceOwner.delete(id);
    this.#sliceCount--;
    this.#services.get(owner)?.slices.delete(id);
    this.#dirty.add(owner);
  }

  /** One registry service per TCP port of the Service, with the authorities that reach it. */
  #entries(state: ServiceState): { service: ServiceEndpoints; authorities: string[] }[] {
    const service = state.service;
    const name = service?.metadata?.name;
    const namespace = service?.metadata?.namespace;
    if (service === undefined || name === undefined || namespace === undefined) return [];
    const spec = service.spec ?? {};
    if (spec.type === "ExternalName") {
      const id = `${namespace}/${name}`;
      if (!this.#externalNamesSeen.has(id)) {
        this.#externalNamesSeen.add(id);
        this.#options.onExternalName?.(namespace, name, spec.externalName ?? "");
      }
      return [];
    }
    const clusterIPs = (spec.clusterIPs ?? (spec.clusterIP ? [spec.clusterIP] : [])).filter(
      (ip) => ip !== "" && ip !== "None",
    );
    const hosts = this.#hostNames(name, namespace);
    const out: { service: ServiceEndpoints; authorities: string[] }[] = [];
    for (const port of spec.ports ?? []) {
      if ((port.protocol ?? "TCP") !== "TCP") continue;
      const authorities: string[] = [];
      // normalizeAuthority drops `:80`, so port 80 is filed under the bare host.
      const suffix = port.port === 80 ? "" : `:${port.port}`;
      for (const host of hosts) authorities.push(host + suffix);
      for (const ip of clusterIPs) {
        authorities.push((isIPv6(ip) ? `[${ip.toLowerCase()}]` : ip) + suffix);
      }
      out.push({
        service: {
          name: portServiceName(name, port.port),
          namespace,
          endpoints: eligibleEndpoints(state.slices.values(), port),
        },
        authorities,
      });
    }
    return out;
  }

  /** An ExternalName Service's host names, filed under its external name. */
  #externalHosts(state: ServiceState): string[] {
    const service = state.service;
    const name = service?.metadata?.name;
    const namespace = service?.metadata?.namespace;
    if (service?.spec?.type !== "ExternalName" || name === undefined || namespace === undefined) {
      return [];
    }
    const hosts = this.#hostNames(name, namespace);
    for (const host of hosts) this.#externalNames.set(host, service.spec.externalName ?? "");
    return hosts;
  }

  #hostNames(name: string, namespace: string): string[] {
    const hosts = [
      `${name}.${namespace}`,
      `${name}.${namespace}.svc`,
      `${name}.${namespace}.svc.${this.#options.clusterDomain}`,
    ];
    if (namespace === this.#options.namespace) hosts.unshift(name);
    return hosts;
  }
}

interface Candidate {
  readonly endpoint: SliceEndpoint;
  readonly address: string;
  readonly port: number;
  readonly ready: boolean;
  readonly fallback: boolean;
}

/**
 * The endpoints for one Service port across all the Service's slices, de-duplicated by address
 * and port. Eligible: the ready ones; when none is ready, the serving ones that are terminating
 * (kube-proxy's and Envoy's fallback, so a rollout that leaves only terminating pods still has
 * somewhere to send traffic).
 */
export function eligibleEndpoints(
  slices: Iterable<EndpointSlice>,
  servicePort: ServicePort,
): Endpoint[] {
  const candidates = new Map<string, Candidate>();
  let anyReady = false;
  const portName = servicePort.name ?? "";
  for (const slice of slices) {
    if (slice.addressType === "FQDN") continue;
    // The slice's port of the same name carries the targetPort as resolved for the pods in this
    // slice: pods whose named port differs land in different slices.
    const slicePort = (slice.ports ?? []).find((p) => (p.name ?? "") === portName);
    const port = slicePort?.port;
    if (typeof port !== "number" || port < 1 || port > 65535) continue;
    for (const endpoint of slice.endpoints ?? []) {
      const conditions = endpoint.conditions ?? {};
      const ready = conditions.ready ?? true;
      const serving = conditions.serving ?? ready;
      const terminating = conditions.terminating ?? false;
      const fallback = serving && terminating;
      // One endpoint per pod: the first address is the one kube-proxy uses.
      const address = endpoint.addresses?.[0];
      if (address === undefined) continue;
      if (ready) anyReady = true;
      const id = formatAddress(address.toLowerCase(), port);
      const seen = candidates.get(id);
      // An endpoint briefly in two slices (moving between them) counts once, at its best.
      if (seen !== undefined && (seen.ready || !ready)) continue;
      candidates.set(id, { endpoint, address: address.toLowerCase(), port, ready, fallback });
    }
  }
  const out: Endpoint[] = [];
  for (const [id, candidate] of candidates) {
    if (anyReady ? !candidate.ready : !candidate.fallback) continue;
    out.push(
      Object.freeze({
        id,
        host: candidate.address,
        port: candidate.port,
        weight: 1,
        labels: Object.freeze(endpointLabels(candidate.endpoint)),
        ready: true,
      }),
    );
  }
  return out;
}

function endpointLabels(endpoint: SliceEndpoint): Record<string, string> {
  const labels: Record<string, string> = {};
  if (endpoint.zone) labels[ZONE_LABEL] = endpoint.zone;
  if (endpoint.nodeName) labels[NODE_LABEL] = endpoint.nodeName;
  const ref = endpoint.targetRef;
  if (ref?.name && (ref.kind ?? "Pod") === "Pod") labels[POD_LABEL] = ref.name;
  return labels;
}

function objectId(object: {
  metadata?: { name?: string; namespace?: string };
}): string | undefined {
  const meta = object.metadata;
  if (meta?.name === undefined || meta.namespace === undefined) return undefined;
  return `${meta.namespace}/${meta.name}`;
}

function inScope(id: string, namespace: string | undefined): boolean {
  return namespace === undefined || id.startsWith(`${namespace}/`);
}

function sliceOwner(slice: EndpointSlice): string | undefined {
  const service = slice.metadata?.labels?.[SERVICE_NAME_LABEL];
  const namespace = slice.metadata?.namespace;
  if (!service || namespace === undefined) return undefined;
  return `${namespace}/${service}`;
}

/** Lower case, no trailing dot on the host; the port kept. */
export function normalizeAuthority(authority: string): string {
  let host = authority;
  let port = "";
  const colon = authority.lastIndexOf(":");
  if (colon !== -1 && authority.indexOf("]", colon) === -1) {
    host = authority.slice(0, colon);
    port = authority.slice(colon);
  }
  if (host.endsWith(".")) host = host.slice(0, -1);
  if (port === ":80") port = "";
  return (host + port).toLowerCase();
}
