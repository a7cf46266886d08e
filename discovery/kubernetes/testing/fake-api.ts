/**
 * A Kubernetes API server for tests and the benchmark's `churn` scenario, speaking the wire protocol of the real one for the parts
 * remora (and `kubectl get`) use: HTTPS with a bearer token; discovery documents (/api, /apis,
 * /api/v1, /apis/discovery.k8s.io/v1); lists of Services and EndpointSlices, cluster-wide or per
 * namespace, with `metadata.resourceVersion` and paging (`limit`/`continue`); watches from a
 * resourceVersion as chunked newline-delimited JSON events, written in pieces cut at arbitrary
 * bytes, with BOOKMARK events; 410 Gone for a compacted resourceVersion (an ERROR event carrying a
 * Status, as the real server does, or an HTTP 410 answer), and for an expired continue token.
 *
 * Faults on demand: the next answers fail with a chosen status (401, 403, 429 with Retry-After,
 * 500), watch streams cut in the middle of an event, the token rotated, the server stopped and
 * started again on the same port with its history compacted.
 *
 * Its event history is capped (`maxHistory`), as etcd compacts its own: a watch from before the
 * oldest event kept is answered 410, so a long run of writes (the churn benchmark) holds bounded
 * memory. Built (not under test/) so the benchmark can run it; nothing in the proxy imports it.
 */
import { randomUUID } from "node:crypto";
import { writeFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { type Minted, mint } from "../../../tls/testing.js";

export type Resource = "services" | "endpointslices";

interface Kind {
  readonly kind: string;
  readonly apiVersion: string;
  readonly prefix: string;
}

const KINDS: Record<Resource, Kind> = {
  services: { kind: "Service", apiVersion: "v1", prefix: "/api/v1" },
  endpointslices: {
    kind: "EndpointSlice",
    apiVersion: "discovery.k8s.io/v1",
    prefix: "/apis/discovery.k8s.io/v1",
  },
};

// biome-ignore lint/suspicious/noExplicitAny: Kubernetes objects are open-ended JSON here.
type KubeObject = Record<string, any>;

interface HistoryEvent {
  readonly rv: number;
  readonly resource: Resource;
  readonly type: "ADDED" | "MODIFIED" | "DELETED";
  readonly object: KubeObject;
}

interface Watcher {
  readonly resource: Resource;
  readonly namespace: string | undefined;
  readonly bookmarks: boolean;
  readonly res: ServerResponse;
  /** Writes in order, each event cut in pieces. */
  queue: Promise<void>;
  /** Without cuts: the lines of this turn of the event loop, written together when it ends. */
  batch: string;
}

export interface Fault {
  /** Which requests it hits; default both. */
  readonly on?: "list" | "watch";
  readonly status: number;
  readonly reason?: string;
  readonly retryAfterSeconds?: number;
}

export interface RecordedRequest {
  readonly path: string;
  readonly query: Record<string, string>;
  readonly authorization: string | undefined;
  readonly status: number;
}

/** A small seeded generator, so the cuts are arbitrary but each run's are the same. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class FakeKubeApi {
  readonly ca: Minted;
  readonly #serverCert: Minted;
  token: string;
  port = 0;
  /** 410 for a compacted watch: an ERROR event in a 200 stream (the real server's way), or HTTP 410. */
  expiredAs: "event" | "http" = "event";
  /** End every watch after this many seconds (the client's timeoutSeconds when shorter). */
  maxWatchSeconds = 3600;
  /**
   * Events kept for watches that resume from a past resourceVersion; beyond it the oldest tenth
   * is dropped (compacted), so resuming from before them is answered 410.
   */
  readonly maxHistory: number;
  readonly requests: RecordedRequest[] = [];
  readonly #objects: Record<Resource, Map<string, KubeObject>> = {
    services: new Map(),
    endpointslices: new Map(),
  };
  #history: HistoryEvent[] = [];
  /** Watches from a resourceVersion below this are answered 410. */
  #compactedBelow = 0;
  #rv = 100;
  readonly #watchers = new Set<Watcher>();
  readonly #faults: Fault[] = [];
  readonly #continues = new Map<string, { rv: number; items: KubeObject[] }>();
  readonly #sockets = new Set<Socket>();
  readonly #random = seeded(12);
  #server: Server | undefined;

  /**
   * Each watch event written in one to three pieces cut at random bytes (the default, for the
   * tests), or whole (the churn benchmark: remora's cost of an event, not of the fake's cuts).
   * Whole events are written as kube-apiserver writes them: it flushes a watch only when no more
   * events are queued for it (handlers/watch.go, `if len(ch) == 0 { flusher.Flush() }`), so the
   * events written in one turn of the event loop go out as one chunk.
   */
  readonly cutEvents: boolean;

  constructor(options: { token?: string; maxHistory?: number; cutEvents?: boolean } = {}) {
    this.maxHistory = options.maxHistory ?? 10_000;
    this.cutEvents = options.cutEvents ?? true;
    this.ca = mint({ commonName: "fake kube CA" });
    this.#serverCert = mint({ commonName: "kube-apiserver", issuer: this.ca, ips: ["127.0.0.1"] });
    this.token = options.token ?? `token-${randomUUID()}`;
  }

  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** The current resourceVersion (the last write's). */
  get resourceVersion(): string {
    return String(this.#rv);
  }

  /** Listen on `port` (0 = a free one; the same port again after stop()). */
  async start(port = this.port): Promise<void> {
    const server = createServer(
      { cert: this.#serverCert.certPem, key: this.#serverCert.keyPem },
      (req, res) => {
        this.#handle(req, res);
      },
    );
    server.on("secureConnection", (socket: Socket) => {
      this.#sockets.add(socket);
      socket.on("close", () => this.#sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
    this.#server = server;
    this.port = (server.address() as AddressInfo).port;
  }

  /** Stop as a crashed API server would: every connection cut, watches without a last chunk. */
  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const socket of this.#sockets) socket.destroy();
    this.#watchers.clear();
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Back on the same port; with `compact`, only events after now can be watched from (etcd compaction). */
  async restart(options: { compact?: boolean } = {}): Promise<void> {
    await this.stop();
    if (options.compact) this.compact();
    await this.start(this.port);
  }

  /** Forget the event history: a watch from any resourceVersion before now answers 410. */
  compact(): void {
    this.#rv++;
    this.#history = [];
    this.#compactedBelow = this.#rv;
    this.#continues.clear();
  }

  /** The next matching requests fail with these answers, in order. */
  fail(...faults: Fault[]): void {
    this.#faults.push(...faults);
  }

  /** A new token: requests with the old one are answered 401. */
  rotateToken(token = `token-${randomUUID()}`): string {
    this.token = token;
    return token;
  }

  /** Create or replace an object; watchers hear ADDED or MODIFIED. */
  put(resource: Resource, object: KubeObject): KubeObject {
    const { kind, apiVersion } = KINDS[resource];
    const key = `${object.metadata.namespace}/${object.metadata.name}`;
    const previous = this.#objects[resource].get(key);
    const stored = {
      kind,
      apiVersion,
      ...object,
      metadata: {
        ...object.metadata,
        uid: previous?.metadata.uid ?? randomUUID(),
        creationTimestamp:
          previous?.metadata.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, "Z"),
        resourceVersion: String(++this.#rv),
      },
    };
    this.#objects[resource].set(key, stored);
    this.#record(resource, previous === undefined ? "ADDED" : "MODIFIED", stored);
    return stored;
  }

  /** Delete an object; watchers hear DELETED with its last state. */
  delete(resource: Resource, namespace: string, name: string): void {
    const key = `${namespace}/${name}`;
    const previous = this.#objects[resource].get(key);
    if (previous === undefined) return;
    this.#objects[resource].delete(key);
    const last = {
      ...previous,
      metadata: { ...previous.metadata, resourceVersion: String(++this.#rv) },
    };
    this.#record(resource, "DELETED", last);
  }

  /** A BOOKMARK to every watch that asked for them. */
  bookmark(): void {
    for (const watcher of this.#watchers) {
      if (!watcher.bookmarks) continue;
      const { kind, apiVersion } = KINDS[watcher.resource];
      this.#send(watcher, {
        type: "BOOKMARK",
        object: { kind, apiVersion, metadata: { resourceVersion: this.resourceVersion } },
      });
    }
  }

  /**
   * Write `line` (and a newline) as it is to every open watch of `resource`: a server sending a
   * broken event. It does not enter the history.
   */
  sendRawLine(resource: Resource, line: string): void {
    for (const watcher of this.#watchers) {
      if (watcher.resource !== resource) continue;
      watcher.queue = watcher.queue.then(() => {
        if (!watcher.res.destroyed && !watcher.res.writableEnded) watcher.res.write(`${line}\n`);
      });
    }
  }

  /** Cut every open watch after writing the first half of an event (a connection lost mid-event). */
  async cutWatches(): Promise<void> {
    const cuts: Promise<void>[] = [];
    for (const watcher of [...this.#watchers]) {
      this.#watchers.delete(watcher);
      watcher.queue = watcher.queue.then(() => {
        watcher.res.write('{"type":"MODIFIED","object":{"kind":');
        watcher.res.socket?.destroy();
      });
      cuts.push(watcher.queue);
    }
    await Promise.all(cuts);
  }

  /** Events kept for resuming watches (at most `maxHistory`). */
  get historyLength(): number {
    return this.#history.length;
  }

  /** Open watches now. */
  get watchCount(): number {
    return this.#watchers.size;
  }

  /** A kubeconfig for this server with the current token (or none), as kubectl and remora read it. */
  writeKubeconfig(path: string, options: { token?: string | null; namespace?: string } = {}): void {
    const token = options.token === undefined ? this.token : options.token;
    const user = token === null ? {} : { token };
    writeFileSync(
      path,
      JSON.stringify({
        apiVersion: "v1",
        kind: "Config",
        "current-context": "fake",
        clusters: [
          {
            name: "fake",
            cluster: {
              server: this.url,
              "certificate-authority-data": Buffer.from(this.ca.certPem).toString("base64"),
            },
          },
        ],
        contexts: [
          {
            name: "fake",
            context: { cluster: "fake", user: "tester", namespace: options.namespace ?? "default" },
          },
        ],
        users: [{ name: "tester", user }],
      }),
    );
  }

  #record(resource: Resource, type: HistoryEvent["type"], object: KubeObject): void {
    const event: HistoryEvent = { rv: this.#rv, resource, type, object };
    this.#history.push(event);
    if (this.#history.length > this.maxHistory) {
      // Dropped in batches, so a steady stream of writes does not shift the array every time.
      const dropped = this.#history.splice(0, Math.ceil(this.maxHistory / 10) + 1);
      this.#compactedBelow = Math.max(this.#compactedBelow, dropped.at(-1)?.rv ?? 0);
    }
    for (const watcher of this.#watchers) {
      if (watcher.resource !== resource) continue;
      if (watcher.namespace !== undefined && watcher.namespace !== object.metadata.namespace)
        continue;
      this.#send(watcher, { type, object });
    }
  }

  /** One event line, written in one to three pieces cut at random bytes, a tick apart; or batched. */
  #send(watcher: Watcher, event: object): void {
    if (!this.cutEvents) {
      if (watcher.batch === "") {
        watcher.queue = watcher.queue.then(
          () =>
            new Promise<void>((resolve) =>
              setImmediate(() => {
                if (!watcher.res.destroyed && !watcher.res.writableEnded) {
                  watcher.res.write(watcher.batch);
                }
                watcher.batch = "";
                resolve();
              }),
            ),
        );
      }
      watcher.batch += `${JSON.stringify(event)}\n`;
      return;
    }
    const bytes = Buffer.from(`${JSON.stringify(event)}\n`);
    const cuts = [0];
    const pieces = 1 + Math.floor(this.#random() * 3);
    for (let i = 1; i < pieces; i++) cuts.push(1 + Math.floor(this.#random() * (bytes.length - 1)));
    cuts.sort((a, b) => a - b);
    cuts.push(bytes.length);
    watcher.queue = watcher.queue.then(async () => {
      for (let i = 0; i + 1 < cuts.length; i++) {
        if (watcher.res.destroyed || watcher.res.writableEnded) return;
        const piece = bytes.subarray(cuts[i], cuts[i + 1]);
        if (piece.length > 0) watcher.res.write(piece);
        await new Promise((resolve) => setImmediate(resolve));
      }
    });
  }

  /** Every path ends in one answer; `true` = answered (so each branch can `return` it). */
  #handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? "/", "https://fake");
    const query = Object.fromEntries(url.searchParams);
    const record = (status: number) =>
      this.requests.push({
        path: url.pathname,
        query,
        authorization: req.headers.authorization,
        status,
      });
    const answer = (status: number, body: object, headers: Record<string, string> = {}) => {
      record(status);
      const text = JSON.stringify(body);
      res.writeHead(status, {
        "content-type": "application/json",
        "content-length": Buffer.byteLength(text),
        ...headers,
      });
      res.end(text);
      return true;
    };
    const status = (
      code: number,
      reason: string,
      message: string,
      headers: Record<string, string> = {},
    ) =>
      answer(
        code,
        {
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Failure",
          message,
          reason,
          code,
        },
        headers,
      );

    if (req.method !== "GET")
      return status(405, "MethodNotAllowed", `${req.method} is not supported by the fake`);
    if (req.headers.authorization !== `Bearer ${this.token}`)
      return status(401, "Unauthorized", "Unauthorized");
    const discovery = this.#discovery(url.pathname);
    if (discovery !== undefined) return answer(200, discovery);
    const target = parsePath(url.pathname);
    if (target === undefined)
      return status(
        404,
        "NotFound",
        `the server could not find the requested resource (${url.pathname})`,
      );
    const watch = query.watch === "true" || query.watch === "1";
    const faultAt = this.#faults.findIndex(
      (fault) => fault.on === undefined || fault.on === (watch ? "watch" : "list"),
    );
    if (faultAt >= 0) {
      const [fault] = this.#faults.splice(faultAt, 1);
      if (fault !== undefined) {
        const headers: Record<string, string> =
          fault.retryAfterSeconds === undefined
            ? {}
            : { "retry-after": String(fault.retryAfterSeconds) };
        const message =
          fault.status === 403
            ? `${target.resource} is forbidden: User "system:serviceaccount:default:remora" cannot ${watch ? "watch" : "list"} resource "${target.resource}"`
            : `injected ${fault.status}`;
        return status(fault.status, fault.reason ?? defaultReason(fault.status), message, headers);
      }
    }
    if (watch) return this.#watch(target, query, res, record, status);
    return this.#list(target, query, answer, status);
  }

  #list(
    target: { resource: Resource; namespace: string | undefined },
    query: Record<string, string>,
    answer: (status: number, body: object) => boolean,
    status: (code: number, reason: string, message: string) => boolean,
  ): boolean {
    const { kind, apiVersion } = KINDS[target.resource];
    let snapshot: { rv: number; items: KubeObject[] };
    let offset = 0;
    if (query.continue) {
      const saved = this.#continues.get(query.continue.split(":")[0] ?? "");
      if (saved === undefined) {
        return status(
          410,
          "Expired",
          "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.",
        );
      }
      snapshot = saved;
      offset = Number(query.continue.split(":")[1]);
    } else {
      const items = [...this.#objects[target.resource].values()]
        .filter((o) => target.namespace === undefined || o.metadata.namespace === target.namespace)
        .sort((a, b) =>
          `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(
            `${b.metadata.namespace}/${b.metadata.name}`,
          ),
        );
      snapshot = { rv: this.#rv, items };
    }
    const limit = query.limit ? Number(query.limit) : Number.POSITIVE_INFINITY;
    const page = snapshot.items.slice(offset, offset + limit);
    const next = offset + page.length;
    const metadata: Record<string, unknown> = { resourceVersion: String(snapshot.rv) };
    if (next < snapshot.items.length) {
      const id = randomUUID();
      this.#continues.set(id, snapshot);
      metadata.continue = `${id}:${next}`;
      metadata.remainingItemCount = snapshot.items.length - next;
    }
    return answer(200, { kind: `${kind}List`, apiVersion, metadata, items: page });
  }

  #watch(
    target: { resource: Resource; namespace: string | undefined },
    query: Record<string, string>,
    res: ServerResponse,
    record: (status: number) => void,
    status: (code: number, reason: string, message: string) => boolean,
  ): boolean {
    const from = query.resourceVersion ? Number(query.resourceVersion) : this.#rv;
    const expired = from < this.#compactedBelow;
    const goneMessage = `too old resource version: ${from} (${this.#compactedBelow})`;
    if (expired && this.expiredAs === "http") return status(410, "Expired", goneMessage);
    record(200);
    res.writeHead(200, { "content-type": "application/json", "transfer-encoding": "chunked" });
    res.flushHeaders();
    const watcher: Watcher = {
      resource: target.resource,
      namespace: target.namespace,
      bookmarks: query.allowWatchBookmarks === "true",
      res,
      queue: Promise.resolve(),
      batch: "",
    };
    if (expired) {
      this.#send(watcher, {
        type: "ERROR",
        object: {
          kind: "Status",
          apiVersion: "v1",
          metadata: {},
          status: "Failure",
          message: goneMessage,
          reason: "Expired",
          code: 410,
        },
      });
      watcher.queue = watcher.queue.then(() => {
        res.end();
      });
      return true;
    }
    for (const event of this.#history) {
      if (event.rv <= from || event.resource !== target.resource) continue;
      if (target.namespace !== undefined && event.object.metadata.namespace !== target.namespace)
        continue;
      this.#send(watcher, { type: event.type, object: event.object });
    }
    this.#watchers.add(watcher);
    const seconds = Math.min(Number(query.timeoutSeconds || 1800), this.maxWatchSeconds);
    const timer = setTimeout(() => {
      this.#watchers.delete(watcher);
      watcher.queue = watcher.queue.then(() => {
        res.end();
      });
    }, seconds * 1000);
    res.on("close", () => {
      clearTimeout(timer);
      this.#watchers.delete(watcher);
    });
    return true;
  }

  #discovery(path: string): object | undefined {
    const resource = (name: string, singular: string, kind: string, shortNames: string[]) => ({
      name,
      singularName: singular,
      namespaced: true,
      kind,
      verbs: ["get", "list", "watch"],
      ...(shortNames.length ? { shortNames } : {}),
    });
    switch (path) {
      case "/version":
        return { major: "1", minor: "32", gitVersion: "v1.32.0-fake", platform: "linux/amd64" };
      case "/api":
        return {
          kind: "APIVersions",
          versions: ["v1"],
          serverAddressByClientCIDRs: [
            { clientCIDR: "0.0.0.0/0", serverAddress: `127.0.0.1:${this.port}` },
          ],
        };
      case "/apis":
        return {
          kind: "APIGroupList",
          apiVersion: "v1",
          groups: [
            {
              name: "discovery.k8s.io",
              versions: [{ groupVersion: "discovery.k8s.io/v1", version: "v1" }],
              preferredVersion: { groupVersion: "discovery.k8s.io/v1", version: "v1" },
            },
          ],
        };
      case "/api/v1":
        return {
          kind: "APIResourceList",
          groupVersion: "v1",
          resources: [resource("services", "service", "Service", ["svc"])],
        };
      case "/apis/discovery.k8s.io/v1":
        return {
          kind: "APIResourceList",
          apiVersion: "v1",
          groupVersion: "discovery.k8s.io/v1",
          resources: [resource("endpointslices", "endpointslice", "EndpointSlice", [])],
        };
      default:
        return undefined;
    }
  }
}

function parsePath(
  path: string,
): { resource: Resource; namespace: string | undefined } | undefined {
  for (const resource of ["services", "endpointslices"] as const) {
    const prefix = KINDS[resource].prefix;
    if (path === `${prefix}/${resource}`) return { resource, namespace: undefined };
    const match = new RegExp(
      `^${prefix.replaceAll(".", "\\.")}/namespaces/([^/]+)/${resource}$`,
    ).exec(path);
    if (match) return { resource, namespace: decodeURIComponent(match[1] ?? "") };
  }
  return undefined;
}

function defaultReason(status: number): string {
  switch (status) {
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 410:
      return "Expired";
    case 429:
      return "TooManyRequests";
    default:
      return "InternalError";
  }
}

/** A Service of `ports` ({name, port, targetPort}) with a ClusterIP. */
export function serviceObject(
  name: string,
  namespace: string,
  ports: { name?: string; port: number; targetPort?: number | string }[],
  clusterIP = "10.96.0.10",
): KubeObject {
  return {
    metadata: { name, namespace },
    spec: {
      type: "ClusterIP",
      clusterIP,
      clusterIPs: [clusterIP],
      ports: ports.map((p) => ({ protocol: "TCP", ...p })),
    },
  };
}

/** An EndpointSlice of `service` with these addresses, conditions and one port. */
export function sliceObject(
  name: string,
  namespace: string,
  service: string,
  endpoints: {
    ip: string;
    ready?: boolean;
    serving?: boolean;
    terminating?: boolean;
    pod?: string;
  }[],
  port: { name?: string; port: number },
): KubeObject {
  return {
    metadata: { name, namespace, labels: { "kubernetes.io/service-name": service } },
    addressType: "IPv4",
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: {
        ...(e.ready === undefined ? {} : { ready: e.ready }),
        ...(e.serving === undefined ? {} : { serving: e.serving }),
        ...(e.terminating === undefined ? {} : { terminating: e.terminating }),
      },
      ...(e.pod ? { targetRef: { kind: "Pod", namespace, name: e.pod } } : {}),
      nodeName: "node-1",
      zone: "zone-a",
    })),
    ports: [{ protocol: "TCP", ...port }],
  };
}
