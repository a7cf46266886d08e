import { type FSWatcher, realpathSync, watch } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";

export interface WatchedFileOptions {
  /** Quiet period after the last event before re-reading; editors write in several steps. */
  readonly debounceMs?: number;
  /** The file could not be read after it had been (reported once until it reads again). */
  readonly onUnreadable?: (error: Error) => void;
  /** A directory watch failed; the others (and SIGHUP-style triggers) keep working. */
  readonly onWatchError?: (error: Error, directory: string) => void;
}

/**
 * Calls `onChange` with a file's text whenever that text changes.
 *
 * Directories are watched, not the file: editors save by writing a temporary file and renaming
 * it over the old one, and Kubernetes ConfigMap volumes swap a `..data` symlink, so a watch on
 * the file itself goes deaf after the first such save. The file's own directory is watched, and
 * also the directory it resolves to when it is a symlink (re-resolved after every read), since
 * a save through the link raises events only there. Any event triggers a debounced re-read;
 * text identical to the last read is ignored, so events for other files in the directory cost
 * one read. Reads are serialised: changes seen during one cause one more pass after it.
 */
export class WatchedFile {
  readonly path: string;
  readonly #onChange: (text: string) => void | Promise<void>;
  readonly #debounceMs: number;
  readonly #onUnreadable: (error: Error) => void;
  readonly #onWatchError: (error: Error, directory: string) => void;
  readonly #watchers = new Map<string, FSWatcher>();
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  /** Text of the last read; undefined after a failed read, so the next text counts as new. */
  #lastText: string | undefined;
  #reading = false;
  #readAgain = false;

  constructor(
    path: string,
    onChange: (text: string) => void | Promise<void>,
    options: WatchedFileOptions = {},
  ) {
    this.path = resolve(path);
    this.#onChange = onChange;
    this.#debounceMs = options.debounceMs ?? 100;
    this.#onUnreadable = options.onUnreadable ?? (() => {});
    this.#onWatchError = options.onWatchError ?? (() => {});
  }

  /**
   * Start watching. `knownText` is the text the caller has already acted on (the same text read
   * later is not a change); without it the first read after an event always counts. Throws if
   * the file's directory cannot be watched.
   */
  start(knownText?: string): void {
    this.#lastText = knownText;
    this.#watch(dirname(this.path), true);
    this.#followLink();
  }

  /** Read now, as if an event had arrived (a change made before the watch began). */
  check(): void {
    this.#schedule();
  }

  stop(): void {
    this.#stopped = true;
    for (const watcher of this.#watchers.values()) watcher.close();
    this.#watchers.clear();
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #watch(directory: string, required: boolean): void {
    if (this.#watchers.has(directory)) return;
    let watcher: FSWatcher;
    try {
      watcher = watch(directory, { persistent: false }, () => this.#schedule());
    } catch (error) {
      if (required) throw error;
      return;
    }
    watcher.on("error", (error) => this.#onWatchError(error, directory));
    this.#watchers.set(directory, watcher);
  }

  /** Also watch where a symlinked file really lives; stop watching where it used to. */
  #followLink(): void {
    const own = dirname(this.path);
    let target: string;
    try {
      target = dirname(realpathSync(this.path));
    } catch {
      return; // missing right now (mid-rename): keep what is watched
    }
    for (const [directory, watcher] of this.#watchers) {
      if (directory !== own && directory !== target) {
        watcher.close();
        this.#watchers.delete(directory);
      }
    }
    if (target !== own) this.#watch(target, false);
  }

  #schedule(): void {
    if (this.#stopped) return;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#read(), this.#debounceMs);
  }

  async #read(): Promise<void> {
    if (this.#reading) {
      this.#readAgain = true;
      return;
    }
    this.#reading = true;
    try {
      do {
        this.#readAgain = false;
        await this.#readOnce();
      } while (this.#readAgain && !this.#stopped);
    } finally {
      this.#reading = false;
    }
  }

  async #readOnce(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (error) {
      // Mid-rename the file may briefly be missing: report once, re-read whatever comes next.
      if (!this.#stopped && this.#lastText !== undefined) this.#onUnreadable(error as Error);
      this.#lastText = undefined;
      return;
    }
    if (this.#stopped) return;
    this.#followLink();
    if (text === this.#lastText) return;
    this.#lastText = text;
    await this.#onChange(text);
  }
}
