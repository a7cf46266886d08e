/**
 * Config validation in a short-lived worker thread. The YAML parser and zod are needed only to
 * validate, so the long-lived proxy thread asks a worker, receives plain validated data, and
 * never loads them. This module imports neither (types only).
 */
import { Worker } from "node:worker_threads";
import { ConfigError, type ConfigIssue } from "./errors.js";
import type { QuickOptions } from "./quick.js";
import type { RemoraConfig, ServiceConfig } from "./schema.js";

export type ConfigJob =
  | { readonly kind: "file"; readonly path: string }
  | { readonly kind: "quick"; readonly options: QuickOptions }
  | { readonly kind: "services"; readonly text: string; readonly source: string };

export type WorkerReply =
  | { readonly ok: true; readonly value: unknown }
  | { readonly ok: false; readonly source: string; readonly issues: readonly ConfigIssue[] }
  | { readonly ok: false; readonly message: string };

/** A validated config and the settings a service gets when it names nothing but itself. */
export interface LoadedConfig {
  readonly config: RemoraConfig;
  readonly serviceDefaults: ServiceConfig;
  /** The file's text as validated (file jobs only): the config watch's starting point. */
  readonly text?: string;
}

const WORKER = new URL("./validate-worker.js", import.meta.url);

function inWorker<T>(job: ConfigJob): Promise<T> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER, { workerData: job });
    let settled = false;
    worker.once("message", (reply: WorkerReply) => {
      settled = true;
      if (reply.ok) resolve(reply.value as T);
      else if ("issues" in reply) reject(new ConfigError(reply.source, reply.issues));
      else reject(new Error(`config validation failed: ${reply.message}`));
    });
    worker.once("error", (error) => {
      settled = true;
      reject(error);
    });
    worker.once("exit", (code) => {
      if (!settled) reject(new Error(`config validation worker exited with code ${code}`));
    });
  });
}

/** `loadConfigFile` in a worker; rejects with ConfigError. */
export function loadConfig(path: string): Promise<LoadedConfig> {
  return inWorker({ kind: "file", path });
}

/** `quickConfig` in a worker; rejects with ConfigError. */
export function buildQuickConfig(options: QuickOptions): Promise<LoadedConfig> {
  return inWorker({ kind: "quick", options });
}

/** `parseServicesFile` in a worker (the discovery file source's parser). */
export function parseServicesText(text: string, source: string): Promise<ServiceConfig[]> {
  return inWorker({ kind: "services", text, source });
}
