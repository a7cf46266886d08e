/**
 * Exposition text written straight into Buffers: a scrape of a big mesh is tens of megabytes
 * (Istio's 25 labels repeated on 22 lines per histogram series), and building it as strings
 * costs three passes (rope, flatten, UTF-8 encode) where copying pre-encoded label bytes costs
 * one. The chunks go to the socket as they are.
 */

/** Bytes per chunk; a chunk is filled, then a new one started (no re-copying as it grows). */
const CHUNK = 1 << 20;

const MAX_UTF8_PER_UNIT = 3;

export class ExpositionWriter {
  readonly #chunks: Buffer[] = [];
  #buf: Buffer = Buffer.allocUnsafe(CHUNK);
  #at = 0;

  /** Make room for `bytes` more in the current chunk. */
  #room(bytes: number): void {
    if (this.#at + bytes <= this.#buf.length) return;
    this.#chunks.push(this.#buf.subarray(0, this.#at));
    this.#buf = Buffer.allocUnsafe(Math.max(CHUNK, bytes));
    this.#at = 0;
  }

  /** Pre-encoded bytes (label sets, name prefixes). */
  bytes(bytes: Uint8Array): void {
    this.#room(bytes.length);
    this.#buf.set(bytes, this.#at);
    this.#at += bytes.length;
  }

  /** Text, encoded as UTF-8. */
  text(text: string): void {
    this.#room(text.length * MAX_UTF8_PER_UNIT);
    this.#at += this.#buf.write(text, this.#at, "utf8");
  }

  /** A sample value and the line feed after it. */
  value(value: number): void {
    this.#room(32);
    const buf = this.#buf;
    if (Number.isSafeInteger(value) && value >= 0) {
      // Counts are integers: write the digits without a string.
      if (value < 10) {
        buf[this.#at++] = 48 + value;
      } else {
        let digits = 0;
        for (let rest = value; rest > 0; rest = Math.floor(rest / 10)) digits++;
        let at = this.#at + digits;
        for (let rest = value; rest > 0; rest = Math.floor(rest / 10)) buf[--at] = 48 + (rest % 10);
        this.#at += digits;
      }
    } else {
      this.#at += buf.write(formatValue(value), this.#at, "latin1");
    }
    buf[this.#at++] = 10;
  }

  /** The chunks written so far; the writer is spent. */
  finish(): Buffer[] {
    if (this.#at > 0) this.#chunks.push(this.#buf.subarray(0, this.#at));
    this.#buf = Buffer.alloc(0);
    this.#at = 0;
    return this.#chunks;
  }
}

/** A number as the text format writes it (Go's strconv style for the specials). */
export function formatValue(value: number): string {
  if (Number.isFinite(value)) return String(value);
  if (Number.isNaN(value)) return "NaN";
  return value > 0 ? "+Inf" : "-Inf";
}
