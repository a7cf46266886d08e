/**
 * The deploy commands' CLI (`remora inject`, `webhook`, `manifests`, `hook`): flags checked here,
 * work done by the modules beside it. proxy/cli.ts loads this file on demand, so the proxy never
 * loads the YAML parser, node-forge or the webhook's server.
 */
import { readFileSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { parseLifetime } from "../tls/lifetime.js";
import {
  type InjectOptions,
  type NativeSidecarMode,
  PORTS,
  resolveNativeSidecar,
} from "./sidecar-template.js";

export const HELP: Record<string, string> = {
  inject: `Usage:
  remora inject -f FILE|- [-o FILE] [--native-sidecar=auto|true|false] [--kubernetes-version V]
                [--image IMAGE] [--init-image IMAGE]

Adds the remora sidecar to every Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job and
CronJob in a YAML stream (several documents and Lists too), offline, like istioctl kube-inject.
Other documents are printed unchanged, in place. Pods already injected, opted out
(sidecar.remora.dev/inject: "false" or sidecar.istio.io/inject: "false") or on the host network
are left as they are. Warnings go to stderr. See docs/deploy.md.

Options:
  -f, --filename FILE        the YAML to read; - for standard input
  -o, --output FILE          where to write (default standard output)
      --native-sidecar MODE  true: the proxy is an init container with restartPolicy Always
                             (Kubernetes 1.29+); false: a regular container started first, with
                             postStart/preStop hooks; auto (default): true, unless
                             --kubernetes-version names a release before 1.29
      --kubernetes-version V the target cluster's version, for --native-sidecar=auto (e.g. 1.28)
      --image IMAGE          the proxy image (default ${defaultImages().image})
      --init-image IMAGE     the init image (default ${defaultImages().initImage})
`,
  webhook: `Usage:
  remora webhook --cert FILE --key FILE [--port 9443] [--address ADDR]
                 [--native-sidecar=auto|true|false] [--kubernetes-version V]
                 [--image IMAGE] [--init-image IMAGE]

A mutating admission webhook over HTTPS: POST /inject takes an AdmissionReview
(admission.k8s.io/v1) for a pod and answers with the JSONPatch that makes it what
"remora inject" makes of it. GET /healthz answers 200; GET /metrics its counters (Prometheus
text). Injection flags mean what they mean for "remora inject". See docs/deploy.md.

Options:
      --cert FILE      serving certificate (PEM), e.g. the Secret made by "remora manifests"
      --key FILE       its private key (PEM)
      --port PORT      default 9443
      --address ADDR   default 0.0.0.0
`,
  manifests: `Usage:
  remora manifests [--namespace remora-system] [--image IMAGE] [--init-image IMAGE]
                   [--cert-ttl DURATION]

Prints everything a cluster needs for injection: the namespace, service accounts, discovery RBAC,
the webhook's Deployment, Service and MutatingWebhookConfiguration, and its serving certificate
(a new self-signed CA per run: the caBundle; the certificate and key in a TLS Secret). Apply with
"remora manifests | kubectl apply -f -". See docs/deploy.md.

Options:
      --namespace NS        where the webhook runs (default remora-system)
      --image IMAGE         the image of the webhook and of injected proxies
      --init-image IMAGE    the init image injected pods use
      --cert-ttl DURATION   the serving certificate's lifetime (default 1y)
`,
  hook: `Usage:
  remora hook post-start [--probe-port 15021] [--timeout 60s]
  remora hook pre-stop [--wait 5s]

The classic-mode sidecar's lifecycle hooks (exec'd by the kubelet in the proxy container).
post-start returns once GET /healthz/ready on the probe port answers 200 (exit 1 after the
timeout), so the kubelet starts the app after the proxy is ready. pre-stop waits, keeping the
proxy serving while the app shuts down; SIGTERM then drains the proxy.
`,
};

/** The images this release injects: tags follow package.json's version. */
export function defaultImages(): { image: string; initImage: string } {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  return {
    image: `ghcr.io/remora-mesh/remora:${pkg.version}`,
    initImage: `ghcr.io/remora-mesh/remora-init:${pkg.version}`,
  };
}

class DeployUsageError extends Error {}

/** Runs one deploy command; resolves its exit code (-1: a server keeps running). */
export async function runDeployCommand(command: string, args: string[]): Promise<number> {
  try {
    return await dispatch(command, args);
  } catch (error) {
    if (
      error instanceof DeployUsageError ||
      (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")
    ) {
      process.stderr.write(
        `remora: ${(error as Error).message}\nRun "remora ${command} --help" for usage.\n`,
      );
      return 2;
    }
    throw error;
  }
}

const INJECTION_FLAGS = {
  "native-sidecar": { type: "string" },
  "kubernetes-version": { type: "string" },
  image: { type: "string" },
  "init-image": { type: "string" },
} as const;

function injectionOptions(values: {
  "native-sidecar"?: string;
  "kubernetes-version"?: string;
  image?: string;
  "init-image"?: string;
}): InjectOptions {
  const mode = values["native-sidecar"] ?? "auto";
  if (mode !== "auto" && mode !== "true" && mode !== "false") {
    throw new DeployUsageError(`--native-sidecar: expected auto, true or false, got "${mode}"`);
  }
  let nativeSidecar: boolean;
  try {
    nativeSidecar = resolveNativeSidecar(mode as NativeSidecarMode, values["kubernetes-version"]);
  } catch (error) {
    throw new DeployUsageError((error as Error).message);
  }
  const defaults = defaultImages();
  return {
    image: values.image ?? defaults.image,
    initImage: values["init-image"] ?? defaults.initImage,
    nativeSidecar,
  };
}

async function dispatch(command: string, args: string[]): Promise<number> {
  switch (command) {
    case "inject": {
      const { values } = parseArgs({
        args,
        options: {
          help: { type: "boolean", short: "h" },
          filename: { type: "string", short: "f" },
          output: { type: "string", short: "o" },
          ...INJECTION_FLAGS,
        },
        strict: true,
        allowPositionals: false,
      });
      if (values.help) return help(command);
      if (values.filename === undefined)
        throw new DeployUsageError("inject needs -f FILE (or -f - for standard input)");
      const options = injectionOptions(values);
      const source = values.filename === "-" ? "stdin" : values.filename;
      const text =
        values.filename === "-" ? await readStdin() : await readFile(values.filename, "utf8");
      const { injectYaml } = await import("./inject-yaml.js");
      const result = injectYaml(text, options, source);
      for (const pod of result.pods)
        for (const w of pod.warnings) process.stderr.write(`warning: ${w}\n`);
      if (values.output === undefined) process.stdout.write(result.text);
      else await writeFile(values.output, result.text);
      return 0;
    }
    case "webhook": {
      const { values } = parseArgs({
        args,
        options: {
          help: { type: "boolean", short: "h" },
          cert: { type: "string" },
          key: { type: "string" },
          port: { type: "string" },
          address: { type: "string" },
          "log-level": { type: "string" },
          ...INJECTION_FLAGS,
        },
        strict: true,
        allowPositionals: false,
      });
      if (values.help) return help(command);
      if (values.cert === undefined || values.key === undefined) {
        throw new DeployUsageError("webhook needs --cert FILE and --key FILE");
      }
      const port = Number(values.port ?? 9443);
      if (!/^\d+$/.test(values.port ?? "9443") || port > 65535) {
        throw new DeployUsageError(`--port: expected a port 0-65535, got "${values.port}"`);
      }
      const options = injectionOptions(values);
      const { startWebhook } = await import("./webhook.js");
      await startWebhook({
        certFile: values.cert,
        keyFile: values.key,
        port,
        address: values.address ?? "0.0.0.0",
        inject: options,
        logLevel: values["log-level"],
      });
      return -1;
    }
    case "manifests": {
      const { values } = parseArgs({
        args,
        options: {
          help: { type: "boolean", short: "h" },
          namespace: { type: "string" },
          image: { type: "string" },
          "init-image": { type: "string" },
          "cert-ttl": { type: "string" },
        },
        strict: true,
        allowPositionals: false,
      });
      if (values.help) return help(command);
      const defaults = defaultImages();
      let certTtlMs: number | undefined;
      try {
        certTtlMs =
          values["cert-ttl"] === undefined ? undefined : parseLifetime(values["cert-ttl"]);
      } catch (error) {
        throw new DeployUsageError(`--cert-ttl: ${(error as Error).message}`);
      }
      const { renderManifests } = await import("./manifests.js");
      process.stdout.write(
        await renderManifests({
          namespace: values.namespace ?? "remora-system",
          image: values.image ?? defaults.image,
          initImage: values["init-image"] ?? defaults.initImage,
          certTtlMs,
        }),
      );
      return 0;
    }
    case "hook": {
      const [sub, ...rest] = args;
      if (sub === undefined || sub === "-h" || sub === "--help")
        return help(command, sub === undefined ? 1 : 0);
      const { values } = parseArgs({
        args: rest,
        options: {
          help: { type: "boolean", short: "h" },
          "probe-port": { type: "string" },
          timeout: { type: "string" },
          wait: { type: "string" },
        },
        strict: true,
        allowPositionals: false,
      });
      if (values.help) return help(command);
      const { postStart, preStop } = await import("./lifecycle-hook.js");
      if (sub === "post-start") {
        return postStart({
          probePort: Number(values["probe-port"] ?? PORTS.probes),
          timeoutMs: seconds(values.timeout, "--timeout", 60_000),
        });
      }
      if (sub === "pre-stop") return preStop({ waitMs: seconds(values.wait, "--wait", 5000) });
      throw new DeployUsageError(`unknown command "hook ${sub}" (expected post-start or pre-stop)`);
    }
  }
  throw new DeployUsageError(`unknown command "${command}"`);
}

function help(command: string, code = 0): number {
  process.stdout.write(HELP[command]!);
  return code;
}

function seconds(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text);
  if (match === null)
    throw new DeployUsageError(`${flag}: expected a duration like 5s, got "${text}"`);
  const n = Number(match[1]);
  return match[2] === "ms" ? n : match[2] === "s" ? n * 1000 : n * 60_000;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}
