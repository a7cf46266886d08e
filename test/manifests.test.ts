/**
 * `remora manifests`: what it prints validates against the Kubernetes schema, deploy/remora.yaml
 * is that output (certificate fields masked: each run makes a new CA), the committed certificate
 * is a working serving certificate for the webhook Service, the discovery ClusterRole is
 * deploy/rbac.yaml's, and kubectl renders deploy/ with kustomize, offline.
 */
import { execFile } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { CLI } from "./harness.js";
import { validateKubernetesObject } from "./kubernetes-schema.js";

const exec = promisify(execFile);
// biome-ignore lint/suspicious/noExplicitAny: assertions read deep into parsed YAML.
type Loose = any;
const deployFile = (name: string) =>
  readFileSync(new URL(`../deploy/${name}`, import.meta.url), "utf8");

/** The PEM blocks and the caBundle differ per run; everything else must not. */
function maskCertificates(text: string): string {
  return text
    .replace(/-----BEGIN ([A-Z ]+)-----[\s\S]*?-----END \1-----/g, "<$1>")
    .replace(/caBundle: \S+/g, "caBundle: <CA>");
}

function objects(text: string): Record<string, unknown>[] {
  return parseAllDocuments(text).map((d) =>
    (d as unknown as { toJS(): Record<string, unknown> }).toJS(),
  );
}

describe("remora manifests", () => {
  it("prints deploy/remora.yaml (certificates aside), every object valid", async () => {
    const { stdout } = await exec(process.execPath, [CLI, "manifests"]);
    const committed = deployFile("remora.yaml").replace(
      /^# DEVELOPMENT COPY:.*\n(#.*\n)*?(?=# Generated)/,
      "",
    );
    expect(maskCertificates(stdout)).toBe(maskCertificates(committed));
    const printed = objects(stdout);
    expect(printed.map((o) => o.kind)).toEqual([
      "Namespace",
      "ServiceAccount",
      "ClusterRole",
      "ClusterRoleBinding",
      "Secret",
      "Service",
      "Deployment",
      "MutatingWebhookConfiguration",
    ]);
    for (const object of printed) validateKubernetesObject(object);
  });

  it("follows --namespace and --image", async () => {
    const { stdout } = await exec(process.execPath, [
      CLI,
      "manifests",
      "--namespace",
      "mesh",
      "--image",
      "r:1",
      "--init-image",
      "ri:1",
    ]);
    const byKind = Object.fromEntries(objects(stdout).map((o) => [o.kind, o])) as Record<
      string,
      Loose
    >;
    expect(byKind.Namespace.metadata.name).toBe("mesh");
    expect(byKind.Deployment.metadata.namespace).toBe("mesh");
    const container = byKind.Deployment.spec.template.spec.containers[0];
    expect(container.image).toBe("r:1");
    expect(container.args).toEqual([
      "webhook",
      "--cert",
      "/etc/remora/webhook/tls.crt",
      "--key",
      "/etc/remora/webhook/tls.key",
      "--port",
      "9443",
      "--image",
      "r:1",
      "--init-image",
      "ri:1",
    ]);
    const hook = byKind.MutatingWebhookConfiguration.webhooks[0];
    expect(hook.clientConfig.service).toEqual({
      name: "remora-webhook",
      namespace: "mesh",
      path: "/inject",
      port: 443,
    });
    expect(hook.namespaceSelector).toEqual({ matchLabels: { "remora-injection": "enabled" } });
    // The certificate names the Service the API server calls, and its CA is the caBundle.
    const cert = new X509Certificate(byKind.Secret.stringData["tls.crt"]);
    const ca = new X509Certificate(Buffer.from(hook.clientConfig.caBundle, "base64"));
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkHost("remora-webhook.mesh.svc")).toBe("remora-webhook.mesh.svc");
  });

  it("commits a working development certificate in deploy/remora.yaml", () => {
    const byKind = Object.fromEntries(
      objects(deployFile("remora.yaml")).map((o) => [o.kind, o]),
    ) as Record<string, Loose>;
    const cert = new X509Certificate(byKind.Secret.stringData["tls.crt"]);
    const ca = new X509Certificate(
      Buffer.from(byKind.MutatingWebhookConfiguration.webhooks[0].clientConfig.caBundle, "base64"),
    );
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkHost("remora-webhook.remora-system.svc")).toBe(
      "remora-webhook.remora-system.svc",
    );
    expect(deployFile("remora.yaml")).toMatch(
      /^# DEVELOPMENT COPY: the webhook certificate and key below are public/,
    );
  });

  it("grants sidecars deploy/rbac.yaml's discovery rules", () => {
    const role = (text: string) =>
      objects(text).find((o) => o.kind === "ClusterRole") as Record<string, unknown>;
    expect(role(deployFile("remora.yaml")).rules).toEqual(role(deployFile("rbac.yaml")).rules);
  });

  it("renders with kubectl kustomize deploy/, offline, to the same objects", async () => {
    const dir = new URL("../deploy/", import.meta.url).pathname;
    const { stdout } = await exec("kubectl", ["kustomize", dir]);
    const rendered = objects(stdout);
    const key = (o: Record<string, Loose>) =>
      `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`;
    const expected = objects(deployFile("remora.yaml"));
    expect(rendered.map(key).sort()).toEqual(expected.map(key).sort());
    for (const object of rendered) {
      validateKubernetesObject(object);
      expect(object).toEqual(expected.find((e) => key(e) === key(object as never)));
    }
  });
});
