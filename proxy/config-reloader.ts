import { type LoadedConfig, loadConfig } from "./config/isolated.js";
import { WatchedFile } from "./config/watched-file.js";
import type { Logger } from "./log.js";
import { type ReloadOutcome, reloadFailed } from "./reload.js";
import type { ReloadStatus } from "./runtime.js";

/** What asked for a reload; logged with it. */
export type ReloadTrigger = "file change" | "SIGHUP" | "POST /reload";

/** The running proxy as the reloader sees it (Runtime). */
export interface Reloadable {
  readonly reloads: ReloadStatus;
  reload(loaded: LoadedConfig): Promise<ReloadOutcome>;
}

export interface ConfigReloaderOptions {
  readonly logger: Logger;
  /** Quiet period after the last file event before reading (editors write in several steps). */
  readonly debounceMs?: number;
  /** Validates the file; the proxy uses the worker-thread loader (tests may inject one). */
  readonly load?: (path: string) => Promise<LoadedConfig>;
}

/**
 * `remora run -c FILE`'s reloads: the file is watched (see WatchedFile for editors' renames and
 * ConfigMap symlink swaps), and SIGHUP and POST /reload ask explicitly. Each attempt validates
 * the file in the config worker; an invalid file is logged with every issue and counted, and the
 * running config stays. Attempts run one at a time, in the order asked.
 */
export class ConfigReloader {
  readonly path: string;
  readonly #target: Reloadable;
  readonly #logger: Logger;
  readonly #load: (path: string) => Promise<LoadedConfig>;
  readonly #file: WatchedFile;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(target: Reloadable, path: string, options: ConfigReloaderOptions) {
    this.#target = target;
    this.#logger = options.logger;
    this.#load = options.load ?? loadConfig;
    this.#file = new WatchedFile(path, async () => void (await this.reload("file change")), {
      debounceMs: options.debounceMs,
      onUnreadable: (error) => {
        this.#logger.warn({ err: error, path: this.path }, "config file unreadable; waiting");
      },
      onWatchError: (error, directory) => {
        this.#logger.warn(
          { err: error, directory },
          "config file watch failed; SIGHUP and POST /reload still reload",
        );
      },
    });
    this.path = this.#file.path;
  }

  /**
   * Watch the file. `knownText`: the text the running config was loaded from, so only a real
   * change triggers a reload; a change made since then is picked up by one immediate read.
   */
  start(knownText?: string): void {
    try {
      this.#file.start(knownText);
    } catch (error) {
      this.#logger.warn(
        { err: error, path: this.path },
        "cannot watch the config file; SIGHUP and POST /reload still reload",
      );
      return;
    }
    if (knownText !== undefined) this.#file.check();
    this.#logger.info({ path: this.path }, "watching config file");
  }

  stop(): void {
    this.#file.stop();
  }

  /** Validate and apply the file now (after any attempt already running). Never rejects. */
  reload(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    const attempt = this.#queue.then(() => this.#attempt(trigger));
    this.#queue = attempt;
    return attempt;
  }

  async #attempt(trigger: ReloadTrigger): Promise<ReloadOutcome> {
    this.#logger.info({ trigger, path: this.path }, "reloading config");
    const target = { reloads: this.#target.reloads, logger: this.#logger };
    let loaded: LoadedConfig;
    try {
      loaded = await this.#load(this.path);
    } catch (error) {
      return reloadFailed(target, error);
    }
    try {
      return await this.#target.reload(loaded);
    } catch (error) {
      // applyReload reports expected failures itself; this is a bug, but not a reason to exit.
      return reloadFailed(target, error);
    }
  }
}
