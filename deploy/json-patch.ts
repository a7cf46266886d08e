/**
 * RFC 6902 JSON Patch from the difference of two JSON values: what the webhook answers so the API
 * server turns the pod it sent into the pod `remora inject` makes. Objects are diffed key by key;
 * an array that grew (containers, volumes) gets `add`s where the new elements went and the edits
 * of the others (a rewritten probe); an array of the same length is diffed element by element;
 * a shorter one is replaced whole. Patches that add rather than replace keep other mutating
 * webhooks' edits (made before ours) intact.
 */
export type PatchOperation =
  | { op: "add"; path: string; value: unknown }
  | { op: "replace"; path: string; value: unknown }
  | { op: "remove"; path: string };

export function diff(before: unknown, after: unknown, path = ""): PatchOperation[] {
  if (deepEqual(before, after)) return [];
  if (isPlainObject(before) && isPlainObject(after)) {
    const ops: PatchOperation[] = [];
    for (const key of Object.keys(before)) {
      if (!(key in after)) ops.push({ op: "remove", path: `${path}/${escapeKey(key)}` });
    }
    for (const [key, value] of Object.entries(after)) {
      const at = `${path}/${escapeKey(key)}`;
      if (!(key in before)) ops.push({ op: "add", path: at, value });
      else ops.push(...diff(before[key], value, at));
    }
    return ops;
  }
  if (Array.isArray(before) && Array.isArray(after)) return diffArrays(before, after, path);
  return [{ op: "replace", path, value: after }];
}

function diffArrays(before: unknown[], after: unknown[], path: string): PatchOperation[] {
  if (before.length === after.length) {
    return before.flatMap((value, i) => diff(value, after[i], `${path}/${i}`));
  }
  const replace: PatchOperation[] = [{ op: "replace", path, value: after }];
  if (after.length < before.length) return replace;
  // k elements were inserted at some index p and the others kept their order, perhaps edited:
  // try p after the common prefix, at the front and at the end; keep the smallest patch.
  const inserted = after.length - before.length;
  let prefix = 0;
  while (prefix < before.length && deepEqual(before[prefix], after[prefix])) prefix++;
  // Never the whole array, even when smaller: adds keep what other webhooks put there.
  let best = replace;
  let bestSize = Number.POSITIVE_INFINITY;
  for (const at of new Set([prefix, 0, before.length])) {
    // Edits first, at the indexes the elements have before the insertion; then the adds.
    const ops = before.flatMap((value, i) =>
      diff(value, after[i < at ? i : i + inserted], `${path}/${i}`),
    );
    for (let j = 0; j < inserted; j++) {
      ops.push({ op: "add", path: `${path}/${at + j}`, value: after[at + j] });
    }
    const size = JSON.stringify(ops).length;
    if (size < bestSize) {
      best = ops;
      bestSize = size;
    }
  }
  return best;
}

/** RFC 6901: `~` and `/` in a key. */
function escapeKey(key: string): string {
  return key.replace(/~/g, "~0").replace(/\//g, "~1");
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((v, i) => deepEqual(v, b[i]));
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    const keys = Object.keys(a);
    return (
      keys.length === Object.keys(b).length && keys.every((k) => k in b && deepEqual(a[k], b[k]))
    );
  }
  return false;
}
