/** The `discovery.kubernetes` config keys (docs/kubernetes.md). */
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "./load.js";

const LISTENER = "listeners: [{ name: out, kind: outbound, port: 15001 }]\n";

function issuesOf(text: string): [string, string][] {
  try {
    parseConfig(text, "test.yaml");
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).issues.map((i) => [i.path, i.message]);
  }
  throw new Error("config was accepted");
}

describe("discovery.kubernetes config", () => {
  it("defaults clusterDomain to cluster.local; namespaces, kubeconfig and resync are optional", () => {
    const config = parseConfig(`${LISTENER}discovery: { kubernetes: {} }`, "x.yaml");
    expect(config.discovery).toEqual({ kubernetes: { clusterDomain: "cluster.local" } });
  });

  it("takes every key, with resync as a duration, next to a discovery file", () => {
    const config = parseConfig(
      `${LISTENER}discovery:\n  file: services.yaml\n  kubernetes: { kubeconfig: k.yaml, namespaces: [shop, payments], clusterDomain: corp.example, resync: 30m }`,
      "x.yaml",
    );
    expect(config.discovery?.kubernetes).toEqual({
      kubeconfig: "k.yaml",
      namespaces: ["shop", "payments"],
      clusterDomain: "corp.example",
      resync: 1_800_000,
    });
    expect(config.discovery?.file).toBe("services.yaml");
  });

  it("names the bad key", () => {
    expect(issuesOf(`${LISTENER}discovery: { kubernetes: { namespaces: [Shop] } }`)[0]?.[0]).toBe(
      "discovery.kubernetes.namespaces[0]",
    );
    expect(issuesOf(`${LISTENER}discovery: { kubernetes: { namespaces: [] } }`)[0]?.[1]).toMatch(
      /at least one namespace/,
    );
    expect(
      issuesOf(`${LISTENER}discovery: { kubernetes: { namespaces: [a, a] } }`)[0]?.[1],
    ).toMatch(/twice/);
    expect(
      issuesOf(`${LISTENER}discovery: { kubernetes: { clusterDomain: "cluster.local." } }`)[0],
    ).toEqual([
      "discovery.kubernetes.clusterDomain",
      "expected a DNS domain such as cluster.local",
    ]);
    expect(issuesOf(`${LISTENER}discovery: { kubernetes: { resync: 0s } }`)[0]?.[0]).toBe(
      "discovery.kubernetes.resync",
    );
    expect(issuesOf(`${LISTENER}discovery: { kubernetes: { watch: true } }`)[0]?.[0]).toMatch(
      /^discovery.kubernetes/,
    );
  });
});
