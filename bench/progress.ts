/**
 * The progress bar on stderr: how far through the planned load-seconds the run is, what is
 * running, and the live request rate. On a terminal it redraws one line; otherwise (CI logs,
 * redirected stderr) it prints a line per step.
 */

export class Progress {
  readonly #totalSec: number;
  readonly #tty: boolean;
  #doneSec = 0;
  #stepSec = 0;
  #stepStarted = 0;
  #label = "";
  #rate = "";
  #timer: NodeJS.Timeout | undefined;

  /** `totalSec`: the load-seconds the whole run is planned to take. */
  constructor(totalSec: number) {
    this.#totalSec = Math.max(1, totalSec);
    this.#tty = process.stderr.isTTY === true;
  }

  /** A step of `seconds` of load begins. */
  begin(label: string, seconds: number): void {
    this.#label = label;
    this.#stepSec = seconds;
    this.#stepStarted = Date.now();
    this.#rate = "";
    if (this.#tty) {
      this.#timer ??= setInterval(() => this.#draw(), 250);
      this.#draw();
    } else {
      process.stderr.write(`${this.#percent()} ${label}\n`);
    }
  }

  /** Responses completed in the last second of the current step. */
  tick(responsesPerSec: number): void {
    // autocannon's closing tick reports an empty last interval; keep showing the real rate.
    if (responsesPerSec === 0 && this.#rate !== "") return;
    this.#rate = `${Math.round(responsesPerSec).toLocaleString("en-US")} req/s`;
  }

  /** The current step ended; `summary` is shown after it when not on a terminal. */
  end(summary = ""): void {
    this.#doneSec += this.#stepSec;
    this.#stepSec = 0;
    if (!this.#tty && summary !== "") process.stderr.write(`      ${this.#label}: ${summary}\n`);
  }

  /** A message that must not be overwritten (skips, failures). */
  note(message: string): void {
    if (this.#tty) process.stderr.write("\r\x1b[2K");
    process.stderr.write(`${message}\n`);
    if (this.#tty && this.#timer !== undefined) this.#draw();
  }

  finish(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#tty) process.stderr.write("\r\x1b[2K");
  }

  #elapsedSec(): number {
    const inStep = Math.min(this.#stepSec, (Date.now() - this.#stepStarted) / 1000);
    return Math.min(this.#totalSec, this.#doneSec + (this.#stepSec > 0 ? inStep : 0));
  }

  #percent(): string {
    return `${String(Math.floor((this.#elapsedSec() / this.#totalSec) * 100)).padStart(3)}%`;
  }

  #draw(): void {
    const width = 28;
    const filled = Math.round((this.#elapsedSec() / this.#totalSec) * width);
    const bar = `${"█".repeat(filled)}${"░".repeat(width - filled)}`;
    const left = Math.max(0, Math.round(this.#totalSec - this.#elapsedSec()));
    const eta =
      left >= 60 ? `${Math.floor(left / 60)}m${String(left % 60).padStart(2, "0")}s` : `${left}s`;
    const cols = process.stderr.columns ?? 120;
    const line = `${bar} ${this.#percent()} ~${eta} left · ${this.#label}${this.#rate ? ` · ${this.#rate}` : ""}`;
    process.stderr.write(`\r\x1b[2K${line.slice(0, cols - 1)}`);
  }
}
