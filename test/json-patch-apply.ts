/** A tiny RFC 6902 applier for tests: the API server's side of the webhook's answer. */
import type { PatchOperation } from "../deploy/json-patch.js";

/** RFC 6902 §4.1-4.3 on a deep copy; throws where the RFC says the patch fails. */
export function applyPatch(document: unknown, patch: readonly PatchOperation[]): unknown {
  const root = { value: structuredClone(document) } as Record<string, unknown>;
  for (const op of patch) {
    const tokens =
      op.path === ""
        ? []
        : op.path
            .slice(1)
            .split("/")
            .map((t) => t.replace(/~1/g, "/").replace(/~0/g, "~"));
    let parent: unknown = root;
    let key: string = "value";
    for (const token of tokens) {
      parent = (parent as Record<string, unknown>)[key];
      if (parent === null || typeof parent !== "object")
        throw new Error(`${op.path}: no such parent`);
      key = token;
    }
    if (Array.isArray(parent)) {
      const index = key === "-" ? parent.length : Number(key);
      if (!Number.isInteger(index) || index < 0 || index > parent.length)
        throw new Error(`${op.path}: bad index`);
      if (op.op === "add") parent.splice(index, 0, structuredClone(op.value));
      else if (index >= parent.length) throw new Error(`${op.path}: no such element`);
      else if (op.op === "remove") parent.splice(index, 1);
      else parent[index] = structuredClone(op.value);
    } else {
      const object = parent as Record<string, unknown>;
      if (op.op !== "add" && !(key in object)) throw new Error(`${op.path}: no such member`);
      if (op.op === "remove") delete object[key];
      else object[key] = structuredClone(op.value);
    }
  }
  return root.value;
}
