import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { ConfigError } from "../proxy/config/errors.js";
import type { ServiceConfig } from "../proxy/config/schema.js";
import { WatchedFile } from "../proxy/config/watched-file.js";
import type { ServiceRegistry } from "./registry.js";
import { serviceEndpoints } from "./static-source.js";

/** The one logger method this source needs; a pino logger fits. */
export interface WarnLogger {
  warn(obj: object, msg: string): void;
}

/** Validates a discovery file's text; `source` names it in errors. */
export type ServicesParser = (
  text: string,
  source: string,
) => ServiceConfig[] | Promise<ServiceConfig[]>;

export interface FileSourceOptions {
  readonly logger?: WarnLogger;
  /**
   * Validates the file's text. The proxy passes config/isolated.ts's parseServicesText (a
   * worker thread, so the proxy never loads the YAML and schema libraries); by default the
   * same validation runs in-process, loaded on first use.
   */
  readonly parse?: ServicesParser;
  /** Quiet period after the last change before re-reading; editors write in several steps. */
  readonly debounceMs?: number;
}

async function parseInProcess(text: string, source: string): Promise<ServiceConfig[]> {
  const { parseServicesFile } = await import("../proxy/config/load.js");
  return parseServicesFile(text, source);
}

const stderrLogger: WarnLogger = {
  warn: (obj, msg) => console.warn(msg, obj),
};

/** A discovery file's text and the services it validated to. */
export interface ServicesFileContents {
  readonly text: string;
  readonly services: ServiceConfig[];
}

/** Read and validate a discovery file without publishing it; rejects with ConfigError. */
export async function readServicesFile(
  path: string,
  parse: ServicesParser = parseInProcess,
): Promise<ServicesFileContents> {
  const absolute = resolve(path);
  const text = await readText(absolute);
  return { text, services: await parse(text, absolute) };
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    throw new ConfigError(path, [
      { path: "", message: `cannot read: ${(error as Error).message}` },
    ]);
  }
}

/**
 * Services from a YAML file (top-level `services:`, the config's own service schema), re-read
 * whenever it changes. Only endpoints are published: traffic policy stays with the config file.
 *
 * Watching follows editors' write-then-rename saves and Kubernetes ConfigMap symlink swaps, and
 * ignores unchanged text (see WatchedFile).
 *
 * A file that fails to read or validate after a successful start is logged and ignored: the last
 * good endpoints stay published and the source stays synced.
 */
export class FileSource {
  readonly id: string;
  readonly #registry: ServiceRegistry;
  readonly #path: string;
  readonly #logger: WarnLogger;
  readonly #parse: ServicesParser;
  readonly #file: WatchedFile;
  #stopped = false;

  constructor(registry: ServiceRegistry, path: string, opts: FileSourceOptions = {}) {
    this.#registry = registry;
    this.#path = resolve(path);
    this.#logger = opts.logger ?? stderrLogger;
    this.#parse = opts.parse ?? parseInProcess;
    this.#file = new WatchedFile(this.#path, this.#onText, {
      debounceMs: opts.debounceMs,
      onUnreadable: (error) => {
        this.#logger.warn(
          { err: error, path: this.#path },
          "discovery file unreadable; keeping the last good endpoints",
        );
      },
      onWatchError: (error) => {
        this.#logger.warn(
          { err: error, path: this.#path },
          "discovery file watch failed; keeping the last good endpoints",
        );
      },
    });
    this.id = `file:${this.#path}`;
    registry.registerSource(this.id);
  }

  /** First read and publish; rejects (ConfigError) if the file is missing or invalid. */
  async start(): Promise<void> {
    this.startFrom(await readServicesFile(this.#path, this.#parse));
  }

  /**
   * Start from contents the caller has already read and validated with readServicesFile (a
   * config reload checks a new discovery file before it commits anything): published and synced
   * before this returns. The file is read once more after the watch begins, since a change made
   * before that raised no event. Throws ConfigError if the directory cannot be watched.
   */
  startFrom(contents: ServicesFileContents): void {
    try {
      this.#file.start(contents.text);
    } catch (error) {
      throw new ConfigError(this.#path, [
        { path: "", message: `cannot watch: ${(error as Error).message}` },
      ]);
    }
    this.#registry.apply(this.id, { kind: "reset", services: serviceEndpoints(contents.services) });
    this.#registry.markSynced(this.id);
    this.#file.check();
  }

  /** Stop watching. What the file contributed stays published (see ServiceRegistry.removeSource). */
  stop(): void {
    this.#stopped = true;
    this.#file.stop();
  }

  /** New text (identical text never gets here): validate, then publish or keep the last good. */
  #onText = async (text: string): Promise<void> => {
    let services: ServiceConfig[];
    try {
      services = await this.#parse(text, this.#path);
    } catch (error) {
      this.#logger.warn(
        { err: error, path: this.#path },
        "discovery file rejected; keeping the last good endpoints",
      );
      return;
    }
    if (this.#stopped) return;
    try {
      this.#registry.apply(this.id, { kind: "reset", services: serviceEndpoints(services) });
    } catch (error) {
      // The registry is updated; a subscriber threw. Nothing awaits this watch-driven read, so
      // report it here rather than as an unhandled rejection.
      this.#logger.warn({ err: error, path: this.#path }, "a registry subscriber failed");
    }
  };
}
