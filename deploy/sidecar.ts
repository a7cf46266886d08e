/**
 * The config `remora sidecar` runs with, generated from what a pod gives the proxy: the
 * downward-API environment, the app's ports, the mounted identity files. Pure (no file system, no
 * schema): the command (sidecar-command.ts) checks which files exist, merges the optional mounted
 * config file over this (proxy/config/overlay.ts) and validates the result with the real schema.
 */
import { inboundListenerPorts, PORTS, parsePortList } from "./interception.js";

/** Where the injected pod mounts the identity Secret (`remora ca issue`'s three files). */
export const DEFAULT_CERT_DIR = "/etc/remora/certs";
/** Where the injected pod mounts the optional ConfigMap that holds the config file below. */
export const OVERLAY_DIR = "/etc/remora/config";
/** The config file's name in OVERLAY_DIR: the ConfigMap's key. */
export const OVERLAY_FILE = "sidecar.yaml";
/** An optional mounted config file merged over the generated one (a ConfigMap). */
export const DEFAULT_OVERLAY = `${OVERLAY_DIR}/${OVERLAY_FILE}`;

export type InboundTlsMode = "STRICT" | "PERMISSIVE" | "DISABLE";
export type OutboundMode = "ALLOW_ANY" | "REGISTRY_ONLY";

export interface SidecarInputs {
  /** The process environment: POD_NAME, POD_NAMESPACE, SERVICE_ACCOUNT, INSTANCE_IP, REMORA_APP_PORTS. */
  readonly env: Readonly<Record<string, string | undefined>>;
  /** `--app-ports`, which wins over $REMORA_APP_PORTS. */
  readonly appPorts?: string;
  readonly certDir: string;
  /** Whether tls.crt, tls.key and ca.crt are all in certDir. */
  readonly certsPresent: boolean;
  /** `--inbound-tls-mode`; default PERMISSIVE with an identity (Istio's default), DISABLE without. */
  readonly inboundTlsMode?: InboundTlsMode;
  readonly outboundTrafficPolicy?: OutboundMode;
  /** false: no `discovery.kubernetes` (`--no-discovery`). */
  readonly discovery: boolean;
  /** `--kubeconfig` for discovery (outside a cluster, tests); unset: the pod's service account. */
  readonly kubeconfig?: string;
}

/** A bad input, with the flag or variable it came from. */
export class SidecarInputError extends Error {
  override readonly name = "SidecarInputError";
}

/** The app ports in order (flag, else environment); [] when none are declared. */
export function appPortsOf(inputs: SidecarInputs): number[] {
  const [text, what] =
    inputs.appPorts !== undefined
      ? [inputs.appPorts, "--app-ports"]
      : [inputs.env.REMORA_APP_PORTS ?? "", "REMORA_APP_PORTS"];
  try {
    return parsePortList(text, what);
  } catch (error) {
    throw new SidecarInputError((error as Error).message);
  }
}

/**
 * The generated config document (schema input: defaults are the schema's). Inbound: one listener
 * per app port, `inbound-<PORT>` on the port `remora iptables` redirects that app port to,
 * forwarding to 127.0.0.1:<PORT> (loopback is never captured, so the forwarded connection cannot
 * loop back into remora). Outbound: 15001 on 127.0.0.1, where iptables REDIRECT delivers the
 * app's connections. With the identity and discovery, every discovered Service that the mounted
 * config does not name gets ISTIO_MUTUAL (`discovery.kubernetes.trafficPolicy`): remora's
 * stand-in for Istio's auto mTLS, which knows which destinations have a sidecar; in an
 * injection-enabled namespace they all do, and the mounted config names the ones that do not
 * (`tls: { mode: DISABLE }`).
 */
export function sidecarConfig(inputs: SidecarInputs): Record<string, unknown> {
  const env = inputs.env;
  const tls = inputs.certsPresent
    ? {
        certFile: `${inputs.certDir}/tls.crt`,
        keyFile: `${inputs.certDir}/tls.key`,
        caFile: `${inputs.certDir}/ca.crt`,
      }
    : undefined;
  const mode = inputs.inboundTlsMode ?? (tls === undefined ? "DISABLE" : "PERMISSIVE");
  if (mode !== "DISABLE" && tls === undefined) {
    throw new SidecarInputError(
      `inbound TLS mode ${mode} needs this workload's identity: ${inputs.certDir}/tls.crt, tls.key and ca.crt (mount the Secret made with "remora ca issue", or --cert-dir)`,
    );
  }
  const listeners: Record<string, unknown>[] = [
    { name: "outbound", kind: "outbound", address: "127.0.0.1", port: PORTS.outbound },
  ];
  for (const [app, port] of inboundListenerPorts(appPortsOf(inputs))) {
    listeners.push({
      name: `inbound-${app}`,
      kind: "inbound",
      address: "0.0.0.0",
      port,
      app: `127.0.0.1:${app}`,
      tls: { mode },
    });
  }
  const workload: Record<string, string> = {};
  if (nonEmpty(env.POD_NAMESPACE)) workload.namespace = env.POD_NAMESPACE;
  if (nonEmpty(env.SERVICE_ACCOUNT)) workload.serviceAccount = env.SERVICE_ACCOUNT;
  const config: Record<string, unknown> = {
    admin: { address: "127.0.0.1", port: PORTS.admin },
    probes: { address: "0.0.0.0", port: PORTS.probes },
    metrics: { address: "0.0.0.0", port: PORTS.metrics },
    listeners,
    outboundTrafficPolicy: { mode: inputs.outboundTrafficPolicy ?? "ALLOW_ANY" },
  };
  if (Object.keys(workload).length > 0) config.workload = workload;
  if (tls !== undefined) config.tls = tls;
  if (inputs.discovery) {
    const kubernetes: Record<string, unknown> =
      inputs.kubeconfig === undefined ? {} : { kubeconfig: inputs.kubeconfig };
    if (tls !== undefined) kubernetes.trafficPolicy = { tls: { mode: "ISTIO_MUTUAL" } };
    config.discovery = { kubernetes };
  }
  return config;
}

function nonEmpty(value: string | undefined): value is string {
  return value !== undefined && value !== "";
}
