/** The `discovery.kubernetes` config keys (docs/kubernetes.md). */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfigFile, parseConfig, serviceDefaults } from "./load.js";

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
  it("defaults clusterDomain to cluster.local and idleRefresh to 10s; namespaces, kubeconfig and resync are optional", () => {
    const config = parseConfig(`${LISTENER}discovery: { kubernetes: {} }`, "x.yaml");
    expect(config.discovery).toEqual({
      kubernetes: { clusterDomain: "cluster.local", idleRefresh: 10_000 },
    });
  });

  it("takes every key, with resync as a duration, next to a discovery file", () => {
    const config = parseConfig(
      `${LISTENER}discovery:\n  file: services.yaml\n  kubernetes: { kubeconfig: k.yaml, namespaces: [shop, payments], clusterDomain: corp.example, resync: 30m, idleRefresh: 0s }`,
      "x.yaml",
    );
    expect(config.discovery?.kubernetes).toEqual({
      kubeconfig: "k.yaml",
      namespaces: ["shop", "payments"],
      clusterDomain: "corp.example",
      resync: 1_800_000,
      idleRefresh: 0,
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
    expect(issuesOf(`${LISTENER}discovery: { kubernetes: { idleRefresh: soon } }`)[0]?.[0]).toBe(
      "discovery.kubernetes.idleRefresh",
    );
    expect(issuesOf(`${LISTENER}discovery: { kubernetes: { watch: true } }`)[0]?.[0]).toMatch(
      /^discovery.kubernetes/,
    );
  });
});

describe("discovery.kubernetes.trafficPolicy (discovered Services' default policy)", () => {
  const IDENTITY = "tls: { certFile: a.crt, keyFile: a.key, caFile: ca.crt }\n";

  it("is unset by default, and takes services[].trafficPolicy's schema and defaults when set", () => {
    const unset = parseConfig(`${LISTENER}discovery: { kubernetes: {} }`, "x.yaml");
    expect(unset.discovery?.kubernetes?.trafficPolicy).toBeUndefined();
    const config = parseConfig(
      `${LISTENER}${IDENTITY}discovery:\n  kubernetes:\n    trafficPolicy: { tls: { mode: ISTIO_MUTUAL, subjectAltNames: [cluster.local/ns/shop/sa/web] } }`,
      "x.yaml",
    );
    const policy = config.discovery?.kubernetes?.trafficPolicy;
    // Every field a service's trafficPolicy would have, with the same defaults.
    expect({ ...policy, tls: undefined }).toEqual({
      ...serviceDefaults().trafficPolicy,
      tls: undefined,
    });
    expect(policy?.tls).toEqual({
      mode: "ISTIO_MUTUAL",
      subjectAltNames: ["spiffe://cluster.local/ns/shop/sa/web"],
    });
  });

  it("is validated like a service's: key paths, ISTIO_MUTUAL needs the identity, files per mode", () => {
    const at = "discovery.kubernetes.trafficPolicy";
    expect(
      issuesOf(
        `${LISTENER}discovery: { kubernetes: { trafficPolicy: { tls: { mode: ISTIO_MUTUAL } } } }`,
      ),
    ).toEqual([
      [
        `${at}.tls.mode`,
        "ISTIO_MUTUAL needs this workload's identity: set the top-level tls: { certFile, keyFile, caFile }",
      ],
    ]);
    expect(
      issuesOf(
        `${LISTENER}discovery: { kubernetes: { trafficPolicy: { tls: { mode: MUTUAL } } } }`,
      ).map(([path]) => path),
    ).toEqual([`${at}.tls.certFile`, `${at}.tls.keyFile`]);
    expect(
      issuesOf(
        `${LISTENER}discovery: { kubernetes: { trafficPolicy: { loadBalancer: { policy: FASTEST } } } }`,
      )[0]?.[0],
    ).toBe(`${at}.loadBalancer.policy`);
    expect(
      issuesOf(`${LISTENER}discovery: { kubernetes: { trafficPolicy: { subsets: [] } } }`)[0]?.[0],
    ).toMatch(/^discovery.kubernetes.trafficPolicy/);
  });

  it("its files are relative to the config file and checked at load, naming the key", () => {
    const dir = mkdtempSync(join(tmpdir(), "remora-kube-policy-"));
    try {
      const file = join(dir, "remora.yaml");
      writeFileSync(
        file,
        `${LISTENER}discovery:\n  kubernetes:\n    trafficPolicy: { tls: { mode: SIMPLE, caFile: web-ca.crt } }\n`,
      );
      let issues: [string, string][] = [];
      try {
        loadConfigFile(file);
      } catch (error) {
        issues = (error as ConfigError).issues.map((i) => [i.path, i.message]);
      }
      expect(issues).toEqual([
        [
          "discovery.kubernetes.trafficPolicy.tls.caFile",
          `${join(dir, "web-ca.crt")} does not exist`,
        ],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
