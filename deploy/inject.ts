/**
 * The injector, on plain objects: what `remora inject` does to each document and what
 * `remora webhook` does to each pod (deploy/webhook.ts diffs the two). Pure: no I/O, no YAML; the
 * input is never modified. The pieces added are described in deploy/sidecar-template.ts.
 */
import { rewriteAppProbes } from "./probe-rewrite.js";
import {
  ANNOTATIONS,
  APP_PORTS_ENV,
  APP_PROBERS_ENV,
  CONFIG_MOUNT,
  CONFIG_VOLUME,
  DEFAULT_CONTAINER_ANNOTATION,
  DEFAULT_PROXY_RESOURCES,
  IDENTITY_MOUNT,
  IDENTITY_VOLUME,
  IMAGE_COMMAND,
  INIT_CONTAINER,
  INIT_RESOURCES,
  type InjectOptions,
  identitySecretName,
  PORTS,
  PROXY_CONTAINER,
  PROXY_UID,
  SCRAPE_ANNOTATIONS,
  SIDECAR_CONFIG_MAP,
} from "./sidecar-template.js";

export type JsonObject = Record<string, unknown>;

/** An annotation or object the injector cannot act on; the message names it. */
export class InjectError extends Error {
  override readonly name = "InjectError";
  readonly code = "REMORA_ERR_INJECT";
}

/** What happened to one pod (template): injected, or skipped and why. */
export interface PodOutcome {
  /** e.g. `Deployment default/web`. */
  readonly where: string;
  readonly injected: boolean;
  /** Why it was skipped; undefined when injected. */
  readonly reason?: string;
  /** Worth telling the user (hostNetwork, a probe left alone, a Job that will not finish). */
  readonly warnings: readonly string[];
}

export interface ObjectResult {
  /** The object, injected, or the input itself when nothing changed. */
  readonly object: unknown;
  readonly pods: readonly PodOutcome[];
}

/** Where each workload kind keeps its pod template; other kinds (and API versions) pass through. */
const TEMPLATE_PATHS: Record<string, { apiVersion: string; path: readonly string[] }> = {
  Pod: { apiVersion: "v1", path: [] },
  Deployment: { apiVersion: "apps/v1", path: ["spec", "template"] },
  StatefulSet: { apiVersion: "apps/v1", path: ["spec", "template"] },
  DaemonSet: { apiVersion: "apps/v1", path: ["spec", "template"] },
  ReplicaSet: { apiVersion: "apps/v1", path: ["spec", "template"] },
  Job: { apiVersion: "batch/v1", path: ["spec", "template"] },
  CronJob: { apiVersion: "batch/v1", path: ["spec", "jobTemplate", "spec", "template"] },
};

/** Injects into a workload, a `List` of them (recursively), or returns anything else as is. */
export function injectObject(input: unknown, options: InjectOptions): ObjectResult {
  if (!isObject(input)) return { object: input, pods: [] };
  const kind = input.kind;
  if (typeof kind === "string" && kind.endsWith("List") && Array.isArray(input.items)) {
    const pods: PodOutcome[] = [];
    const items = input.items.map((item) => {
      const result = injectObject(item, options);
      pods.push(...result.pods);
      return result.object;
    });
    return pods.some((p) => p.injected)
      ? { object: { ...input, items }, pods }
      : { object: input, pods };
  }
  const target = typeof kind === "string" ? TEMPLATE_PATHS[kind] : undefined;
  if (target === undefined || input.apiVersion !== target.apiVersion)
    return { object: input, pods: [] };
  const meta = isObject(input.metadata) ? input.metadata : {};
  const where = `${kind} ${meta.namespace ?? "default"}/${meta.name ?? meta.generateName ?? "?"}`;
  const template = getPath(input, target.path);
  if (!isObject(template) || !isObject(template.spec)) {
    throw new InjectError(`${where}: no pod spec at ${["", ...target.path, "spec"].join(".")}`);
  }
  const warnings: string[] = [];
  if ((kind === "Job" || kind === "CronJob") && !options.nativeSidecar) {
    warnings.push(
      `${where}: with --native-sidecar=false the proxy container never exits, so the Job never completes`,
    );
  }
  const pod = injectPod(template, options, where);
  const outcome = { ...pod.outcome, warnings: [...warnings, ...pod.outcome.warnings] };
  if (!outcome.injected) return { object: input, pods: [outcome] };
  return { object: setPath(input, target.path, pod.template), pods: [outcome] };
}

/**
 * One pod or pod template (`{ metadata, spec }`): the decision, then the additions. Already
 * injected, opted out and hostNetwork pods come back unchanged.
 */
export function injectPod(
  template: JsonObject,
  options: InjectOptions,
  where = "Pod",
): { template: JsonObject; outcome: PodOutcome } {
  const metadata = isObject(template.metadata) ? template.metadata : {};
  const spec = template.spec as JsonObject;
  const annotations = stringMap(metadata.annotations);
  const skip = skipReason(metadata, spec, annotations, where);
  if (skip !== undefined) {
    const warnings = skip.warn ? [`${where}: ${skip.reason}`] : [];
    return { template, outcome: { where, injected: false, reason: skip.reason, warnings } };
  }

  const apps = ((spec.containers as JsonObject[] | undefined) ?? []).filter(isObject);
  const rewrite = parseSwitch(annotations, ANNOTATIONS.rewriteAppHTTPProbers, where) !== false;
  const probes = rewrite
    ? rewriteAppProbes(apps)
    : { containers: apps, probers: {}, warnings: [] as string[] };
  const proxy = proxyContainer(options, annotations, apps, probes.probers, where);
  const init = initContainer(options, annotations, tcpPorts(apps), where);
  const oldInit = (spec.initContainers as JsonObject[] | undefined) ?? [];

  // initContainers goes just before containers when the pod had none, so it reads in start order.
  const newSpec: JsonObject = {};
  for (const [key, value] of Object.entries(spec)) {
    if (key === "containers" && !("initContainers" in spec)) newSpec.initContainers = undefined;
    newSpec[key] = value;
  }
  newSpec.initContainers = options.nativeSidecar ? [init, proxy, ...oldInit] : [init, ...oldInit];
  newSpec.containers = options.nativeSidecar ? probes.containers : [proxy, ...probes.containers];
  const serviceAccount = String(spec.serviceAccountName ?? spec.serviceAccount ?? "default");
  newSpec.volumes = [
    ...((spec.volumes as JsonObject[] | undefined) ?? []),
    { name: IDENTITY_VOLUME, secret: { secretName: identitySecretName(serviceAccount) } },
    // Optional: a namespace without the ConfigMap runs the generated config alone.
    { name: CONFIG_VOLUME, configMap: { name: SIDECAR_CONFIG_MAP, optional: true } },
  ];

  const status = {
    initContainers: options.nativeSidecar ? [INIT_CONTAINER, PROXY_CONTAINER] : [INIT_CONTAINER],
    containers: options.nativeSidecar ? [] : [PROXY_CONTAINER],
    volumes: [IDENTITY_VOLUME, CONFIG_VOLUME],
    nativeSidecar: options.nativeSidecar,
  };
  const newAnnotations: Record<string, string> = { ...annotations };
  for (const [key, value] of Object.entries(SCRAPE_ANNOTATIONS)) newAnnotations[key] ??= value;
  const firstApp = apps[0]?.name;
  if (typeof firstApp === "string") newAnnotations[DEFAULT_CONTAINER_ANNOTATION] ??= firstApp;
  newAnnotations[ANNOTATIONS.status] = JSON.stringify(status);

  return {
    template: {
      ...template,
      metadata: { ...metadata, annotations: newAnnotations },
      spec: newSpec,
    },
    outcome: { where, injected: true, warnings: probes.warnings.map((w) => `${where}: ${w}`) },
  };
}

function skipReason(
  metadata: JsonObject,
  spec: JsonObject,
  annotations: Record<string, string>,
  where: string,
): { reason: string; warn: boolean } | undefined {
  const names = [
    ...((spec.initContainers as JsonObject[] | undefined) ?? []),
    ...((spec.containers as JsonObject[] | undefined) ?? []),
  ].map((c) => c?.name);
  if (annotations[ANNOTATIONS.status] !== undefined || names.includes(PROXY_CONTAINER)) {
    return { reason: "already injected", warn: false };
  }
  const labels = stringMap(metadata.labels);
  for (const key of [ANNOTATIONS.inject, ANNOTATIONS.istioInject]) {
    const choice = parseSwitch(annotations, key, where) ?? parseSwitch(labels, key, where);
    if (choice === false) return { reason: `opted out (${key}: false)`, warn: false };
    if (choice === true) break;
  }
  if (spec.hostNetwork === true) {
    return {
      reason: "hostNetwork pod skipped: its traffic is the node's, which iptables must not capture",
      warn: true,
    };
  }
  return undefined;
}

function proxyContainer(
  options: InjectOptions,
  annotations: Record<string, string>,
  apps: readonly JsonObject[],
  probers: Record<string, unknown>,
  where: string,
): JsonObject {
  const env: JsonObject[] = [
    fieldEnv("POD_NAME", "metadata.name"),
    fieldEnv("POD_NAMESPACE", "metadata.namespace"),
    fieldEnv("SERVICE_ACCOUNT", "spec.serviceAccountName"),
    fieldEnv("INSTANCE_IP", "status.podIP"),
  ];
  const appPorts = tcpPorts(apps);
  if (appPorts.length > 0) env.push({ name: APP_PORTS_ENV, value: appPorts.join(",") });
  if (Object.keys(probers).length > 0) {
    env.push({ name: APP_PROBERS_ENV, value: JSON.stringify(probers) });
  }
  const ready = { httpGet: { path: "/healthz/ready", port: PORTS.probes } };
  const container: JsonObject = {
    name: PROXY_CONTAINER,
    image: options.image,
    args: ["sidecar"],
    ports: [{ name: "http-envoy-prom", containerPort: PORTS.metrics, protocol: "TCP" }],
    env,
    resources: proxyResources(annotations, where),
    securityContext: {
      runAsUser: PROXY_UID,
      runAsGroup: PROXY_UID,
      runAsNonRoot: true,
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ["ALL"] },
    },
    readinessProbe: { ...ready, periodSeconds: 2, timeoutSeconds: 3, failureThreshold: 30 },
    volumeMounts: [
      { name: IDENTITY_VOLUME, mountPath: IDENTITY_MOUNT, readOnly: true },
      { name: CONFIG_VOLUME, mountPath: CONFIG_MOUNT, readOnly: true },
    ],
  };
  if (options.nativeSidecar) {
    // The kubelet starts the app only once this succeeds: the proxy is ready before the app runs.
    container.startupProbe = {
      ...ready,
      periodSeconds: 1,
      timeoutSeconds: 3,
      failureThreshold: 600,
    };
    container.restartPolicy = "Always";
  } else {
    // Classic mode: containers start in order and the next one waits for postStart to return,
    // so the app starts after the proxy is ready; preStop keeps the proxy serving while the app
    // shuts down (the kubelet signals both at once), then SIGTERM drains it.
    container.lifecycle = {
      postStart: { exec: { command: [...IMAGE_COMMAND, "hook", "post-start"] } },
      preStop: { exec: { command: [...IMAGE_COMMAND, "hook", "pre-stop"] } },
    };
  }
  return container;
}

function initContainer(
  options: InjectOptions,
  annotations: Record<string, string>,
  appPorts: readonly number[],
  where: string,
): JsonObject {
  const args = ["iptables", "--proxy-uid", String(PROXY_UID)];
  // The same ports in the same order as the proxy's REMORA_APP_PORTS: app port i is redirected
  // to inbound listener i (15006, 15007, ...; deploy/interception.ts), which forwards to it.
  if (appPorts.length > 0) args.push("--inbound-ports", appPorts.join(","));
  const flags = [
    [ANNOTATIONS.excludeInboundPorts, "--exclude-inbound-ports", PORT_LIST],
    [ANNOTATIONS.excludeOutboundPorts, "--exclude-outbound-ports", PORT_LIST],
    [ANNOTATIONS.includeOutboundIPRanges, "--include-outbound-ip-ranges", IP_RANGES],
  ] as const;
  for (const [key, flag, pattern] of flags) {
    const value = annotations[key]?.replace(/\s+/g, "");
    if (value === undefined) continue;
    if (!pattern.test(value))
      throw new InjectError(
        `${where}: annotation ${key}: "${value}" is not a list of ${pattern === PORT_LIST ? "ports" : "CIDR ranges (or *)"}`,
      );
    args.push(flag, value);
  }
  return {
    name: INIT_CONTAINER,
    image: options.initImage,
    args,
    resources: INIT_RESOURCES,
    // Istio's istio-init: root with NET_ADMIN and NET_RAW only, to write the nat table.
    securityContext: {
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: false,
      capabilities: { add: ["NET_ADMIN", "NET_RAW"], drop: ["ALL"] },
    },
  };
}

const PORT_LIST = /^\d{1,5}(,\d{1,5})*$/;
const IP_RANGES = /^(\*|[0-9a-fA-F.:]+\/\d{1,3}(,[0-9a-fA-F.:]+\/\d{1,3})*)$/;
/** A Kubernetes resource quantity (resource.Quantity's grammar, without the rare forms). */
const QUANTITY = /^(\d+(\.\d*)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+)?$/;

function proxyResources(annotations: Record<string, string>, where: string): JsonObject {
  const pick = (key: string, fallback: string): string => {
    const value = annotations[key];
    if (value === undefined) return fallback;
    if (!QUANTITY.test(value)) {
      throw new InjectError(
        `${where}: annotation ${key}: "${value}" is not a Kubernetes quantity (e.g. 100m, 128Mi)`,
      );
    }
    return value;
  };
  const d = DEFAULT_PROXY_RESOURCES;
  return {
    requests: {
      cpu: pick(ANNOTATIONS.proxyCPU, d.requests.cpu),
      memory: pick(ANNOTATIONS.proxyMemory, d.requests.memory),
    },
    limits: {
      cpu: pick(ANNOTATIONS.proxyCPULimit, d.limits.cpu),
      memory: pick(ANNOTATIONS.proxyMemoryLimit, d.limits.memory),
    },
  };
}

/** The app containers' TCP container ports, in order, once each. */
function tcpPorts(apps: readonly JsonObject[]): number[] {
  const ports = new Set<number>();
  for (const app of apps) {
    for (const port of (app.ports as JsonObject[] | undefined) ?? []) {
      const protocol = port.protocol ?? "TCP";
      if (protocol === "TCP" && typeof port.containerPort === "number")
        ports.add(port.containerPort);
    }
  }
  return [...ports];
}

function fieldEnv(name: string, fieldPath: string): JsonObject {
  return { name, valueFrom: { fieldRef: { fieldPath } } };
}

/** Istio's truth values: y, yes, true, on / n, no, false, off; undefined when absent. */
function parseSwitch(map: Record<string, string>, key: string, where: string): boolean | undefined {
  const value = map[key];
  if (value === undefined) return undefined;
  const v = value.trim().toLowerCase();
  if (["y", "yes", "true", "on"].includes(v)) return true;
  if (["n", "no", "false", "off"].includes(v)) return false;
  throw new InjectError(`${where}: ${key}: "${value}" is neither true nor false`);
}

function stringMap(value: unknown): Record<string, string> {
  if (!isObject(value)) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) if (typeof v === "string") out[k] = v;
  return out;
}

export function isObject(value: unknown): value is JsonObject {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function getPath(object: JsonObject, path: readonly string[]): unknown {
  let at: unknown = object;
  for (const key of path) at = isObject(at) ? at[key] : undefined;
  return at;
}

/** A copy of `object` with `value` at `path`, sharing every untouched branch. */
function setPath(object: JsonObject, path: readonly string[], value: JsonObject): JsonObject {
  if (path.length === 0) return value;
  const [head, ...rest] = path as [string, ...string[]];
  return { ...object, [head]: setPath(object[head] as JsonObject, rest, value) };
}
