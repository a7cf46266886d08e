/**
 * What the injector adds to a pod, as data: names, ports, annotations and defaults that
 * `remora inject`, `remora webhook` and `remora manifests` share (docs/deploy.md). Callers may rely
 * on these names staying stable: the status annotation, container names and the Secret naming
 * convention are how a second injection, `kubectl logs -c` and an operator find what was added.
 *
 * Names follow Istio's where it has one (`sidecar.istio.io/proxyCPU` is `sidecar.remora.dev/proxyCPU`
 * here), so an Istio operator can guess them.
 */

// Istio's ports and the proxy's user, shared with `remora iptables` and `remora sidecar`: the
// injected pod and the capture rules must agree on them.
import { PORTS, PROXY_UID } from "./interception.js";

export { PORTS, PROXY_UID };

export const INIT_CONTAINER = "remora-init";
export const PROXY_CONTAINER = "remora-proxy";
export const IDENTITY_VOLUME = "remora-identity";
/** Where the sidecar reads tls.crt, tls.key and ca.crt (`remora sidecar --cert-dir`'s default). */
export { DEFAULT_CERT_DIR as IDENTITY_MOUNT } from "./sidecar.js";

export const CONFIG_VOLUME = "remora-config";
/**
 * The sidecar's config file, per namespace: the ConfigMap `remora-sidecar-config` in the pod's
 * namespace, key `sidecar.yaml`, mounted where `remora sidecar` looks for it (docs/deploy.md).
 * Optional: without it the pod starts and the sidecar runs the generated config alone.
 */
export const SIDECAR_CONFIG_MAP = "remora-sidecar-config";
export { OVERLAY_DIR as CONFIG_MOUNT, OVERLAY_FILE as SIDECAR_CONFIG_KEY } from "./sidecar.js";

/**
 * The identity Secret of a pod running as service account SA: `remora-identity-SA`, in the pod's
 * namespace, holding a Kubernetes TLS Secret's keys made by `remora ca issue` (docs/deploy.md).
 */
export function identitySecretName(serviceAccount: string): string {
  return `remora-identity-${serviceAccount}`;
}

/**
 * The image layout both images share (deploy/Dockerfile): node at /nodejs/bin/node (distroless'
 * path) and the CLI at /app/dist/proxy/cli.js. Containers set only `args` and use the image's
 * entrypoint; exec hooks have no entrypoint and name both.
 */
export const IMAGE_COMMAND = ["/nodejs/bin/node", "/app/dist/proxy/cli.js"] as const;

export const ANNOTATIONS = {
  /** Opt-out: "false" (or n, no, off) skips the pod. Also read as a label. */
  inject: "sidecar.remora.dev/inject",
  /** Istio's opt-out, honoured when remora's own is absent. Also read as a label. */
  istioInject: "sidecar.istio.io/inject",
  /** Written by the injector: JSON naming what it added; its presence makes injection a no-op. */
  status: "sidecar.remora.dev/status",
  /** Resource overrides of the proxy container (Kubernetes quantities). */
  proxyCPU: "sidecar.remora.dev/proxyCPU",
  proxyMemory: "sidecar.remora.dev/proxyMemory",
  proxyCPULimit: "sidecar.remora.dev/proxyCPULimit",
  proxyMemoryLimit: "sidecar.remora.dev/proxyMemoryLimit",
  /** "false" keeps the app's HTTP probes as they are (Istio's rewriteAppHTTPProbers). */
  rewriteAppHTTPProbers: "sidecar.remora.dev/rewriteAppHTTPProbers",
  /** Passed to `remora iptables` (Istio's traffic.sidecar.istio.io/...). */
  excludeInboundPorts: "traffic.sidecar.remora.dev/excludeInboundPorts",
  excludeOutboundPorts: "traffic.sidecar.remora.dev/excludeOutboundPorts",
  includeOutboundIPRanges: "traffic.sidecar.remora.dev/includeOutboundIPRanges",
} as const;

/** Annotations added when absent, so Prometheus scrapes the proxy and kubectl picks the app. */
export const SCRAPE_ANNOTATIONS = {
  "prometheus.io/scrape": "true",
  "prometheus.io/port": String(PORTS.metrics),
  "prometheus.io/path": "/stats/prometheus",
} as const;
export const DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container";

/** The proxy's resources unless annotated: room for ~1,000 busy connections (docs/runtime.md). */
export const DEFAULT_PROXY_RESOURCES = {
  requests: { cpu: "100m", memory: "64Mi" },
  limits: { cpu: "1", memory: "256Mi" },
} as const;
/** `remora iptables` runs once and exits. */
export const INIT_RESOURCES = {
  requests: { cpu: "10m", memory: "32Mi" },
  limits: { cpu: "100m", memory: "128Mi" },
} as const;

export { APP_PROBERS_ENV } from "../proxy/app-probes.js";
/** Comma-separated TCP ports of the app's containers. */
export const APP_PORTS_ENV = "REMORA_APP_PORTS";

/** `auto`: native when the target cluster is Kubernetes 1.29 or newer, or unknown. */
export type NativeSidecarMode = "auto" | "true" | "false";
export const NATIVE_SIDECAR_MIN_MINOR = 29;

export interface InjectOptions {
  /** The proxy's image (sidecar container). */
  readonly image: string;
  /** The init image: the same CLI plus the iptables binaries (deploy/Dockerfile's `init` target). */
  readonly initImage: string;
  /** true: the proxy is an init container with restartPolicy Always (Kubernetes 1.29+). */
  readonly nativeSidecar: boolean;
}

/**
 * `auto` resolves offline: with a target version (`--kubernetes-version 1.28`), native from 1.29;
 * without one, native (1.29 is the oldest Kubernetes release still supported upstream).
 */
export function resolveNativeSidecar(mode: NativeSidecarMode, kubernetesVersion?: string): boolean {
  if (mode !== "auto") return mode === "true";
  if (kubernetesVersion === undefined) return true;
  const match = /^v?(\d+)\.(\d+)/.exec(kubernetesVersion);
  if (match === null) {
    throw new Error(
      `--kubernetes-version: expected MAJOR.MINOR like 1.29, got "${kubernetesVersion}"`,
    );
  }
  const major = Number(match[1]);
  return major > 1 || Number(match[2]) >= NATIVE_SIDECAR_MIN_MINOR;
}
