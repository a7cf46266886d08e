/**
 * Config validation in a short-lived child process. The YAML parser and zod are needed only to
 * validate, so the long-lived proxy process asks a child, receives plain validated data, and never
 * loads them. This module imports neither (types only).
 *
 * A child process, not a worker thread: on Node 24 a worker thread that has exited leaves ~28 MB
 * resident in the process (measured here: RSS 43 -> 72 MB after one worker that loaded yaml and
 * zod, against 42 -> 50 MB on Node 20), which put an idle remora at 95 MB. A child's memory goes
 * back to the system when it exits; it costs a Node.js start (~50 ms) per config load or reload.
 */
import { fork } from "node:child_process";
import { ConfigError, type ConfigIssue } from "./errors.js";
import type { QuickOptions } from "./quick.js";
import type { RemoraConfig, ServiceConfig } from "./schema.js";
import type { TlsFlags } from "./tls-flags.js";

export type ConfigJob =
  | { readonly kind: "file"; readonly path: string; readonly flags?: TlsFlags }
  | { readonly kind: "quick"; readonly options: QuickOptions }
  | { readonly kind: "services"; readonly text: string; readonly source: string }
  | {
      readonly kind: "overlay";
      readonly base: Record<string, unknown>;
      readonly path: string | undefined;
    };

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
    // No inherited execArgv (--inspect would collide on its port); stdout and stderr are shared
    // so a crash in the child is visible. "advanced" serialization keeps Maps and undefined.
    const child = fork(WORKER, [], {
      execArgv: [],
      serialization: "advanced",
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    let settled = false;
    child.once("message", (reply: WorkerReply) => {
      settled = true;
      if (reply.ok) resolve(reply.value as T);
      else if ("issues" in reply) reject(new ConfigError(reply.source, reply.issues));
      else reject(new Error(`config validation failed: ${reply.message}`));
    });
    child.once("error", (error) => {
      if (settled) return;
      settled = true;
      reject(error);
    });
    child.once("exit", (code, signal) => {
      if (!settled) reject(new Error(`config validation process exited with ${signal ?? code}`));
    });
    child.send(job);
  });
}

/**
 * `loadConfigFile` in a child process; rejects with ConfigError. `flags`: `--dev-mtls` and
 * `--state-dir` (tls-flags.ts), applied to every load of the file, reloads included.
 */
export function loadConfig(path: string, flags?: TlsFlags): Promise<LoadedConfig> {
  return inWorker({ kind: "file", path, flags });
}

/** `quickConfig` in a child process; rejects with ConfigError. */
export function buildQuickConfig(options: QuickOptions): Promise<LoadedConfig> {
  return inWorker({ kind: "quick", options });
}

/** A generated config with a YAML file merged over it (overlay.ts), in a child process. */
export function loadOverlaidConfig(
  base: Record<string, unknown>,
  path: string | undefined,
): Promise<LoadedConfig> {
  return inWorker({ kind: "overlay", base, path });
}

/** `parseServicesFile` in a child process (the discovery file source's parser). */
export function parseServicesText(text: string, source: string): Promise<ServiceConfig[]> {
  return inWorker({ kind: "services", text, source });
}
