/**
 * The webhook's patch, applied by a small RFC 6902 applier (add/remove/replace, what diff() emits)
 * to the pod it was made for, gives exactly the pod `remora inject` makes.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { applyPatch } from "../test/json-patch-apply.js";
import { injectObject, type JsonObject } from "./inject.js";
import { deepEqual, diff, type PatchOperation } from "./json-patch.js";
import type { InjectOptions } from "./sidecar-template.js";
import { answerReview } from "./webhook.js";

const options: InjectOptions = {
  image: "remora:test",
  initImage: "remora-init:test",
  nativeSidecar: true,
};

describe("diff()", () => {
  it("adds into a grown array, replaces a shrunk one", () => {
    expect(diff({ a: [1, 2] }, { a: [0, 1, 2] })).toEqual([{ op: "add", path: "/a/0", value: 0 }]);
    expect(diff({ a: [1, 2] }, { a: [1, 2, 3, 4] })).toEqual([
      { op: "add", path: "/a/2", value: 3 },
      { op: "add", path: "/a/3", value: 4 },
    ]);
    const reordered = diff({ a: [1, 2] }, { a: [2, 1, 3] });
    expect(reordered.some((op) => op.path === "/a")).toBe(false);
    expect(applyPatch({ a: [1, 2] }, reordered)).toEqual({ a: [2, 1, 3] });
    expect(diff({ a: [1, 2] }, { a: [1] })).toEqual([{ op: "replace", path: "/a", value: [1] }]);
    expect(diff({ a: [{ x: 1 }] }, { a: [{ x: 2 }] })).toEqual([
      { op: "replace", path: "/a/0/x", value: 2 },
    ]);
  });

  it("escapes / and ~ in keys (RFC 6901) and removes vanished keys", () => {
    const before = { metadata: { annotations: { "a/b": "1", "c~d": "2", gone: "x" } } };
    const after = { metadata: { annotations: { "a/b": "1", "c~d": "3", "e/f": "4" } } };
    const patch = diff(before, after);
    expect(patch).toEqual([
      { op: "remove", path: "/metadata/annotations/gone" },
      { op: "replace", path: "/metadata/annotations/c~0d", value: "3" },
      { op: "add", path: "/metadata/annotations/e~1f", value: "4" },
    ]);
    expect(applyPatch(before, patch)).toEqual(after);
  });

  it("is empty for equal values", () => {
    expect(diff({ a: [1, { b: null }] }, { a: [1, { b: null }] })).toEqual([]);
    expect(deepEqual({ a: 1 }, { a: 1, b: undefined })).toBe(false);
  });
});

describe("the webhook's patch", () => {
  const kinds = ["pod", "deployment", "statefulset", "daemonset", "replicaset", "job", "cronjob"];
  it.each(kinds)("turns the %s's pod into what remora inject makes of it", (kind) => {
    const object = parse(readFileSync(new URL(`./testdata/${kind}.yaml`, import.meta.url), "utf8"));
    const template =
      object.kind === "Pod"
        ? object
        : object.kind === "CronJob"
          ? object.spec.jobTemplate.spec.template
          : object.spec.template;
    // The pod a controller would create from the template (as the API server sends it).
    const pod: JsonObject = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: { generateName: "x-", ...template.metadata },
      spec: template.spec,
    };
    for (const nativeSidecar of [true, false]) {
      const opts = { ...options, nativeSidecar };
      const review = {
        apiVersion: "admission.k8s.io/v1",
        kind: "AdmissionReview",
        request: {
          uid: "u-1",
          kind: { group: "", version: "v1", kind: "Pod" },
          operation: "CREATE",
          namespace: "shop",
          object: pod,
        },
      };
      const answer = answerReview(review, opts);
      expect(answer.outcome).toBe("injected");
      const response = answer.review.response as Record<string, string>;
      expect(response.patchType).toBe("JSONPatch");
      const patch = JSON.parse(Buffer.from(response.patch!, "base64").toString("utf8"));
      expect(applyPatch(pod, patch)).toEqual(injectObject(pod, opts).object);
      // The patch only adds what injection adds: the app containers are not replaced whole.
      expect(
        patch.some((op: PatchOperation) => op.path === "/spec/containers" && op.op === "replace"),
      ).toBe(false);
    }
  });
});
