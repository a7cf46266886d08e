import { Agent, request } from "undici";
import type { ApiAccess } from "./access.js";
import { KubeApiError, KubeProtocolError, parseRetryAfter } from "./api-error.js";
import type { ListQuery, ResourceApi, WatchQuery } from "./reflector.js";
import type { KubeList, KubeObject, KubeStatus } from "./wire.js";

/** A collection's URL parts: `/apis/discovery.k8s.io/v1` + `endpointslices`. */
export interface ResourcePath {
  /** `/api/v1` or `/apis/GROUP/VERSION`. */
  readonly prefix: string;
  readonly plural: string;
  /** For logs and the RBAC hint: `endpointslices.discovery.k8s.io`. */
  readonly resource: string;
}

export const ENDPOINT_SLICES: ResourcePath = {
  prefix: "/apis/discovery.k8s.io/v1",
  plural: "endpointslices",
  resource: "endpointslices.discovery.k8s.io",
};

export const SERVICES: ResourcePath = {
  prefix: "/api/v1",
  plural: "services",
  resource: "services",
};

/** Time to wait for an answer's headers; a watch's body may then be silent for minutes. */
const HEADERS_TIMEOUT_MS = 30_000;

/**
 * The Kubernetes API over undici: GET lists and watches with the bearer token and TLS material of
 * an ApiAccess. One Agent (and so one pool of connections) per client.
 */
export class KubeClient {
  readonly #access: ApiAccess;
  readonly #agent: Agent;

  constructor(access: ApiAccess) {
    this.#access = access;
    this.#agent = new Agent({
      connect: {
        ca: access.ca,
        cert: access.cert,
        key: access.key,
        rejectUnauthorized: !access.insecureSkipTlsVerify,
      },
      headersTimeout: HEADERS_TIMEOUT_MS,
      // The reflector cuts a stalled watch itself (timeoutSeconds + grace).
      bodyTimeout: 0,
    });
  }

  /** The collection in one namespace, or in all of them. */
  resource<T extends KubeObject>(
    path: ResourcePath,
    namespace: string | undefined,
  ): ResourceApi<T> {
    const url =
      namespace === undefined
        ? `${path.prefix}/${path.plural}`
        : `${path.prefix}/namespaces/${encodeURIComponent(namespace)}/${path.plural}`;
    return {
      resource: path.resource,
      namespace,
      list: async (query: ListQuery, signal: AbortSignal) => {
        const params = new URLSearchParams({ limit: String(query.limit) });
        if (query.continue !== undefined) params.set("continue", query.continue);
        const body = await this.#get(`${url}?${params}`, signal);
        try {
          return (await body.json()) as KubeList<T>;
        } catch (error) {
          throw new KubeProtocolError(
            `${path.resource}: a list answer that is not JSON: ${(error as Error).message}`,
          );
        }
      },
      watch: async (query: WatchQuery, signal: AbortSignal) => {
        const params = new URLSearchParams({
          watch: "true",
          resourceVersion: query.resourceVersion,
          allowWatchBookmarks: "true",
          timeoutSeconds: String(query.timeoutSeconds),
        });
        return this.#get(`${url}?${params}`, signal);
      },
    };
  }

  close(): Promise<void> {
    return this.#agent.close();
  }

  async #get(pathAndQuery: string, signal: AbortSignal) {
    const token = await this.#access.token();
    const headers: Record<string, string> = { accept: "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    const answer = await request(`${this.#access.server}${pathAndQuery}`, {
      dispatcher: this.#agent,
      method: "GET",
      headers,
      signal,
    });
    if (answer.statusCode === 200) return answer.body;
    let status: KubeStatus | undefined;
    try {
      status = (await answer.body.json()) as KubeStatus;
    } catch {
      status = undefined;
    }
    if (answer.statusCode === 401) this.#access.tokenRejected();
    throw new KubeApiError(
      answer.statusCode,
      status,
      parseRetryAfter(answer.headers["retry-after"]),
    );
  }
}
