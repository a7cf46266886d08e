/**
 * Splits a watch stream into lines: the API server writes one JSON event per line, and TCP (or
 * chunked encoding) may cut anywhere, including inside a multi-byte UTF-8 character, so bytes
 * are joined before they are decoded.
 */
export class LineSplitter {
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  readonly #maxLineBytes: number;

  /** `maxLineBytes`: a line longer than this is an error, not a memory leak (default 16 MiB). */
  constructor(maxLineBytes = 16 * 1024 * 1024) {
    this.#maxLineBytes = maxLineBytes;
  }

  /** Bytes held back that did not end with a newline yet (non-zero at stream end = a cut). */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** The complete, non-empty lines this chunk finishes, decoded. */
  push(chunk: Uint8Array): string[] {
    const lines: string[] = [];
    let buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let newline = buffer.indexOf(10);
    while (newline !== -1) {
      const head = buffer.subarray(0, newline);
      const line =
        this.#pendingBytes === 0
          ? head.toString("utf8")
          : Buffer.concat([...this.#pending, head]).toString("utf8");
      this.#pending = [];
      this.#pendingBytes = 0;
      if (line.trim() !== "") lines.push(line);
      buffer = buffer.subarray(newline + 1);
      newline = buffer.indexOf(10);
    }
    if (buffer.length > 0) {
      this.#pendingBytes += buffer.length;
      if (this.#pendingBytes > this.#maxLineBytes) {
        throw new Error(`watch event longer than ${this.#maxLineBytes} bytes`);
      }
      // Copied: the caller's chunk may be reused.
      this.#pending.push(Buffer.from(buffer));
    }
    return lines;
  }
}
