import { type FSWatcher, watch } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { ConfigError } from "../proxy/config/errors.js";
import type { ServiceConfig } from "../proxy/config/schema.js";
import type { ServiceRegistry } from "./registry.js";
import { serviceEndpoints } from "./static-source.js";

/** The one logger method this source needs; a pino logger fits. */
export interface WarnLogger {
  warn(obj: object, msg: string): void;
}

export interface FileSourceOptions {
  readonly logger?: WarnLogger;
  /**
   * Validates the file's text. The proxy passes config/isolated.ts's parseServicesText (a
   * worker thread, so the proxy never loads the YAML and schema libraries); by default the
   * same validation runs in-process, loaded on first use.
   */
  readonly parse?: (text: string, source: string) => ServiceConfig[] | Promise<ServiceConfig[]>;
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

/**
 * Services from a YAML file (top-level `services:`, the config's own service schema), re-read
 * whenever it changes. Only endpoints are published: traffic policy stays with the config file.
 *
 * The directory is watched rather than the file, because editors save by writing a new file and
 * renaming it over the old one, and Kubernetes ConfigMap volumes swap a `..data` symlink; a watch
 * on the file itself would go deaf after the first such save. Any event in the directory triggers
 * a debounced re-read, and an unchanged file is ignored.
 *
 * A file that fails to read or validate after a successful start is logged and ignored: the last
 * good endpoints stay published and the source stays synced.
 */
export class FileSource {
  readonly id: string;
  readonly #registry: ServiceRegistry;
  readonly #path: string;
  readonly #logger: WarnLogger;
  readonly #debounceMs: number;
  readonly #parse: (text: string, source: string) => ServiceConfig[] | Promise<ServiceConfig[]>;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Text of the last read (good or bad): identical text is neither re-applied nor re-reported. */
  #lastText: string | undefined;
  #reloading = false;
  #reloadAgain = false;

  constructor(registry: ServiceRegistry, path: string, opts: FileSourceOptions = {}) {
    this.#registry = registry;
    this.#path = resolve(path);
    this.#logger = opts.logger ?? stderrLogger;
    this.#debounceMs = opts.debounceMs ?? 100;
    this.#parse = opts.parse ?? parseInProcess;
    this.id = `file:${this.#path}`;
    registry.registerSource(this.id);
  }

  /** First read and publish; rejects (ConfigError) if the file is missing or invalid. */
  async start(): Promise<void> {
    // Watch before the first read so a change made in between is not missed.
    try {
      this.#watcher = watch(dirname(this.#path), { persistent: false }, () => this.#schedule());
    } catch (error) {
      throw new ConfigError(this.#path, [
        { path: "", message: `cannot watch: ${(error as Error).message}` },
      ]);
    }
    this.#watcher.on("error", (error) => {
      this.#logger.warn(
        { err: error, path: this.#path },
        "discovery file watch failed; keeping the last good endpoints",
      );
    });
    try {
      const text = await this.#read();
      const services = await this.#parse(text, this.#path);
      this.#lastText = text;
      this.#registry.apply(this.id, { kind: "reset", services: serviceEndpoints(services) });
      this.#registry.markSynced(this.id);
    } catch (error) {
      this.stop();
      throw error;
    }
  }

  /** Stop watching. What the file contributed stays published (see ServiceRegistry.removeSource). */
  stop(): void {
    this.#stopped = true;
    this.#watcher?.close();
    this.#watcher = undefined;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #read(): Promise<string> {
    try {
      return await readFile(this.#path, "utf8");
    } catch (error) {
      throw new ConfigError(this.#path, [
        { path: "", message: `cannot read: ${(error as Error).message}` },
      ]);
    }
  }

  #schedule(): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#reload(), this.#debounceMs);
  }

  /** One reload at a time; changes seen meanwhile cause one more pass afterwards. */
  async #reload(): Promise<void> {
    if (this.#reloading) {
      this.#reloadAgain = true;
      return;
    }
    this.#reloading = true;
    try {
      do {
        this.#reloadAgain = false;
        await this.#reloadOnce();
      } while (this.#reloadAgain && !this.#stopped);
    } finally {
      this.#reloading = false;
    }
  }

  async #reloadOnce(): Promise<void> {
    let text: string;
    try {
      text = await this.#read();
    } catch (error) {
      // Mid-rename the file may briefly be missing; warn once, and re-read whatever comes next.
      if (!this.#stopped && this.#lastText !== undefined) {
        this.#logger.warn(
          { err: error, path: this.#path },
          "discovery file unreadable; keeping the last good endpoints",
        );
      }
      this.#lastText = undefined;
      return;
    }
    if (this.#stopped || text === this.#lastText) return;
    this.#lastText = text;
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
    try {
      this.#registry.apply(this.id, { kind: "reset", services: serviceEndpoints(services) });
    } catch (error) {
      // The registry is updated; a subscriber threw. Nothing awaits this timer-driven reload, so
      // report it here rather than as an unhandled rejection.
      this.#logger.warn({ err: error, path: this.#path }, "a registry subscriber failed");
    }
  }
}
