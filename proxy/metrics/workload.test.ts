import { describe, expect, it } from "vitest";
import { resolveWorkload, workloadFromPodName } from "./workload.js";

describe("workloadFromPodName", () => {
  it.each([
    ["reviews-v1-545db77b95-4tlmw", "reviews-v1"], // Deployment: NAME-<template hash>-<5>
    ["productpage-v1-6b746f74dc-9stnd", "productpage-v1"],
    ["db-0", "db"], // StatefulSet ordinal
    ["kafka-broker-12", "kafka-broker"],
    ["fluentd-7xk2p", "fluentd"], // DaemonSet / Job: NAME-<5>
    ["standalone", "standalone"], // a bare pod is its own workload
    ["web-server", "web-server"], // "server" has vowels: not a generated suffix
  ])("%s belongs to %s", (pod, workload) => {
    expect(workloadFromPodName(pod)).toBe(workload);
  });
});

describe("resolveWorkload", () => {
  const env = {
    POD_NAME: "reviews-v2-7d4f8b9c6d-x2k9p",
    POD_NAMESPACE: "shop",
    SERVICE_ACCOUNT: "bookinfo-reviews",
  };

  it("takes the downward-API environment when the config names nothing", () => {
    expect(resolveWorkload({}, env)).toEqual({
      name: "reviews-v2",
      namespace: "shop",
      serviceAccount: "bookinfo-reviews",
      app: "unknown",
      version: "unknown",
      canonicalService: "reviews-v2",
      canonicalRevision: "latest",
      cluster: "unknown",
    });
  });

  it("prefers the config, field by field", () => {
    const workload = resolveWorkload(
      { name: "ratings", serviceAccount: "sa", app: "ratings-app", version: "v3", cluster: "east" },
      env,
    );
    expect(workload).toMatchObject({
      name: "ratings",
      namespace: "shop",
      serviceAccount: "sa",
      canonicalService: "ratings-app",
      canonicalRevision: "v3",
      cluster: "east",
    });
  });

  it("says unknown for what neither gives, as Istio does", () => {
    expect(resolveWorkload({}, { POD_NAME: "" })).toMatchObject({
      name: "unknown",
      namespace: "unknown",
      serviceAccount: "unknown",
      canonicalService: "unknown",
    });
  });
});
