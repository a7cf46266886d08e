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
  /** The Service itself changed since the last flush (not only its slices): re-route it. */
  serviceChanged: boolean;
  /** What the table keeps of each slice naming this service, by `namespace/name` of the slice. */
  readonly slices: Map<string, SliceDigest>;
  /** One per TCP port of the Service, with the endpoints last published for it. */
  ports: PortState[];
  /** Registry keys currently published for it, and the authorities that route to them. */
  published: readonly string[];
  authorities: readonly string[];
  /** Host names (no port) of an ExternalName Service, filed in the table's external names. */
  externalHosts: readonly string[];
}

/** One port of a Service as the table publishes it. */
interface PortState {
  readonly port: ServicePort;
  /** The registry service's name, `NAME:PORT`. */
  readonly name: string;
  /** Published last (the same array while nothing in it changed). */
  endpoints: readonly Endpoint[];
}

/**
 * What the table keeps of an EndpointSlice: what eligibility reads, nothing else. The parsed watch
 * event is dropped at once (it dies young); a slice rewritten with one endpoint changed keeps the
 * other endpoints' digests, and with them the frozen Endpoint objects built from them, so a churn
 * event leaves little behind for the garbage collector to promote.
 */
export interface SliceDigest {
  /** The slice's ports, by name ("" when unnamed); `port` is -1 when the slice gave none. */
  readonly ports: readonly { readonly name: string; readonly port: number }[];
  /** Endpoints with an address (the first one: kube-proxy's), in the slice's order. */
  readonly endpoints: readonly EndpointDigest[];
}

export interface EndpointDigest {
  /** Lower case. */
  readonly address: string;
  readonly ready: boolean;
  /** Serving and terminating: eligible when none of the port's endpoints is ready. */
  readonly fallback: boolean;
  /** Frozen; shared by every Endpoint built from this digest. */
  readonly labels: Readonly<Record<string, string>>;
  /**
   * The Endpoint (ready, weight 1) built for each slice port number: it depends only on address,
   * port and labels, so it is reused as long as those stay, whatever the conditions do.
   */
  built: Endpoint[] | undefined;
}

const EMPTY_DIGEST: SliceDigest = Object.freeze({ ports: [], endpoints: [] });

/**
 * Services and EndpointSlices as the watches last reported them, turned into one registry
 * service per Service port, and the authorities (`NAME:PORT`, `NAME.NS.svc:PORT`, `ClusterIP:PORT`,
 * ...) that route to each.
 *
 * Incremental: every change marks only the Service it belongs to (a slice's
 * `kubernetes.io/service-name`, before and after), and `flush` recomputes only the marked ones,
 * from their own slices. A churn of one endpoint in a cluster of 1,000 services rebuilds one
 * service's endpoint list and its snapshots, never the others; its routes are rebuilt only when
 * the Service itself changed, and a port whose endpoints came out the same is not republished.
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
  /** Registry key → the `namespace/name` of the Service it is a port of. */
  readonly #keyService = new Map<string, string>();
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

  /** The Service (`namespace/name`) whose port a registry key is. */
  serviceOf(key: string): string | undefined {
    return this.#keyService.get(key);
  }

  /** The slices (`namespace/name`) filed under a Service now. */
  slicesOf(service: string): Iterable<string> {
    return this.#services.get(service)?.slices.keys() ?? [];
  }

  /** The Service a slice is filed under now. */
  ownerOf(slice: string): string | undefined {
    return this.#sliceOwner.get(slice);
  }

  upsertService(service: Service): void {
    const id = objectId(service);
    if (id === undefined) return;
    const state = this.#state(id);
    state.service = service;
    state.serviceChanged = true;
    this.#dirty.add(id);
  }

  deleteService(service: Service): void {
    const id = objectId(service);
    if (id === undefined) return;
    const state = this.#services.get(id);
    if (state === undefined) return;
    state.service = undefined;
    state.serviceChanged = true;
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
        state.serviceChanged = true;
        this.#dirty.add(id);
      }
    }
  }

  upsertSlice(slice: EndpointSlice): void {
    const id = objectId(slice);
    if (id === undefined) return;
    const owner = sliceOwner(slice);
    const filedUnder = this.#sliceOwner.get(id);
    const previous =
      filedUnder === undefined ? undefined : this.#services.get(filedUnder)?.slices.get(id);
    const digest = digestSlice(slice, previous);
    this.#removeSlice(id);
    if (owner === undefined) return;
    this.#state(owner).slices.set(id, digest);
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
      const rerouted = state.serviceChanged;
      if (rerouted) this.#reroute(id, state, removals);
      const namespace = state.service?.metadata?.namespace ?? "";
      for (const port of state.ports) {
        const endpoints = eligibleFromDigests(state.slices.values(), port.port, port.endpoints);
        // A slice rewrite that left this port's endpoints as they were is not an update.
        if (endpoints === port.endpoints && !rerouted) continue;
        port.endpoints = endpoints;
        upserts.push({ name: port.name, namespace, endpoints });
      }
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
      const namespace = state.service?.metadata?.namespace ?? "";
      for (const port of state.ports) {
        out.push({ name: port.name, namespace, endpoints: port.endpoints });
      }
    }
    return out;
  }

  /** The Service changed: its ports, the registry keys and the authorities that route to them. */
  #reroute(id: string, state: ServiceState, removals: string[]): void {
    state.serviceChanged = false;
    const entries = this.#entries(state);
    const previous = new Map(state.ports.map((port) => [port.name, port]));
    state.ports = entries.map(({ name, port }) => ({
      port,
      name,
      // Same name, same port number: start from what was published, so unchanged endpoints stay
      // the same objects.
      endpoints: previous.get(name)?.endpoints ?? [],
    }));
    const next = new Set(entries.map((entry) => entry.key));
    for (const key of state.published) {
      if (next.has(key)) continue;
      removals.push(key);
      this.#keyService.delete(key);
    }
    for (const key of next) this.#keyService.set(key, id);
    for (const authority of state.authorities) this.#routes.delete(authority);
    const authorities: string[] = [];
    for (const entry of entries) {
      for (const authority of entry.authorities) {
        this.#routes.set(authority, entry.key);
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
  }

  #state(id: string): ServiceState {
    let state = this.#services.get(id);
    if (state === undefined) {
      state = {
        service: undefined,
        serviceChanged: false,
        slices: new Map(),
        ports: [],
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
  #entries(
    state: ServiceState,
  ): { name: string; key: string; port: ServicePort; authorities: string[] }[] {
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
    const out: { name: string; key: string; port: ServicePort; authorities: string[] }[] = [];
    for (const port of spec.ports ?? []) {
      if ((port.protocol ?? "TCP") !== "TCP") continue;
      const authorities: string[] = [];
      // normalizeAuthority drops `:80`, so port 80 is filed under the bare host.
      const suffix = port.port === 80 ? "" : `:${port.port}`;
      for (const host of hosts) authorities.push(host + suffix);
      for (const ip of clusterIPs) {
        authorities.push((isIPv6(ip) ? `[${ip.toLowerCase()}]` : ip) + suffix);
      }
      const registryName = portServiceName(name, port.port);
      out.push({ name: registryName, key: serviceKey(registryName, namespace), port, authorities });
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
  const digests: SliceDigest[] = [];
  for (const slice of slices) digests.push(digestSlice(slice));
  return [...eligibleFromDigests(digests, servicePort, [])];
}

/**
 * What the table keeps of a slice (see SliceDigest). `previous`, the digest of the slice's last
 * version: endpoints that did not change are taken from it as they are (labels, built Endpoints).
 */
export function digestSlice(slice: EndpointSlice, previous?: SliceDigest): SliceDigest {
  if (slice.addressType === "FQDN") return EMPTY_DIGEST;
  const ports = (slice.ports ?? []).map((p) => ({
    name: p.name ?? "",
    port: typeof p.port === "number" ? p.port : -1,
  }));
  const old = previous?.endpoints ?? [];
  const endpoints: EndpointDigest[] = [];
  for (const endpoint of slice.endpoints ?? []) {
    // One endpoint per pod: the first address is the one kube-proxy uses.
    const address = endpoint.addresses?.[0]?.toLowerCase();
    if (address === undefined) continue;
    const conditions = endpoint.conditions ?? {};
    const ready = conditions.ready ?? true;
    const serving = conditions.serving ?? ready;
    const fallback = serving && (conditions.terminating ?? false);
    // Usually at the same place as in the last version; else looked for (slices are small).
    const at = endpoints.length;
    const before =
      old[at]?.address === address ? old[at] : old.find((digest) => digest.address === address);
    const labels =
      before !== undefined && sameLabels(before.labels, endpoint)
        ? before.labels
        : Object.freeze(endpointLabels(endpoint));
    if (before === undefined || before.labels !== labels) {
      endpoints.push({ address, ready, fallback, labels, built: undefined });
    } else if (before.ready === ready && before.fallback === fallback) {
      endpoints.push(before);
    } else {
      // Only readiness changed: the Endpoint objects (address, port, labels) carry over, so an
      // endpoint that flaps back to ready is the very object balancers and pools already know.
      endpoints.push({ address, ready, fallback, labels, built: before.built });
    }
  }
  return { ports, endpoints };
}

/**
 * eligibleEndpoints over digests. Returns `previous` itself when the result holds the same
 * Endpoints in the same order, so the caller can tell "unchanged" by identity.
 */
function eligibleFromDigests(
  slices: Iterable<SliceDigest>,
  servicePort: ServicePort,
  previous: readonly Endpoint[],
): readonly Endpoint[] {
  const candidates = new Map<string, { endpoint: Endpoint; digest: EndpointDigest }>();
  let anyReady = false;
  const portName = servicePort.name ?? "";
  for (const slice of slices) {
    // The slice's port of the same name carries the targetPort as resolved for the pods in this
    // slice: pods whose named port differs land in different slices.
    const port = slice.ports.find((p) => p.name === portName)?.port ?? -1;
    if (port < 1 || port > 65535) continue;
    for (const digest of slice.endpoints) {
      if (digest.ready) anyReady = true;
      const endpoint = builtEndpoint(digest, port);
      const seen = candidates.get(endpoint.id);
      // An endpoint briefly in two slices (moving between them) counts once, at its best.
      if (seen !== undefined && (seen.digest.ready || !digest.ready)) continue;
      candidates.set(endpoint.id, { endpoint, digest });
    }
  }
  const out: Endpoint[] = [];
  let same = true;
  for (const { endpoint, digest } of candidates.values()) {
    if (anyReady ? !digest.ready : !digest.fallback) continue;
    if (previous[out.length] !== endpoint) same = false;
    out.push(endpoint);
  }
  return same && out.length === previous.length ? previous : Object.freeze(out);
}

/** The Endpoint a digest stands for on one port, built once. */
function builtEndpoint(digest: EndpointDigest, port: number): Endpoint {
  const built = digest.built;
  if (built !== undefined) {
    for (const endpoint of built) if (endpoint.port === port) return endpoint;
  }
  const endpoint: Endpoint = Object.freeze({
    id: formatAddress(digest.address, port),
    host: digest.address,
    port,
    weight: 1,
    labels: digest.labels,
    ready: true,
  });
  if (built === undefined) digest.built = [endpoint];
  else built.push(endpoint);
  return endpoint;
}

/** Whether `labels` are what endpointLabels would make of this slice endpoint. */
function sameLabels(labels: Readonly<Record<string, string>>, endpoint: SliceEndpoint): boolean {
  return (
    labels[ZONE_LABEL] === (endpoint.zone || undefined) &&
    labels[NODE_LABEL] === (endpoint.nodeName || undefined) &&
    labels[POD_LABEL] === podName(endpoint)
  );
}

function endpointLabels(endpoint: SliceEndpoint): Record<string, string> {
  const labels: Record<string, string> = {};
  if (endpoint.zone) labels[ZONE_LABEL] = endpoint.zone;
  if (endpoint.nodeName) labels[NODE_LABEL] = endpoint.nodeName;
  const pod = podName(endpoint);
  if (pod !== undefined) labels[POD_LABEL] = pod;
  return labels;
}

function podName(endpoint: SliceEndpoint): string | undefined {
  const ref = endpoint.targetRef;
  return ref?.name && (ref.kind ?? "Pod") === "Pod" ? ref.name : undefined;
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
