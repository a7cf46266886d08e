#!/usr/bin/env -S MALLOC_ARENA_MAX=2 node --max-semi-space-size=2 --heap-growing-percent=10
// Memory settings, measured with the benchmark (2026-12-02, docs/operations.md "Memory"): a
// sidecar shares its pod's memory limit, so remora trades V8's default headroom for a smaller
// footprint. --max-semi-space-size=2 caps the young generation (V8 grows it to 16 MB per
// semi-space under allocation pressure); --heap-growing-percent=10 collects the old generation
// when it has grown 10% past what survived the last collection; MALLOC_ARENA_MAX=2 keeps V8's
// worker threads from each growing a malloc arena of their own. Together: peak RSS under the
// garbage scenario ~160 → ~95 MB, 1,000 busy connections ~210 → 96 MiB, small GET at the same
// requests/s; the price is at 1,000 busy connections, 10–20% fewer requests/s (more scavenges
// with 1,000 requests in flight). (--optimize-for-size: similar memory at ~40% more CPU.)
// bench/targets.ts launches remora with whatever this line carries (`env -S VAR=x node ...`);
// deploy/Dockerfile's ENV and ENTRYPOINT repeat it (test/memory-settings.test.ts checks).
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { defaultStateDir } from "../tls/dev-state.js";
import { InvalidLifetimeError, parseLifetime } from "../tls/lifetime.js";
import { ConfigError } from "./config/errors.js";
import { buildQuickConfig, type LoadedConfig, loadConfig } from "./config/isolated.js";
import type { TlsFlags } from "./config/tls-flags.js";
import { demoBanner, demoConfig, freePort, startDemoBackends } from "./demo.js";
import { createLogger } from "./log.js";
import { unsupportedNodeMessage } from "./node-version.js";
import { Runtime } from "./runtime.js";

const USAGE = `remora — a sidecar data-plane proxy

Usage:
  remora run -c FILE                 run with a config file
  remora run --listen PORT --admin-port PORT --service NAME=HOST:PORT[,HOST:PORT...]
                                     quick mode: one outbound listener, services from flags
  remora validate -c FILE            check a config file; exit 1 with every error
  remora demo                        start demo backends and a proxy in front of them
  remora status [--admin URL]        services, endpoints, health and traffic of a running remora
  remora ca init --out DIR           create a mesh CA (ca.crt, ca.key)
  remora ca issue --ca DIR --namespace NS --service-account SA --out DIR
                                     issue a workload certificate (tls.crt, tls.key, ca.crt)
  remora iptables [options]          install the pod's traffic capture (an init container)
  remora sidecar [options]           run as a pod's sidecar from its environment
  remora inject -f FILE|- [-o FILE] [--native-sidecar=auto|true|false]
                                     add the sidecar to workloads in YAML (like kube-inject)
  remora webhook --cert FILE --key FILE [--port 9443]
                                     the mutating admission webhook that injects pods
  remora manifests [--namespace NS] [--image IMAGE]
                                     print the webhook's Kubernetes objects
  remora help [COMMAND]              this text, or a command's

Options for every command:
  -h, --help                         show help
  -v, --version                      print the version
`;

const HELP: Record<string, string> = {
  run: `Usage:
  remora run -c FILE [--log-level LEVEL] [--drain-time DURATION] [--dev-mtls [--state-dir DIR]]
  remora run --listen PORT --admin-port PORT --service NAME=HOST:PORT[,HOST:PORT...] ...

Runs the proxy. With -c, everything comes from the YAML config (see docs/config.md).
Quick mode builds the same config from flags: an outbound listener on 127.0.0.1:PORT that
routes requests whose Host is NAME (or NAME.NAMESPACE[.svc[.cluster.local]]) to the listed
endpoints, round-robin. --service may be repeated.

Options:
  -c, --config FILE       config file (YAML)
      --listen PORT       quick mode: outbound listener port (0 = any free port)
      --admin-port PORT   quick mode: admin API port (default 15000; 0 = any free port)
      --service SPEC      quick mode: NAME=HOST:PORT[,HOST:PORT...] (repeatable)
      --log-level LEVEL   trace, debug, info, warn, error (default info; env REMORA_LOG_LEVEL)
      --drain-time DUR    on SIGTERM/SIGINT, how long to let open connections finish (default 5s)
      --dev-mtls          development only: this workload's mTLS identity comes from a local CA
                          made on first start (config tls: { dev: true }; see docs/security.md)
      --state-dir DIR     where --dev-mtls keeps its CA and certificates (default
                          $REMORA_STATE_DIR, else $XDG_STATE_HOME/remora, else
                          ~/.local/state/remora)

Logs are JSON lines on stderr; each listener logs "listener ready" with its bound port, the
metrics listener "metrics listening" (Prometheus: GET /stats/prometheus, see docs/metrics.md).
SIGTERM and SIGINT drain: listeners stop accepting, in-flight requests finish, then exit 0.
With -c, the file is watched and reloaded when it changes, on SIGHUP and on the admin API's
POST /reload; an invalid file is logged and the running config stays (docs/operations.md).
`,
  validate: `Usage:
  remora validate -c FILE [--dev-mtls] [--state-dir DIR]

Loads and validates FILE as remora would at startup. Prints "FILE: ok" and exits 0, or prints
every problem with the path of the offending key and exits 1.
`,
  demo: `Usage:
  remora demo [--port PORT] [--admin-port PORT] [--inbound-port PORT] [--state-dir DIR]

Starts three small HTTP backends and a proxy in front of them (service "hello"), and prints
curl commands to try and the dashboard's URL (the admin API's /). The third backend fails on
purpose: of every 4 requests it receives, it answers the 2nd with 503 and cuts the 4th off
mid-response, so failures show in the dashboard, /clusters and the metrics.
Service "secure" shows mTLS: the first backend behind the demo's own STRICT inbound listener,
reached over ISTIO_MUTUAL with a dev-mode identity (a local CA under the state directory, as
with --dev-mtls). The config is written to STATE_DIR/demo/remora-demo.yaml.
Defaults: proxy 15001, admin 15000, inbound 15006 (Istio's ports; 0 = any free port); state
directory as for --dev-mtls.
`,
  status: `Usage:
  remora status [--admin URL] [--json] [--timeout DURATION]

Asks a running remora's admin API (GET /dashboard.json) and prints its state, config hash and
a table of services and endpoints: health, requests per second, error rate, p50 and p99 latency
and response flags over the last minute (see docs/dashboard.md). Exits 1 with the reason when
nothing answers.

Options:
      --admin URL         admin API: URL, HOST:PORT or PORT (default http://127.0.0.1:15000)
      --json              print the JSON document instead of the table, for scripts
      --timeout DUR       how long to wait for an answer (default 3s)
`,
  ca: `Usage:
  remora ca init --out DIR [--trust-domain DOMAIN] [--ttl DURATION] [--key-type TYPE] [--force]
  remora ca issue --ca DIR --namespace NS --service-account SA --out DIR [options]

A small mesh CA for workload certificates carrying SPIFFE identities
(spiffe://<trust domain>/ns/<namespace>/sa/<service account>). "remora ca init --help" and
"remora ca issue --help" describe each command.
`,
  help: "Usage:\n  remora help [COMMAND]\n",
};

const CA_HELP: Record<string, string> = {
  init: `Usage:
  remora ca init --out DIR [--trust-domain DOMAIN] [--ttl DURATION] [--key-type TYPE] [--force]

Creates a self-signed CA and writes DIR/ca.crt (mode 0644) and DIR/ca.key (mode 0600); DIR is
created if missing. The certificate's subject is O=<trust domain>, CN=remora CA, and it carries
spiffe://<trust domain> as a URI SAN. An existing CA key in DIR is never replaced without --force.

Options:
      --out DIR              where to write ca.crt and ca.key
      --trust-domain DOMAIN  the mesh's trust domain (default cluster.local)
      --ttl DURATION         lifetime, a number with s, m, h, d or y (default 10y; 1y = 365d)
      --key-type TYPE        rsa (RSA 2048, the default) or ecdsa (P-256)
      --force                replace an existing CA (certificates it issued stop verifying)
`,
  issue: `Usage:
  remora ca issue --ca DIR --namespace NS --service-account SA --out DIR [--ttl DURATION]
                  [--dns NAME]... [--key-type TYPE] [--trust-domain DOMAIN]

Issues a workload certificate for spiffe://<trust domain>/ns/NS/sa/SA, signed by the CA in
--ca DIR (its ca.crt and ca.key), and writes a Kubernetes TLS Secret's files to --out DIR:
tls.crt (mode 0644), tls.key (mode 0600) and ca.crt, the CA certificate to trust (0644).
DIR is created if missing; files in it are replaced, each atomically.

Options:
      --ca DIR                the directory written by "remora ca init"
      --namespace NS          the workload's Kubernetes namespace
      --service-account SA    the workload's Kubernetes service account
      --out DIR               where to write tls.crt, tls.key and ca.crt
      --ttl DURATION          lifetime, a number with s, m, h, d or y (default 24h); the
                              certificate may not outlive the CA
      --dns NAME              an extra DNS name in the certificate (repeatable)
      --key-type TYPE         rsa (RSA 2048, the default) or ecdsa (P-256)
      --trust-domain DOMAIN   default: the CA's; a different one is refused
`,
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  return String(pkg.version);
}

class UsageError extends Error {}

/** Commands deploy/commands.ts parses and runs (docs/deploy.md); `hook` is the sidecar's own. */
const DEPLOY_COMMANDS = new Set(["inject", "webhook", "manifests", "hook"]);

function parsePort(text: string | undefined, flag: string, fallback?: number): number {
  if (text === undefined) {
    if (fallback !== undefined) return fallback;
    throw new UsageError(`${flag} is required`);
  }
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535)
    throw new UsageError(`${flag}: expected a port 0-65535, got "${text}"`);
  return port;
}

function parseDrain(text: string | undefined): number {
  return parseDuration(text, "--drain-time", 5000);
}

function parseTtl(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  try {
    return parseLifetime(text);
  } catch (error) {
    if (error instanceof InvalidLifetimeError) throw new UsageError(`--ttl: ${error.message}`);
    throw error;
  }
}

function parseKeyType(text: string | undefined): "rsa" | "ecdsa" | undefined {
  if (text === undefined || text === "rsa" || text === "ecdsa") return text;
  throw new UsageError(`--key-type: expected rsa or ecdsa, got "${text}"`);
}

function required(value: string | undefined, flag: string, command: string): string {
  if (value === undefined || value === "") throw new UsageError(`${command} needs ${flag}`);
  return value;
}

/** `remora ca init|issue`: flags checked here, files written by tls/ca-command.ts. */
async function runCa(args: string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === "-h" || sub === "--help") {
    process.stdout.write(HELP.ca!);
    return sub === undefined ? 1 : 0;
  }
  const help = CA_HELP[sub];
  if (help === undefined)
    throw new UsageError(`unknown command "ca ${sub}" (expected init or issue)`);
  const common = {
    help: { type: "boolean", short: "h" },
    out: { type: "string" },
    "trust-domain": { type: "string" },
    ttl: { type: "string" },
    "key-type": { type: "string" },
  } as const;
  if (sub === "init") {
    const { values } = parseArgs({
      args: rest,
      options: { ...common, force: { type: "boolean" } },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      process.stdout.write(help);
      return 0;
    }
    const options = {
      out: required(values.out, "--out DIR", "ca init"),
      trustDomain: values["trust-domain"],
      ttlMs: parseTtl(values.ttl),
      keyType: parseKeyType(values["key-type"]),
      force: values.force ?? false,
    };
    // Loaded on demand: node-forge stays out of the proxy's process.
    const { caInit } = await import("../tls/ca-command.js");
    process.stdout.write(await caInit(options));
    return 0;
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      ...common,
      ca: { type: "string" },
      namespace: { type: "string" },
      "service-account": { type: "string" },
      dns: { type: "string", multiple: true },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(help);
    return 0;
  }
  const options = {
    caDir: required(values.ca, "--ca DIR", "ca issue"),
    namespace: required(values.namespace, "--namespace NS", "ca issue"),
    serviceAccount: required(values["service-account"], "--service-account SA", "ca issue"),
    out: required(values.out, "--out DIR", "ca issue"),
    trustDomain: values["trust-domain"],
    ttlMs: parseTtl(values.ttl),
    keyType: parseKeyType(values["key-type"]),
    dnsNames: values.dns ?? [],
  };
  const { caIssue } = await import("../tls/ca-command.js");
  process.stdout.write(await caIssue(options));
  return 0;
}

function parseDuration(text: string | undefined, flag: string, fallback: number): number {
  if (text === undefined) return fallback;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m)$/.exec(text);
  if (match === null) throw new UsageError(`${flag}: expected a duration like 5s, got "${text}"`);
  const n = Number(match[1]);
  return match[2] === "ms" ? n : match[2] === "s" ? n * 1000 : n * 60_000;
}

async function runProxy(
  loaded: LoadedConfig,
  logLevel: string | undefined,
  drainMs: number,
  banner?: (runtime: Runtime) => string,
  configPath?: string,
  flags?: TlsFlags,
): Promise<void> {
  const logger = createLogger(logLevel);
  let stopping = false;
  const stop = async (reason: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ reason, drainMs }, "shutting down");
    await runtime.shutdown(drainMs);
    logger.info("stopped");
    logger.flush();
    process.exit(0);
  };
  const runtime = new Runtime(loaded.config, loaded.serviceDefaults, {
    logger,
    onQuit: () => void stop("quitquitquit"),
    configFile:
      configPath === undefined ? undefined : { path: configPath, text: loaded.text, flags },
    drainMs,
  });
  await runtime.start();
  process.on("SIGTERM", () => void stop("SIGTERM"));
  process.on("SIGINT", () => void stop("SIGINT"));
  // Without a handler SIGHUP would end the process; in quick mode it logs that nothing reloads.
  process.on("SIGHUP", () => void runtime.reloadConfigFile("SIGHUP"));
  logger.info(
    {
      listeners: runtime.listeners,
      admin: runtime.adminPort,
      version: version(),
      node: process.version,
    },
    "remora ready",
  );
  if (banner) process.stdout.write(banner(runtime));
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "-h" || command === "--help") {
    process.stdout.write(USAGE);
    return command === undefined ? 1 : 0;
  }
  if (command === "-v" || command === "--version") {
    process.stdout.write(`remora ${version()} (Node.js ${process.version})\n`);
    return 0;
  }
  const unsupported = unsupportedNodeMessage();
  if (unsupported !== undefined) {
    process.stderr.write(`${unsupported}\n`);
    return 1;
  }
  if (DEPLOY_COMMANDS.has(command) || (command === "help" && DEPLOY_COMMANDS.has(rest[0] ?? ""))) {
    // Loaded on demand: the injector's YAML, CA and webhook server stay out of the proxy.
    const { runDeployCommand } = await import("../deploy/commands.js");
    return command === "help"
      ? runDeployCommand(rest[0]!, ["--help"])
      : runDeployCommand(command, rest);
  }
  if (command === "help") {
    const topic = rest[0];
    if (topic === "iptables") {
      process.stdout.write((await import("../deploy/iptables.js")).IPTABLES_HELP);
      return 0;
    }
    if (topic === "sidecar") {
      process.stdout.write((await import("../deploy/sidecar-command.js")).SIDECAR_HELP);
      return 0;
    }
    const sub = topic === "ca" && rest[1] !== undefined ? CA_HELP[rest[1]] : undefined;
    process.stdout.write(sub ?? (topic !== undefined && HELP[topic] ? HELP[topic] : USAGE));
    return 0;
  }
  if (command === "ca") return runCa(rest);
  if (command === "iptables") {
    const { iptablesCommand, IptablesUsageError } = await import("../deploy/iptables.js");
    return iptablesCommand(rest).catch((error: unknown) => {
      throw error instanceof IptablesUsageError ? new UsageError(error.message) : error;
    });
  }
  if (command === "sidecar") {
    const { sidecarCommand } = await import("../deploy/sidecar-command.js");
    const { SidecarInputError } = await import("../deploy/sidecar.js");
    const outcome = await sidecarCommand(rest).catch((error: unknown) => {
      throw error instanceof SidecarInputError ? new UsageError(error.message) : error;
    });
    if (outcome.kind === "exit") return outcome.code;
    await runProxy(outcome.loaded, outcome.logLevel, parseDrain(outcome.drainTime));
    return -1;
  }
  const help = HELP[command];
  if (help === undefined) {
    throw new UsageError(`unknown command "${command}"`);
  }
  const { values } = parseArgs({
    args: rest,
    options: {
      help: { type: "boolean", short: "h" },
      config: { type: "string", short: "c" },
      listen: { type: "string" },
      "admin-port": { type: "string" },
      "inbound-port": { type: "string" },
      port: { type: "string" },
      service: { type: "string", multiple: true },
      "log-level": { type: "string" },
      "drain-time": { type: "string" },
      admin: { type: "string" },
      json: { type: "boolean" },
      timeout: { type: "string" },
      "dev-mtls": { type: "boolean" },
      "state-dir": { type: "string" },
      // Quick mode's access log (docs/access-log.md); left out of --help, as a benchmark switch.
      "access-log": { type: "string" },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) {
    process.stdout.write(help);
    return 0;
  }
  const stateDir = values["state-dir"];
  const flags: TlsFlags | undefined =
    values["dev-mtls"] === true || stateDir !== undefined
      ? { devMtls: values["dev-mtls"] === true, stateDir: stateDir && resolve(stateDir) }
      : undefined;
  switch (command) {
    case "validate": {
      if (values.config === undefined) throw new UsageError("validate needs -c FILE");
      await loadConfig(values.config, flags);
      process.stdout.write(`${values.config}: ok\n`);
      return 0;
    }
    case "run": {
      const drainMs = parseDrain(values["drain-time"]);
      let loaded: LoadedConfig;
      if (values.config !== undefined) {
        if (values.listen !== undefined || values.service !== undefined) {
          throw new UsageError("use either -c FILE or the quick-mode flags, not both");
        }
        loaded = await loadConfig(values.config, flags);
      } else {
        if (values.listen === undefined)
          throw new UsageError("run needs -c FILE, or --listen PORT with --service");
        loaded = await buildQuickConfig({
          listen: parsePort(values.listen, "--listen"),
          adminPort: parsePort(values["admin-port"], "--admin-port", 15000),
          services: values.service ?? [],
          accessLog: values["access-log"],
          devMtls: flags?.devMtls,
          stateDir: flags?.stateDir,
        });
      }
      await runProxy(loaded, values["log-level"], drainMs, undefined, values.config, flags);
      return -1;
    }
    case "demo": {
      const port = parsePort(values.port, "--port", 15001);
      const adminPort = parsePort(values["admin-port"], "--admin-port", 15000);
      const inbound = parsePort(values["inbound-port"], "--inbound-port", 15006);
      const inboundPort = inbound === 0 ? await freePort() : inbound;
      const stateDir =
        values["state-dir"] === undefined ? defaultStateDir() : resolve(values["state-dir"]);
      const backends = await startDemoBackends(2, true);
      const { loaded, path } = await demoConfig(
        { port, adminPort, inboundPort },
        backends.addresses,
        stateDir,
      );
      await runProxy(loaded, values["log-level"] ?? "warn", parseDrain(values["drain-time"]), (r) =>
        demoBanner(
          { port: r.listeners[0]?.port ?? port, adminPort: r.adminPort, inboundPort },
          backends.addresses,
          stateDir,
          path,
        ),
      );
      return -1;
    }
    case "status": {
      // Loaded on demand: the proxy itself never pays for undici's client.
      const { DEFAULT_ADMIN, runStatus } = await import("./status.js");
      return runStatus({
        admin: values.admin ?? DEFAULT_ADMIN,
        json: values.json ?? false,
        timeoutMs: parseDuration(values.timeout, "--timeout", 3000),
      });
    }
    default:
      process.stdout.write(help);
      return 0;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    // -1: a server is running; the process exits on a signal.
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
    } else if (
      error instanceof UsageError ||
      (error as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")
    ) {
      process.stderr.write(`remora: ${(error as Error).message}\nRun "remora --help" for usage.\n`);
      process.exitCode = 2;
      return;
    } else if ((error as { code?: string }).code?.startsWith("REMORA_ERR_")) {
      // remora's own errors (a bad SPIFFE ID, an unusable CA, ...) say what is wrong in one line.
      process.stderr.write(`remora: ${(error as Error).message}\n`);
    } else if ((error as { code?: string }).code === "EADDRINUSE") {
      process.stderr.write(`remora: ${(error as Error).message} (is another proxy running?)\n`);
    } else {
      process.stderr.write(`remora: ${(error as Error).stack ?? String(error)}\n`);
    }
    process.exitCode = 1;
  },
);
