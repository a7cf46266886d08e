import type { Logger } from "../proxy/log.js";

/**
 * Events that may come by the thousand (refused connections, accept errors) logged at most once
 * per `intervalMs` per key, each line with the count since the previous one. The first event of
 * a quiet key is logged at once; later ones are counted and written by the next `note` or `flush`
 * after the interval (the overload timer flushes every second), so none is lost.
 */
export class RateLimitedLog {
  readonly #logger: Pick<Logger, "warn">;
  readonly #message: string;
  readonly #intervalMs: number;
  readonly #now: () => number;
  readonly #keys = new Map<
    string,
    { fields: Record<string, unknown>; count: number; at: number }
  >();

  constructor(
    logger: Pick<Logger, "warn">,
    message: string,
    options: { intervalMs?: number; now?: () => number } = {},
  ) {
    this.#logger = logger;
    this.#message = message;
    this.#intervalMs = options.intervalMs ?? 1000;
    this.#now = options.now ?? Date.now;
  }

  /** One event under `key`; `fields` (the first of the key's) go on every line of it. */
  note(key: string, fields: Record<string, unknown>): void {
    const now = this.#now();
    let entry = this.#keys.get(key);
    if (entry === undefined) {
      entry = { fields, count: 0, at: Number.NEGATIVE_INFINITY };
      this.#keys.set(key, entry);
    }
    entry.count++;
    if (now - entry.at >= this.#intervalMs) this.#write(entry, now);
  }

  /** Write the counts held back for longer than the interval; forget keys that went quiet. */
  flush(): void {
    const now = this.#now();
    for (const [key, entry] of this.#keys) {
      if (now - entry.at < this.#intervalMs) continue;
      if (entry.count > 0) this.#write(entry, now);
      else this.#keys.delete(key);
    }
  }

  #write(entry: { fields: Record<string, unknown>; count: number; at: number }, now: number): void {
    this.#logger.warn({ ...entry.fields, count: entry.count }, this.#message);
    entry.count = 0;
    entry.at = now;
  }
}
