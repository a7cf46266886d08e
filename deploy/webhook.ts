/**
 * `remora webhook`: the mutating admission webhook. The API server POSTs an AdmissionReview
 * (admission.k8s.io/v1) for each pod created in a namespace labelled `remora-injection: enabled`
 * (the MutatingWebhookConfiguration's namespaceSelector, deploy/manifests.ts); the answer is the
 * JSONPatch from that pod to what `remora inject` makes of it (deploy/inject.ts, json-patch.ts).
 *
 * Failing open: a review whose pod cannot be injected (a bad annotation, no spec) is allowed
 * unchanged with a warning the user sees in kubectl, logged and counted; so is anything that
 * throws. Only a body that is not an AdmissionReview at all is refused (400): it has no uid to
 * answer, and the configuration's failurePolicy: Ignore admits the pod anyway.
 */
import { readFile } from "node:fs/promises";
import type { Server as HttpServer, IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import { Counter, Registry } from "prom-client";
import { closeServer, listenOn } from "../proxy/control-http.js";
import { createLogger, type Logger } from "../proxy/log.js";
import { injectPod, isObject, type JsonObject } from "./inject.js";
import { diff } from "./json-patch.js";
import type { InjectOptions } from "./sidecar-template.js";

/** Kubernetes caps a request at 3 MiB; a review carries the object (and oldObject) once more. */
export const MAX_REVIEW_BYTES = 8 * 1024 * 1024;

export type ReviewOutcome = "injected" | "skipped" | "failed_open";

export interface ReviewAnswer {
  /** The AdmissionReview to send back. */
  readonly review: JsonObject;
  readonly outcome: ReviewOutcome;
  /** Why it was skipped or failed open. */
  readonly reason?: string;
}

/** A body that is not an AdmissionReview v1 with a request and a uid. */
export class BadReviewError extends Error {
  override readonly name = "BadReviewError";
  readonly code = "REMORA_ERR_ADMISSION_REVIEW";
}

/** Answers one AdmissionReview; throws BadReviewError only when there is no uid to answer. */
export function answerReview(body: unknown, options: InjectOptions): ReviewAnswer {
  if (!isObject(body) || body.kind !== "AdmissionReview") {
    throw new BadReviewError('expected a JSON object with kind "AdmissionReview"');
  }
  if (body.apiVersion !== "admission.k8s.io/v1") {
    throw new BadReviewError(
      `apiVersion ${JSON.stringify(body.apiVersion)}: only admission.k8s.io/v1 is served (set admissionReviewVersions: ["v1"])`,
    );
  }
  const request = body.request;
  if (!isObject(request) || typeof request.uid !== "string" || request.uid === "") {
    throw new BadReviewError("request.uid missing");
  }
  const uid = request.uid;
  const allow = (
    outcome: ReviewOutcome,
    reason?: string,
    extra: JsonObject = {},
  ): ReviewAnswer => ({
    review: {
      apiVersion: "admission.k8s.io/v1",
      kind: "AdmissionReview",
      response: { uid, allowed: true, ...extra },
    },
    outcome,
    reason,
  });
  const kind = isObject(request.kind) ? request.kind : {};
  if (kind.kind !== "Pod" || (kind.group ?? "") !== "" || request.subResource) {
    return allow("skipped", `not a pod: ${JSON.stringify(request.kind)}`);
  }
  if (request.operation !== "CREATE") return allow("skipped", `operation ${request.operation}`);
  const pod = request.object;
  const name =
    isObject(pod) && isObject(pod.metadata)
      ? (pod.metadata.name ?? pod.metadata.generateName)
      : undefined;
  const where = `Pod ${String(request.namespace ?? "default")}/${String(name ?? "?")}`;
  try {
    if (!isObject(pod) || !isObject(pod.spec) || !Array.isArray(pod.spec.containers)) {
      throw new Error("the object is not a pod with spec.containers");
    }
    const { template, outcome } = injectPod(pod, options, where);
    const warnings = outcome.warnings.length > 0 ? { warnings: [...outcome.warnings] } : {};
    if (!outcome.injected) return allow("skipped", outcome.reason, warnings);
    const patch = Buffer.from(JSON.stringify(diff(pod, template))).toString("base64");
    return allow("injected", undefined, { patchType: "JSONPatch", patch, ...warnings });
  } catch (error) {
    const reason = `${where}: not injected: ${(error as Error).message}`;
    return allow("failed_open", reason, { warnings: [`remora: ${reason}`] });
  }
}

export interface WebhookOptions {
  readonly certFile: string;
  readonly keyFile: string;
  readonly port: number;
  readonly address: string;
  readonly inject: InjectOptions;
  readonly logLevel?: string;
}

/** The running webhook: its bound port and a way to stop it (tests; the CLI stops on signals). */
export interface RunningWebhook {
  readonly port: number;
  close(): Promise<void>;
}

export async function startWebhook(options: WebhookOptions): Promise<RunningWebhook> {
  const logger = createLogger(options.logLevel);
  const [cert, key] = await Promise.all([
    readFile(options.certFile, "utf8"),
    readFile(options.keyFile, "utf8"),
  ]);
  const registry = new Registry();
  const reviews = new Counter({
    name: "remora_webhook_reviews_total",
    help: "AdmissionReviews answered, by outcome: injected, skipped (not a pod, not CREATE, opted out, already injected, hostNetwork), failed_open (admitted unchanged because injection failed), rejected (not an AdmissionReview: 400)",
    labelNames: ["outcome"],
    registers: [registry],
  });
  for (const outcome of ["injected", "skipped", "failed_open", "rejected"])
    reviews.inc({ outcome }, 0);
  const handler = new WebhookHandler(options.inject, logger, reviews, registry);
  const server: Server = createServer({ cert, key }, handler.handle);
  // https.Server has the listen/close/closeAllConnections that the helpers use from http.Server.
  const port = await listenOn(server as unknown as HttpServer, options.address, options.port);
  logger.info(
    { address: options.address, port, nativeSidecar: options.inject.nativeSidecar },
    "webhook listening",
  );
  const close = async (): Promise<void> => {
    await closeServer(server as unknown as HttpServer);
    logger.flush();
  };
  const stop = (signal: string) => {
    logger.info({ signal }, "webhook stopping");
    void close().then(() => process.exit(0));
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));
  return { port, close };
}

class WebhookHandler {
  readonly #options: InjectOptions;
  readonly #logger: Logger;
  readonly #reviews: Counter<"outcome">;
  readonly #registry: Registry;

  constructor(
    options: InjectOptions,
    logger: Logger,
    reviews: Counter<"outcome">,
    registry: Registry,
  ) {
    this.#options = options;
    this.#logger = logger;
    this.#reviews = reviews;
    this.#registry = registry;
  }

  handle = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method === "GET" && path === "/healthz") reply(res, 200, "text/plain", "ok\n");
    else if (req.method === "GET" && path === "/metrics") {
      void this.#registry
        .metrics()
        .then((text) => reply(res, 200, this.#registry.contentType, text));
    } else if (path !== "/inject") reply(res, 404, "text/plain", "not found; POST /inject\n");
    else if (req.method !== "POST") reply(res, 405, "text/plain", "method not allowed\n");
    else void this.#review(req, res);
  };

  async #review(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body: unknown;
    try {
      body = JSON.parse(await readBody(req));
      const answer = answerReview(body, this.#options);
      this.#reviews.inc({ outcome: answer.outcome });
      const uid = (answer.review.response as JsonObject).uid;
      if (answer.outcome === "failed_open")
        this.#logger.warn({ uid, reason: answer.reason }, "admitted without injection");
      else
        this.#logger.info(
          { uid, outcome: answer.outcome, reason: answer.reason },
          "review answered",
        );
      reply(res, 200, "application/json", JSON.stringify(answer.review));
    } catch (error) {
      this.#reviews.inc({ outcome: "rejected" });
      const message =
        error instanceof SyntaxError
          ? `body is not JSON: ${error.message}`
          : (error as Error).message;
      this.#logger.error({ err: message }, "bad admission review");
      reply(res, (error as { status?: number }).status ?? 400, "text/plain", `${message}\n`);
    }
  }
}

function reply(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(body) });
  res.end(body);
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REVIEW_BYTES) {
        reject(Object.assign(new Error(`body over ${MAX_REVIEW_BYTES} bytes`), { status: 413 }));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}
