/**
 * RFC 6902 JSON Patch from the difference of two JSON values: what the webhook answers so the API
 * server turns the pod it sent into the pod `remora inject` makes. Objects are diffed key by key;
 * an array that only grew at its start or end (containers, volumes) gets `add`s at those indexes;
 * an array of the same length is diffed element by element; any other array is replaced whole.
 * Small patches keep other mutating webhooks' edits (made before ours) intact.
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
  if (after.length > before.length) {
    // before == after[0..p) + after[p+k..): k elements were inserted at index p.
    let prefix = 0;
    while (prefix < before.length && deepEqual(before[prefix], after[prefix])) prefix++;
    const inserted = after.length - before.length;
    const tailMatches = before
      .slice(prefix)
      .every((value, i) => deepEqual(value, after[prefix + inserted + i]));
    if (tailMatches) {
      return after.slice(prefix, prefix + inserted).map((value, i) => ({
        op: "add" as const,
        path: `${path}/${prefix + i}`,
        value,
      }));
    }
  }
  return [{ op: "replace", path, value: after }];
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
