/**
 * The heap threshold as a state with hysteresis: entered when a sample reaches `thresholdBytes`,
 * left only when one falls below RECOVER_FRACTION of it, so a heap hovering at the line does not
 * flip the state (and its log lines) every second. Pure: samples come from the caller's timer.
 */
export const RECOVER_FRACTION = 0.95;

export type HeapTransition = "entered" | "left" | undefined;

export class HeapPressure {
  #threshold: number;
  #active = false;

  /** `thresholdBytes` 0 or less: never active. */
  constructor(thresholdBytes: number) {
    this.#threshold = thresholdBytes;
  }

  get active(): boolean {
    return this.#active;
  }

  get thresholdBytes(): number {
    return this.#threshold;
  }

  /** A new threshold (reload); the state is re-decided by the next sample. */
  setThreshold(bytes: number): void {
    this.#threshold = bytes;
  }

  /** Feed one sample; says whether the state changed. */
  sample(usedBytes: number): HeapTransition {
    if (this.#threshold <= 0) {
      if (!this.#active) return undefined;
      this.#active = false;
      return "left";
    }
    if (!this.#active && usedBytes >= this.#threshold) {
      this.#active = true;
      return "entered";
    }
    if (this.#active && usedBytes < this.#threshold * RECOVER_FRACTION) {
      this.#active = false;
      return "left";
    }
    return undefined;
  }
}
