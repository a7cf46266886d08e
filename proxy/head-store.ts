/**
 * Buffers for request heads that keep growing: a head that passes HEAD_STORE_FROM bytes without
 * ending moves into one buffer that can hold the largest allowed head plus one read, and grows
 * in place from there. Without it every read of such a head copied everything so far into a
 * new buffer (16, 32, 48, 64, 80 KiB: a quarter of a megabyte per connection sending an
 * oversized head), and under a flood of them those copies were most of remora's memory: V8 only
 * collects external buffers after tens of megabytes of them.
 *
 * A store goes back to a small free list when its connection rejects or closes with the head
 * unparsed, so a flood of oversized heads reuses the same few stores. A store whose head was
 * parsed is left to the garbage collector: the parsed head may still point into it.
 */

/** A head shorter than this is held in a buffer of its own size (2.5× its size at most here). */
export const HEAD_STORE_FROM = 32 * 1024;

/** Free stores kept per size: a few hundred KiB at most once a flood is over. */
const KEEP = 8;
const FREE = new Map<number, Buffer[]>();

/** A store of `size` bytes, reused if one is free. */
export function takeHeadStore(size: number): Buffer {
  return FREE.get(size)?.pop() ?? Buffer.allocUnsafeSlow(size);
}

/** Give back a store nothing points into any more. */
export function recycleHeadStore(store: Buffer): void {
  let free = FREE.get(store.length);
  if (free === undefined) {
    free = [];
    FREE.set(store.length, free);
  }
  if (free.length < KEEP) free.push(store);
}
