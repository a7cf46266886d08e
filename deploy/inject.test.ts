/**
 * The injector on each workload kind, against golden files (deploy/testdata/<kind>.<mode>.golden.yaml;
 * REMORA_UPDATE_GOLDEN=1 rewrites them), and every injected object against the Kubernetes schema.
 */
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

// biome-ignore lint/suspicious/noExplicitAny: assertions read deep into parsed YAML.
type Loose = any;

import { parse, parseAllDocuments } from "yaml";
import { validateKubernetesObject } from "../test/kubernetes-schema.js";
import { InjectError, injectObject, type JsonObject } from "./inject.js";
import { injectYaml } from "./inject-yaml.js";
import { DEFAULT_OVERLAY } from "./sidecar.js";
import { type InjectOptions, resolveNativeSidecar } from "./sidecar-template.js";

const KINDS = ["pod", "deployment", "statefulset", "daemonset", "replicaset", "job", "cronjob"];
const native: InjectOptions = {
  image: "remora:test",
  initImage: "remora-init:test",
  nativeSidecar: true,
};
const classic: InjectOptions = { ...native, nativeSidecar: false };
const testdata = (name: string) => new URL(`./testdata/${name}`, import.meta.url);
const read = (name: string) => readFileSync(testdata(name), "utf8");

/** The pod template of any injected kind. */
function podOf(object: JsonObject): { metadata: JsonObject; spec: JsonObject } {
  const o = object as Record<string, Loose>;
  if (o.kind === "Pod") return o as never;
  if (o.kind === "CronJob") return o.spec.jobTemplate.spec.template;
  return o.spec.template;
}

describe.each([
  ["native", native],
  ["classic", classic],
])("remora inject, %s sidecar", (mode, options) => {
  it.each(KINDS)("%s matches its golden file and the Kubernetes schema", (kind) => {
    const input = read(`${kind}.yaml`);
    const { text, pods } = injectYaml(input, options);
    const golden = `${kind}.${mode}.golden.yaml`;
    if (process.env.REMORA_UPDATE_GOLDEN === "1" || !existsSync(testdata(golden))) {
      writeFileSync(testdata(golden), text);
    }
    expect(text).toBe(read(golden));
    expect(pods).toHaveLength(1);
    expect(pods[0]!.injected).toBe(true);
    const object = parse(text);
    validateKubernetesObject(object);
    const { metadata, spec } = podOf(object);
    const inits = (spec.initContainers as JsonObject[]).map((c) => c.name);
    const containers = (spec.containers as JsonObject[]).map((c) => c.name);
    const proxy = [
      ...(spec.initContainers as JsonObject[]),
      ...(spec.containers as JsonObject[]),
    ].find((c) => c.name === "remora-proxy") as Record<string, Loose>;
    if (mode === "native") {
      expect(inits.slice(0, 2)).toEqual(["remora-init", "remora-proxy"]);
      expect(containers).not.toContain("remora-proxy");
      expect(proxy.restartPolicy).toBe("Always");
      expect(proxy.startupProbe.httpGet).toEqual({ path: "/healthz/ready", port: 15021 });
      expect(proxy.lifecycle).toBeUndefined();
    } else {
      expect(inits[0]).toBe("remora-init");
      expect(containers[0]).toBe("remora-proxy");
      expect(proxy.restartPolicy).toBeUndefined();
      expect(proxy.lifecycle.postStart.exec.command.slice(-2)).toEqual(["hook", "post-start"]);
      expect(proxy.lifecycle.preStop.exec.command.slice(-2)).toEqual(["hook", "pre-stop"]);
    }
    expect(proxy.securityContext).toMatchObject({
      runAsUser: 1337,
      runAsNonRoot: true,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
    });
    expect(proxy.readinessProbe.httpGet).toEqual({ path: "/healthz/ready", port: 15021 });
    const init = (spec.initContainers as Record<string, Loose>[])[0]!;
    expect(init.args.slice(0, 3)).toEqual(["iptables", "--proxy-uid", "1337"]);
    expect(init.securityContext.capabilities).toEqual({
      add: ["NET_ADMIN", "NET_RAW"],
      drop: ["ALL"],
    });
    const status = JSON.parse(
      String((metadata.annotations as JsonObject)["sidecar.remora.dev/status"]),
    );
    expect(status.nativeSidecar).toBe(mode === "native");
  });

  it.each(KINDS)("%s: injecting the output again changes nothing", (kind) => {
    const once = injectYaml(read(`${kind}.yaml`), options).text;
    const twice = injectYaml(once, options);
    expect(twice.text).toBe(once);
    expect(twice.pods[0]).toMatchObject({ injected: false, reason: "already injected" });
  });
});

describe("what the injector adds", () => {
  it("rewrites HTTP probes through the probe port and hands the originals to the sidecar", () => {
    const pod = parse(injectYaml(read("pod.yaml"), native).text);
    const app = pod.spec.containers[0];
    expect(app.livenessProbe).toEqual({
      httpGet: { path: "/app-health/hello/livez", port: 15021, scheme: "HTTP" },
      timeoutSeconds: 2,
      periodSeconds: 10,
    });
    expect(app.readinessProbe.httpGet).toEqual({
      path: "/app-health/hello/readyz",
      port: 15021,
      scheme: "HTTP",
    });
    // tcpSocket probes are not HTTP: left alone.
    expect(app.startupProbe).toEqual({ tcpSocket: { port: 8080 } });
    const env = Object.fromEntries(
      pod.spec.initContainers[1].env.map((e: JsonObject) => [e.name, e.value ?? e.valueFrom]),
    );
    expect(JSON.parse(env.REMORA_KUBE_APP_PROBERS)).toEqual({
      "/app-health/hello/livez": {
        httpGet: {
          path: "/livez",
          port: 8443,
          scheme: "HTTPS",
          httpHeaders: [{ name: "X-Probe", value: "kubelet" }],
        },
        timeoutSeconds: 2,
      },
      // The named port "http" resolved to its number.
      "/app-health/hello/readyz": { httpGet: { path: "/ready", port: 8080, scheme: "HTTP" } },
    });
    // UDP ports are not the proxy's.
    expect(env.REMORA_APP_PORTS).toBe("8080");
    expect(env.POD_NAME).toEqual({ fieldRef: { fieldPath: "metadata.name" } });
    expect(env.INSTANCE_IP).toEqual({ fieldRef: { fieldPath: "status.podIP" } });
    expect(env.SERVICE_ACCOUNT).toEqual({ fieldRef: { fieldPath: "spec.serviceAccountName" } });
    expect(pod.metadata.annotations.team).toBe("payments");
    expect(pod.spec.volumes).toEqual([
      { name: "remora-identity", secret: { secretName: "remora-identity-default" } },
      // The sidecar's config file per namespace; optional, so a namespace without it still starts.
      { name: "remora-config", configMap: { name: "remora-sidecar-config", optional: true } },
    ]);
    const proxy = pod.spec.initContainers[1];
    expect(proxy.volumeMounts).toEqual([
      { name: "remora-identity", mountPath: "/etc/remora/certs", readOnly: true },
      // Where `remora sidecar` looks for sidecar.yaml (DEFAULT_OVERLAY).
      { name: "remora-config", mountPath: "/etc/remora/config", readOnly: true },
    ]);
    expect(`${proxy.volumeMounts[1].mountPath}/sidecar.yaml`).toBe(DEFAULT_OVERLAY);
  });

  it("keeps probes as they are with rewriteAppHTTPProbers: false", () => {
    const rs = parse(injectYaml(read("replicaset.yaml"), native).text);
    expect(rs.spec.template.spec.containers[0].readinessProbe.httpGet.port).toBe(7000);
    const env = rs.spec.template.spec.initContainers[1].env.map((e: JsonObject) => e.name);
    expect(env).not.toContain("REMORA_KUBE_APP_PROBERS");
  });

  it("takes resources and interception flags from annotations, the Secret from the service account", () => {
    const sts = parse(injectYaml(read("statefulset.yaml"), native).text).spec.template.spec;
    expect(sts.initContainers.map((c: JsonObject) => c.name)).toEqual([
      "remora-init",
      "remora-proxy",
      "migrate",
    ]);
    expect(sts.initContainers[1].resources).toEqual({
      requests: { cpu: "250m", memory: "64Mi" },
      limits: { cpu: "1", memory: "512Mi" },
    });
    expect(sts.initContainers[0].args).toEqual([
      "iptables",
      "--proxy-uid",
      "1337",
      // The app's ports, in REMORA_APP_PORTS's order: port i goes to inbound listener i.
      "--inbound-ports",
      "5432",
      "--exclude-inbound-ports",
      "5432",
    ]);
    expect(sts.volumes.map((v: JsonObject) => v.name)).toEqual([
      "data",
      "remora-identity",
      "remora-config",
    ]);
    expect(sts.volumes[1].secret.secretName).toBe("remora-identity-db");
    const ds = parse(injectYaml(read("daemonset.yaml"), native).text).spec.template.spec;
    expect(ds.initContainers[0].args.slice(3)).toEqual([
      "--exclude-outbound-ports",
      "9000,9001",
      "--include-outbound-ip-ranges",
      "198.18.0.0/15",
    ]);
  });

  it("captures each app port to the inbound listener the sidecar gives it (same ports, same order)", () => {
    const spec = parse(injectYaml(read("deployment.yaml"), native).text).spec.template.spec;
    const [init, proxy] = spec.initContainers;
    const appPorts = proxy.env.find((e: JsonObject) => e.name === "REMORA_APP_PORTS").value;
    expect(appPorts).toBe("8080,9100");
    const at = init.args.indexOf("--inbound-ports");
    expect(init.args[at + 1]).toBe(appPorts);
  });

  it("refuses a bad annotation, naming the object and the annotation", () => {
    const bad = read("statefulset.yaml").replace("250m", "a lot");
    expect(() => injectYaml(bad, native)).toThrow(
      new InjectError(
        'StatefulSet default/db: annotation sidecar.remora.dev/proxyCPU: "a lot" is not a Kubernetes quantity (e.g. 100m, 128Mi)',
      ),
    );
    const ports = read("daemonset.yaml").replace("9000,9001", "9000,http");
    expect(() => injectYaml(ports, native)).toThrow(
      /excludeOutboundPorts: "9000,http" is not a list of ports/,
    );
    const opt = read("job.yaml").replace(
      "  template:\n",
      "  template:\n    metadata:\n      annotations:\n        sidecar.remora.dev/inject: maybe\n",
    );
    expect(() => injectYaml(opt, native)).toThrow(
      /sidecar.remora.dev\/inject: "maybe" is neither true nor false/,
    );
  });

  it("warns that a Job with a classic sidecar never completes", () => {
    expect(injectYaml(read("job.yaml"), classic).pods[0]!.warnings).toEqual([
      "Job default/report: with --native-sidecar=false the proxy container never exits, so the Job never completes",
    ]);
    expect(injectYaml(read("job.yaml"), native).pods[0]!.warnings).toEqual([]);
  });
});

describe("what the injector leaves alone", () => {
  const pod = (metadata: string, spec = "") => `apiVersion: v1
kind: Pod
metadata:
  name: p
${metadata}
spec:
${spec}  containers:
    - name: app
      image: app
`;

  it.each([
    ['  annotations:\n    sidecar.remora.dev/inject: "false"', "sidecar.remora.dev/inject"],
    ['  annotations:\n    sidecar.istio.io/inject: "false"', "sidecar.istio.io/inject"],
    ['  labels:\n    sidecar.istio.io/inject: "false"', "sidecar.istio.io/inject"],
    ['  annotations:\n    sidecar.remora.dev/inject: "off"', "sidecar.remora.dev/inject"],
  ])("opted-out pods (%s)", (metadata, key) => {
    const input = pod(metadata);
    const result = injectYaml(input, native);
    expect(result.text).toBe(input);
    expect(result.pods[0]).toMatchObject({
      injected: false,
      reason: `opted out (${key}: false)`,
      warnings: [],
    });
  });

  it("remora's own annotation wins over Istio's", () => {
    const input = pod(
      '  annotations:\n    sidecar.remora.dev/inject: "true"\n    sidecar.istio.io/inject: "false"',
    );
    expect(injectYaml(input, native).pods[0]!.injected).toBe(true);
  });

  it("hostNetwork pods, with a warning", () => {
    const input = pod("  labels: {}", "  hostNetwork: true\n");
    const result = injectYaml(input, native);
    expect(result.text).toBe(input);
    expect(result.pods[0]!.injected).toBe(false);
    expect(result.pods[0]!.warnings[0]).toMatch(/^Pod default\/p: hostNetwork pod skipped/);
  });

  it("other kinds and API versions, in place and in order, with their comments", () => {
    const input = `# leading comment
apiVersion: v1
kind: Service # inline comment
metadata: {name: web}
spec: {ports: [{port: 80}]}
---
${read("deployment.yaml")}---
apiVersion: example.com/v1
kind: Deployment
metadata: {name: not-apps}
spec: {template: {spec: {containers: []}}}
`;
    const { text, pods } = injectYaml(input, native);
    const docs = parseAllDocuments(text) as unknown as { toJS(): JsonObject }[];
    expect(docs.map((d) => d.toJS().kind)).toEqual(["Service", "Deployment", "Deployment"]);
    expect(
      text.startsWith(
        "# leading comment\napiVersion: v1\nkind: Service # inline comment\nmetadata: {name: web}\n",
      ),
    ).toBe(true);
    expect(
      text.endsWith(
        "kind: Deployment\nmetadata: {name: not-apps}\nspec: {template: {spec: {containers: []}}}\n",
      ),
    ).toBe(true);
    expect(pods.map((p) => p.where)).toEqual(["Deployment shop/web"]);
    expect(text).toContain(injectYaml(read("deployment.yaml"), native).text);
  });

  it("injects every workload in a List and leaves the rest of it", () => {
    const list = {
      apiVersion: "v1",
      kind: "List",
      items: [
        parse(read("deployment.yaml")),
        { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "c" }, data: { a: "1" } },
        parse(read("job.yaml")),
      ],
    };
    const result = injectObject(list, native);
    expect(result.pods.map((p) => [p.where, p.injected])).toEqual([
      ["Deployment shop/web", true],
      ["Job default/report", true],
    ]);
    const items = (result.object as { items: JsonObject[] }).items;
    expect(items[1]).toBe(list.items[1]);
    expect(items[0]).toEqual(injectObject(list.items[0], native).object);
    for (const item of items) validateKubernetesObject(item);
    // The input object is never modified.
    expect(list.items[0]).toEqual(parse(read("deployment.yaml")));
  });
});

describe("the walk-through's example (deploy/examples/mesh-shop.yaml)", () => {
  it("injects both Deployments, keeps the Service, and validates", () => {
    const text = readFileSync(new URL("./examples/mesh-shop.yaml", import.meta.url), "utf8");
    const result = injectYaml(text, native);
    expect(result.pods.map((p) => [p.where, p.injected])).toEqual([
      ["Deployment default/hello", true],
      ["Deployment default/web", true],
    ]);
    const docs = parseAllDocuments(result.text) as unknown as { toJS(): JsonObject }[];
    for (const doc of docs) validateKubernetesObject(doc.toJS());
  });
});

describe("--native-sidecar=auto", () => {
  it("is native without a version, and from Kubernetes 1.29", () => {
    expect(resolveNativeSidecar("auto")).toBe(true);
    expect(resolveNativeSidecar("auto", "1.29")).toBe(true);
    expect(resolveNativeSidecar("auto", "v1.31.2")).toBe(true);
    expect(resolveNativeSidecar("auto", "1.28")).toBe(false);
    expect(resolveNativeSidecar("true", "1.20")).toBe(true);
    expect(resolveNativeSidecar("false")).toBe(false);
    expect(() => resolveNativeSidecar("auto", "latest")).toThrow(/MAJOR.MINOR/);
  });
});
