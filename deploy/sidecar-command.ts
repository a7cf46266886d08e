/**
 * `remora sidecar`: flags and files → the config to run (sidecar.ts generates it; the optional
 * mounted file is merged over it and the result validated in the config child process). The CLI
 * runs the proxy with what this returns.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { type LoadedConfig, loadOverlaidConfig } from "../proxy/config/isolated.js";
import {
  DEFAULT_CERT_DIR,
  DEFAULT_OVERLAY,
  type InboundTlsMode,
  type OutboundMode,
  SidecarInputError,
  type SidecarInputs,
  sidecarConfig,
} from "./sidecar.js";

export const SIDECAR_HELP = `Usage:
  remora sidecar [--app-ports PORTS] [--config FILE] [--cert-dir DIR]
                 [--inbound-tls-mode MODE] [--outbound-traffic-policy MODE]
                 [--no-discovery | --kubeconfig FILE] [--print-config]
                 [--log-level LEVEL] [--drain-time DURATION]

Runs remora as a pod's sidecar, with a config generated from what the pod gives it:
  - outbound listener 127.0.0.1:15001 (iptables sends the app's TCP there), routed by Host;
    hosts that are no mesh service: outboundTrafficPolicy ALLOW_ANY (passthrough)
  - one inbound listener per app port: the first on 15006, then 15007, ... (the same mapping
    "remora iptables --inbound-ports" uses), forwarding to 127.0.0.1:PORT
  - probes 0.0.0.0:15021, metrics 0.0.0.0:15090, admin 127.0.0.1:15000
  - identity from DIR/tls.crt, tls.key, ca.crt when present: inbound PERMISSIVE mTLS, and
    ISTIO_MUTUAL to every discovered Service the config file does not name
    (discovery.kubernetes.trafficPolicy; name a Service without a sidecar with tls DISABLE)
  - Kubernetes discovery with the pod's service account
  - POD_NAMESPACE, SERVICE_ACCOUNT (and POD_NAME) name the workload in metrics
A mounted config file is merged over it (docs/deploy.md gives the merge rules). A restart
applies changes: the sidecar does not watch its files, except the certificates.

Options:
      --app-ports PORTS          the app's ports, comma-separated (default $REMORA_APP_PORTS)
      --config FILE              merged over the generated config (default
                                 ${DEFAULT_OVERLAY} when it exists)
      --cert-dir DIR             the identity Secret's mount (default ${DEFAULT_CERT_DIR})
      --inbound-tls-mode MODE    STRICT, PERMISSIVE or DISABLE (default PERMISSIVE with an
                                 identity, DISABLE without)
      --outbound-traffic-policy MODE
                                 ALLOW_ANY (default) or REGISTRY_ONLY
      --no-discovery             no Kubernetes discovery (services from --config only)
      --kubeconfig FILE          discovery through a kubeconfig instead of the service account
      --print-config             print the config document (generated, file merged) and exit
      --log-level LEVEL          trace, debug, info, warn, error (default info)
      --drain-time DUR           on SIGTERM/SIGINT, how long open connections may finish (5s)
`;

/** What the CLI does next: print and exit, or run the proxy. */
export type SidecarOutcome =
  | { readonly kind: "exit"; readonly code: number }
  | {
      readonly kind: "run";
      readonly loaded: LoadedConfig;
      readonly logLevel: string | undefined;
      readonly drainTime: string | undefined;
    };

const TLS_MODES = ["STRICT", "PERMISSIVE", "DISABLE"] as const;
const OUTBOUND_MODES = ["ALLOW_ANY", "REGISTRY_ONLY"] as const;

function oneOf<T extends string>(text: string | undefined, allowed: readonly T[], flag: string) {
  if (text === undefined || (allowed as readonly string[]).includes(text)) return text as T;
  throw new SidecarInputError(`${flag}: expected ${allowed.join(", ")}, got "${text}"`);
}

/** Throws SidecarInputError (a usage error) or ConfigError (the merged config is invalid). */
export async function sidecarCommand(args: readonly string[]): Promise<SidecarOutcome> {
  const { values } = parseArgs({
    args: [...args],
    options: {
      help: { type: "boolean", short: "h" },
      "app-ports": { type: "string" },
      config: { type: "string", short: "c" },
      "cert-dir": { type: "string" },
      "inbound-tls-mode": { type: "string" },
      "outbound-traffic-policy": { type: "string" },
      "no-discovery": { type: "boolean" },
      kubeconfig: { type: "string" },
      "print-config": { type: "boolean" },
      "log-level": { type: "string" },
      "drain-time": { type: "string" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(SIDECAR_HELP);
    return { kind: "exit", code: 0 };
  }
  if (values["no-discovery"] && values.kubeconfig !== undefined) {
    throw new SidecarInputError("--no-discovery and --kubeconfig cannot be combined");
  }
  const certDir = resolve(values["cert-dir"] ?? DEFAULT_CERT_DIR);
  const inputs: SidecarInputs = {
    env: process.env,
    appPorts: values["app-ports"],
    certDir,
    certsPresent: ["tls.crt", "tls.key", "ca.crt"].every((file) =>
      existsSync(`${certDir}/${file}`),
    ),
    inboundTlsMode: oneOf<InboundTlsMode>(
      values["inbound-tls-mode"],
      TLS_MODES,
      "--inbound-tls-mode",
    ),
    outboundTrafficPolicy: oneOf<OutboundMode>(
      values["outbound-traffic-policy"],
      OUTBOUND_MODES,
      "--outbound-traffic-policy",
    ),
    discovery: values["no-discovery"] !== true,
    kubeconfig: values.kubeconfig === undefined ? undefined : resolve(values.kubeconfig),
  };
  const base = sidecarConfig(inputs);
  let overlay = values.config;
  if (overlay === undefined && existsSync(DEFAULT_OVERLAY)) overlay = DEFAULT_OVERLAY;
  // Validated first, so --print-config never shows a config that would not start.
  const loaded = await loadOverlaidConfig(base, overlay);
  if (values["print-config"]) {
    const { mergedDocument } = await import("../proxy/config/overlay.js");
    const { stringify } = await import("yaml");
    process.stdout.write(stringify(mergedDocument(base, overlay)));
    return { kind: "exit", code: 0 };
  }
  return {
    kind: "run",
    loaded,
    logLevel: values["log-level"],
    drainTime: values["drain-time"],
  };
}
