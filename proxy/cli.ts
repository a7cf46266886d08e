#!/usr/bin/env node
// V8 flags were measured here (bench conn-1000, small-get, latency): --optimize-for-size keeps
// peak RSS at 1,000 busy connections near 77 MB but costs ~40% more CPU per request; smaller
// semi-spaces promote short-lived request objects and raise peak RSS. So: none for now.
// bench/targets.ts launches remora with whatever flags this line carries (`env -S node ...`).
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { ConfigError } from "./config/errors.js";
import { buildQuickConfig, type LoadedConfig, loadConfig } from "./config/isolated.js";
import { demoBanner, demoConfig, startDemoBackends } from "./demo.js";
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
  remora help [COMMAND]              this text, or a command's

Options for every command:
  -h, --help                         show help
  -v, --version                      print the version
`;

const HELP: Record<string, string> = {
  run: `Usage:
  remora run -c FILE [--log-level LEVEL] [--drain-time DURATION]
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

Logs are JSON lines on stderr; each listener logs "listener ready" with its bound port, the
metrics listener "metrics listening" (Prometheus: GET /stats/prometheus, see docs/metrics.md).
SIGTERM and SIGINT drain: listeners stop accepting, in-flight requests finish, then exit 0.
With -c, the file is watched and reloaded when it changes, on SIGHUP and on the admin API's
POST /reload; an invalid file is logged and the running config stays (docs/operations.md).
`,
  validate: `Usage:
  remora validate -c FILE

Loads and validates FILE as remora would at startup. Prints "FILE: ok" and exits 0, or prints
every problem with the path of the offending key and exits 1.
`,
  demo: `Usage:
  remora demo [--port PORT] [--admin-port PORT]

Starts three small HTTP backends and a proxy in front of them (service "hello"), and prints
curl commands to try and the dashboard's URL (the admin API's /). The third backend fails on
purpose: of every 4 requests it receives, it answers the 2nd with 503 and cuts the 4th off
mid-response, so failures show in the dashboard, /clusters and the metrics.
Defaults: proxy 15001, admin 15000 (Istio's ports).
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
  help: "Usage:\n  remora help [COMMAND]\n",
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8"));
  return String(pkg.version);
}

class UsageError extends Error {}

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
    configFile: configPath === undefined ? undefined : { path: configPath, text: loaded.text },
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
  if (command === "help") {
    const topic = rest[0];
    process.stdout.write(topic !== undefined && HELP[topic] ? HELP[topic] : USAGE);
    return 0;
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
      port: { type: "string" },
      service: { type: "string", multiple: true },
      "log-level": { type: "string" },
      "drain-time": { type: "string" },
      admin: { type: "string" },
      json: { type: "boolean" },
      timeout: { type: "string" },
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
  switch (command) {
    case "validate": {
      if (values.config === undefined) throw new UsageError("validate needs -c FILE");
      await loadConfig(values.config);
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
        loaded = await loadConfig(values.config);
      } else {
        if (values.listen === undefined)
          throw new UsageError("run needs -c FILE, or --listen PORT with --service");
        loaded = await buildQuickConfig({
          listen: parsePort(values.listen, "--listen"),
          adminPort: parsePort(values["admin-port"], "--admin-port", 15000),
          services: values.service ?? [],
          accessLog: values["access-log"],
        });
      }
      await runProxy(loaded, values["log-level"], drainMs, undefined, values.config);
      return -1;
    }
    case "demo": {
      const port = parsePort(values.port, "--port", 15001);
      const adminPort = parsePort(values["admin-port"], "--admin-port", 15000);
      const backends = await startDemoBackends(2, true);
      const loaded = await demoConfig(port, adminPort, backends.addresses);
      await runProxy(loaded, values["log-level"] ?? "warn", parseDrain(values["drain-time"]), (r) =>
        demoBanner(r.listeners[0]?.port ?? port, r.adminPort, backends.addresses),
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
    } else if ((error as { code?: string }).code === "EADDRINUSE") {
      process.stderr.write(`remora: ${(error as Error).message} (is another proxy running?)\n`);
    } else {
      process.stderr.write(`remora: ${(error as Error).stack ?? String(error)}\n`);
    }
    process.exitCode = 1;
  },
);
