/**
 * deploy/rbac.yaml grants exactly what Kubernetes discovery uses: get, list and watch on Services
 * and discovery.k8s.io EndpointSlices, bound to the sidecar's ServiceAccount. (`kubectl apply
 * --dry-run=client` needs a reachable API server for its schema, so the manifest is parsed here.)
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { ENDPOINT_SLICES, SERVICES } from "../discovery/kubernetes/client.js";

// biome-ignore lint/suspicious/noExplicitAny: manifests are open-ended YAML.
type Doc = Record<string, any>;

const docs: Doc[] = parseAllDocuments(
  readFileSync(new URL("../deploy/rbac.yaml", import.meta.url), "utf8"),
).map((doc) => {
  expect(doc.errors).toEqual([]);
  return doc.toJS() as Doc;
});

describe("deploy/rbac.yaml", () => {
  it("is a ServiceAccount, a ClusterRole and a ClusterRoleBinding of the two", () => {
    expect(docs.map((d) => d.kind)).toEqual([
      "ServiceAccount",
      "ClusterRole",
      "ClusterRoleBinding",
    ]);
    const [account, role, binding] = docs as [Doc, Doc, Doc];
    expect(binding.roleRef).toEqual({
      apiGroup: "rbac.authorization.k8s.io",
      kind: "ClusterRole",
      name: role.metadata.name,
    });
    expect(binding.subjects).toEqual([
      {
        kind: "ServiceAccount",
        name: account.metadata.name,
        namespace: account.metadata.namespace,
      },
    ]);
  });

  it("grants get, list and watch on the resources the client reads, and nothing more", () => {
    const role = docs[1] as Doc;
    const grants = role.rules.flatMap((rule: Doc) =>
      rule.apiGroups.flatMap((group: string) =>
        rule.resources.map(
          (resource: string) => `${group}/${resource}: ${[...rule.verbs].sort().join(",")}`,
        ),
      ),
    );
    expect(grants.sort()).toEqual([
      "/services: get,list,watch",
      "discovery.k8s.io/endpointslices: get,list,watch",
    ]);
    // The same resources the client's URLs name.
    expect(SERVICES.prefix).toBe("/api/v1");
    expect(ENDPOINT_SLICES.prefix).toBe("/apis/discovery.k8s.io/v1");
    expect([SERVICES.plural, ENDPOINT_SLICES.plural]).toEqual(["services", "endpointslices"]);
  });
});
