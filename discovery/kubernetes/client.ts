import { Agent, type Dispatcher, request } from "undici";
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
      watch: async (query: WatchQuery, signal: AbortSignal, onChunk: (chunk: Buffer) => void) => {
        const params = new URLSearchParams({
          watch: "true",
          resourceVersion: query.resourceVersion,
          allowWatchBookmarks: "true",
          timeoutSeconds: String(query.timeoutSeconds),
        });
        const target = new URL(`${this.#access.server}${url}?${params}`);
        const headers = await this.#headers();
        signal.throwIfAborted();
        await new Promise<void>((resolve, reject) => {
          const handler = new WatchHandler(
            signal,
            onChunk,
            resolve,
            reject,
            (status, body, retryAfter) => this.#apiError(status, body, retryAfter),
          );
          this.#agent.dispatch(
            {
              origin: target.origin,
              path: `${target.pathname}${target.search}`,
              method: "GET",
              headers,
            },
            handler,
          );
        });
      },
    };
  }

  close(): Promise<void> {
    return this.#agent.close();
  }

  async #headers(): Promise<Record<string, string>> {
    const token = await this.#access.token();
    const headers: Record<string, string> = { accept: "application/json" };
    if (token) headers.authorization = `Bearer ${token}`;
    return headers;
  }

  async #get(pathAndQuery: string, signal: AbortSignal) {
    const answer = await request(`${this.#access.server}${pathAndQuery}`, {
      dispatcher: this.#agent,
      method: "GET",
      headers: await this.#headers(),
      signal,
    });
    if (answer.statusCode === 200) return answer.body;
    const body = await answer.body.text().catch(() => "");
    throw this.#apiError(answer.statusCode, body, answer.headers["retry-after"]);
  }

  /** An error answer as KubeApiError, its Status read from the body; a 401 drops the token. */
  #apiError(statusCode: number, body: string, retryAfter: string | string[] | undefined) {
    let status: KubeStatus | undefined;
    try {
      status = JSON.parse(body) as KubeStatus;
    } catch {
      status = undefined;
    }
    if (statusCode === 401) this.#access.tokenRejected();
    return new KubeApiError(statusCode, status, parseRetryAfter(retryAfter));
  }
}

/** At most this much of an error answer's body is read for its Status. */
const MAX_ERROR_BODY = 64 * 1024;

/**
 * One watch request as an undici dispatch handler: a 200's body goes to `onChunk` chunk by
 * chunk, synchronously, as it is read (no stream or async iterator between the socket and the
 * reflector: a busy cluster sends hundreds of events a second, each in its own chunk). Settles
 * once: resolved when the body ends; rejected with what `onChunk` threw (the request is
 * aborted), with KubeApiError for any other status (its Status body read), or with the
 * network error or the signal's reason.
 */
class WatchHandler implements Dispatcher.DispatchHandler {
  readonly #signal: AbortSignal;
  readonly #onChunk: (chunk: Buffer) => void;
  readonly #resolve: () => void;
  readonly #reject: (error: unknown) => void;
  readonly #apiError: (
    status: number,
    body: string,
    retryAfter: string | string[] | undefined,
  ) => KubeApiError;
  readonly #onAbort = () => this.#abort(this.#signal.reason);
  #controller: Dispatcher.DispatchController | undefined;
  #status = 0;
  #retryAfter: string | string[] | undefined;
  #errorBody: Buffer[] = [];
  #errorBytes = 0;
  #settled = false;

  constructor(
    signal: AbortSignal,
    onChunk: (chunk: Buffer) => void,
    resolve: () => void,
    reject: (error: unknown) => void,
    apiError: (
      status: number,
      body: string,
      retryAfter: string | string[] | undefined,
    ) => KubeApiError,
  ) {
    this.#signal = signal;
    this.#onChunk = onChunk;
    this.#resolve = resolve;
    this.#reject = reject;
    this.#apiError = apiError;
    signal.addEventListener("abort", this.#onAbort, { once: true });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#signal.aborted) this.#abort(this.#signal.reason);
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    this.#status = statusCode;
    this.#retryAfter = headers["retry-after"];
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#settled) return;
    if (this.#status !== 200) {
      if (this.#errorBytes < MAX_ERROR_BODY) {
        this.#errorBody.push(chunk);
        this.#errorBytes += chunk.length;
      }
      return;
    }
    try {
      this.#onChunk(chunk);
    } catch (error) {
      this.#settle(error);
      controller.abort(error as Error);
    }
  }

  onResponseEnd(): void {
    if (this.#status === 200) {
      this.#settle(undefined);
      return;
    }
    const body = Buffer.concat(this.#errorBody).toString("utf8");
    this.#settle(this.#apiError(this.#status, body, this.#retryAfter));
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.#settle(error);
  }

  #abort(reason: unknown): void {
    this.#settle(reason ?? new Error("watch aborted"));
    this.#controller?.abort(reason as Error);
  }

  /** undefined = the body ended. */
  #settle(error: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#signal.removeEventListener("abort", this.#onAbort);
    this.#errorBody = [];
    if (error === undefined) this.#resolve();
    else this.#reject(error);
  }
}
