import { resolve } from "node:path";
import { ConfigError, type ConfigIssue } from "./errors.js";
import { validateInput } from "./load.js";
import { configSchema, type RemoraConfig, type RemoraConfigInput } from "./schema.js";

export interface QuickOptions {
  /** Port of the outbound listener (`--listen`). */
  readonly listen: number;
  /** Port of the admin API (`--admin-port`). */
  readonly adminPort: number;
  /** Each `--service NAME=HOST:PORT[,HOST:PORT...]`, NAME being `name` or `name.namespace`. */
  readonly services: readonly string[];
  /** `--access-log PATH` (not in --help; for benchmarks): log to "stdout" or a file (relative to the working directory). */
  readonly accessLog?: string;
  /** `--dev-mtls`: this workload's identity from the local dev CA (`tls: { dev: true }`). */
  readonly devMtls?: boolean;
  /** `--state-dir DIR` (absolute): the dev CA's state directory. */
  readonly stateDir?: string;
}

const SOURCE = "command line";

/**
 * The config `remora run --listen ... --service ...` stands for, built as the equivalent file
 * would be and validated by the same schema, so mistakes read the same as in a file.
 */
export function quickConfig(opts: QuickOptions): RemoraConfig {
  const issues: ConfigIssue[] = [];
  const services: NonNullable<RemoraConfigInput["services"]> = [];
  for (const spec of opts.services) {
    const parsed = parseServiceSpec(spec);
    if (typeof parsed === "string") {
      issues.push({ path: "--service", message: `${JSON.stringify(spec)}: ${parsed}` });
      continue;
    }
    services.push(parsed);
  }
  if (opts.stateDir !== undefined && opts.devMtls !== true) {
    issues.push({ path: "--state-dir", message: "only with dev mode (--dev-mtls)" });
  }
  if (issues.length > 0) throw new ConfigError(SOURCE, issues);
  return validateInput(
    configSchema,
    {
      admin: { port: opts.adminPort },
      // No kubelet on a laptop; and two local remoras must not collide on 15021.
      probes: { port: null },
      // Admin only (/stats/prometheus there), so two local remoras never collide on 15090.
      metrics: { port: null },
      listeners: [{ name: "outbound", kind: "outbound", port: opts.listen }],
      services,
      ...(opts.devMtls === true ? { tls: { dev: true, stateDir: opts.stateDir } } : {}),
      ...(opts.accessLog === undefined
        ? {}
        : {
            accessLog: {
              enabled: true,
              path: opts.accessLog === "stdout" ? "stdout" : resolve(opts.accessLog),
            },
          }),
    } satisfies RemoraConfigInput,
    SOURCE,
  );
}

type ServiceInput = NonNullable<RemoraConfigInput["services"]>[number];

/** `NAME[.NAMESPACE]=HOST:PORT[,HOST:PORT...]` → a service entry, or why not. */
function parseServiceSpec(spec: string): ServiceInput | string {
  const equals = spec.indexOf("=");
  if (equals < 0) return "expected NAME=HOST:PORT[,HOST:PORT...]";
  const ref = spec.slice(0, equals).trim();
  if (ref === "") return "missing service NAME before =";
  const addresses = spec
    .slice(equals + 1)
    .split(",")
    .map((address) => address.trim());
  if (addresses.some((address) => address === "")) {
    return "expected one or more HOST:PORT after =, separated by commas";
  }
  const dot = ref.indexOf(".");
  const endpoints = addresses.map((address) => ({ address }));
  // Bad names and addresses are left to the schema so they read as they would in a file.
  return dot < 0
    ? { name: ref, endpoints }
    : { name: ref.slice(0, dot), namespace: ref.slice(dot + 1), endpoints };
}
