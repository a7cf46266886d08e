import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { isNode, LineCounter, parseDocument } from "yaml";
import type * as z from "zod";
import type { LoadBalancerSettings } from "../../lb/balancer.js";
import { ConfigError, type ConfigIssue, formatPath } from "./errors.js";
import {
  configSchema,
  type RemoraConfig,
  type ServiceConfig,
  servicesFileSchema,
} from "./schema.js";
import { checkClientTlsFiles, resolveTlsFiles } from "./tls-files.js";
import { applyTlsFlags, type TlsFlags } from "./tls-flags.js";

export { formatAddress, type HostPort, InvalidAddressError, parseAddress } from "./address.js";
export { ConfigError, type ConfigIssue } from "./errors.js";

/**
 * Parse and validate config text. `source` names it in errors. A relative `discovery.file` is
 * left as written (relative to the working directory); loadConfigFile resolves it.
 */
export function parseConfig(text: string, source: string, flags?: TlsFlags): RemoraConfig {
  const adjust = flags && ((data: unknown) => applyTlsFlags(data, flags, source));
  return parseYaml(configSchema, text, source, adjust);
}

/**
 * Read, parse and validate a config file; a relative `discovery.file`,
 * `discovery.kubernetes.kubeconfig`, `accessLog.path`, `tls.*File` or `trafficPolicy.tls.*File`
 * is resolved against its directory, and the upstream TLS files are read and checked
 * (tls-files.ts).
 */
export function loadConfigFile(path: string): RemoraConfig {
  return readConfigFile(path).config;
}

/**
 * loadConfigFile, with the text it validated (a file watch compares later reads to it). `flags`:
 * the command line's `--dev-mtls` / `--state-dir` (tls-flags.ts).
 */
export function readConfigFile(
  path: string,
  flags?: TlsFlags,
): { config: RemoraConfig; text: string } {
  const text = readText(path);
  const config = parseConfig(text, path, flags);
  resolveConfigPaths(config, dirname(resolve(path)));
  const tlsIssues = checkClientTlsFiles(config);
  if (tlsIssues.length > 0) throw new ConfigError(path, tlsIssues);
  return { config, text };
}

/** Every relative path in a validated config, resolved against `dir` (in place). */
export function resolveConfigPaths(config: RemoraConfig, dir: string): void {
  if (config.discovery?.file !== undefined) {
    config.discovery.file = resolve(dir, config.discovery.file);
  }
  const kube = config.discovery?.kubernetes;
  if (kube?.kubeconfig !== undefined) kube.kubeconfig = resolve(dir, kube.kubeconfig);
  if (config.accessLog.path !== "stdout") {
    config.accessLog.path = resolve(dir, config.accessLog.path);
  }
  if (config.tls !== undefined) {
    const tls = config.tls;
    tls.certFile = resolve(dir, tls.certFile);
    tls.keyFile = resolve(dir, tls.keyFile);
    tls.caFile = resolve(dir, tls.caFile);
    if (tls.dev !== undefined) tls.dev = { ...tls.dev, stateDir: resolve(dir, tls.dev.stateDir) };
  }
  for (const service of config.services) {
    resolveModule(service.trafficPolicy.loadBalancer, dir);
    for (const subset of service.subsets) resolveModule(subset.trafficPolicy?.loadBalancer, dir);
  }
  resolveModule(kube?.trafficPolicy?.loadBalancer, dir);
  resolveTlsFiles(config, dir);
}

/** A user balancer module's path is relative to the config file, like every path in it. */
function resolveModule(lb: { module: { path: string } | undefined } | undefined, dir: string) {
  if (lb?.module !== undefined) (lb.module as { path: string }).path = resolve(dir, lb.module.path);
}

/**
 * Where each user balancer module is named (key path → settings), for checks that import them.
 */
export function moduleKeys(config: RemoraConfig): Map<string, LoadBalancerSettings> {
  const keys = new Map<string, LoadBalancerSettings>();
  config.services.forEach((service, index) => {
    const at = `services[${index}]`;
    const lb = service.trafficPolicy.loadBalancer;
    if (lb.module !== undefined) keys.set(`${at}.trafficPolicy.loadBalancer.module`, lb);
    service.subsets.forEach((subset, s) => {
      const own = subset.trafficPolicy?.loadBalancer;
      if (own?.module !== undefined) {
        keys.set(`${at}.subsets[${s}].trafficPolicy.loadBalancer.module`, own);
      }
    });
  });
  const discovered = config.discovery?.kubernetes?.trafficPolicy?.loadBalancer;
  if (discovered?.module !== undefined) {
    keys.set("discovery.kubernetes.trafficPolicy.loadBalancer.module", discovered);
  }
  return keys;
}

/** Parse and validate a discovery file (top-level `services:`). */
export function parseServicesFile(text: string, source: string): ServiceConfig[] {
  return parseYaml(servicesFileSchema, text, source).services;
}

/** What the schema gives a service that names nothing but itself (discovery-only services). */
export function serviceDefaults(): ServiceConfig {
  return servicesFileSchema.parse({ services: [{ name: "defaults" }] }).services[0]!;
}

function readText(path: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(path, [
      { path: "", message: `cannot read: ${(error as Error).message}` },
    ]);
  }
}

/** YAML text → schema output, or a ConfigError listing every issue with its line. */
export function parseYaml<S extends z.ZodType>(
  schema: S,
  text: string,
  source: string,
  /** Changes the document before validation (the command line's flags); may throw ConfigError. */
  adjust?: (data: unknown) => unknown,
): z.output<S> {
  const lineCounter = new LineCounter();
  // uniqueKeys: a repeated key is almost always a merge mistake, not an intended override.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(
      source,
      doc.errors.map((error) => {
        const { line, col } = lineCounter.linePos(error.pos[0]);
        return {
          path: "",
          message: `YAML error at line ${line}, column ${col}: ${error.message}`,
          line,
        };
      }),
    );
  }
  let data: unknown;
  try {
    data = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    throw new ConfigError(source, [
      { path: "", message: `YAML error: ${(error as Error).message}` },
    ]);
  }
  if (data === null || data === undefined) {
    throw new ConfigError(source, [
      { path: "", message: "the document is empty; expected a mapping" },
    ]);
  }
  if (adjust !== undefined) data = adjust(data);
  const result = schema.safeParse(data, { error: describeIssue });
  if (result.success) return result.data;
  throw new ConfigError(
    source,
    toIssues(result.error).map((issue) => {
      const line = lineOf(doc, issue.segments, lineCounter);
      return line === undefined ? issue.issue : { ...issue.issue, line };
    }),
  );
}

/** Validate already-built input (command line, tests) with the same messages as a file. */
export function validateInput<S extends z.ZodType>(
  schema: S,
  input: unknown,
  source: string,
): z.output<S> {
  const result = schema.safeParse(input, { error: describeIssue });
  if (result.success) return result.data;
  throw new ConfigError(
    source,
    toIssues(result.error).map((issue) => issue.issue),
  );
}

interface LocatedIssue {
  readonly issue: ConfigIssue;
  readonly segments: readonly PropertyKey[];
}

/** zod issues → one ConfigIssue each; an unknown-keys issue becomes one per key, at the key. */
function toIssues(error: z.ZodError): LocatedIssue[] {
  const out: LocatedIssue[] = [];
  for (const issue of error.issues) {
    if (issue.code === "unrecognized_keys") {
      for (const key of issue.keys) {
        const segments = [...issue.path, key];
        out.push({ issue: { path: formatPath(segments), message: "unknown key" }, segments });
      }
      continue;
    }
    const path = formatPath(issue.path);
    out.push({ issue: { path, message: issue.message }, segments: issue.path });
  }
  return out;
}

/** Messages in the config's own vocabulary (mapping, list) for issues no schema field words itself. */
function describeIssue(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code !== "invalid_type") return undefined;
  if (issue.input === undefined) return "required";
  return `expected ${NOUNS[issue.expected] ?? issue.expected}, got ${describeValue(issue.input)}`;
}

const NOUNS: Record<string, string> = {
  object: "a mapping",
  array: "a list",
  string: "a string",
  number: "a number",
  int: "an integer",
  boolean: "true or false",
};

function describeValue(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  return JSON.stringify(value) ?? String(value);
}

/** The line of the deepest node on `segments` that exists in the document. */
function lineOf(
  doc: ReturnType<typeof parseDocument>,
  segments: readonly PropertyKey[],
  lineCounter: LineCounter,
): number | undefined {
  for (let length = segments.length; length >= 0; length--) {
    const node = length === 0 ? doc.contents : doc.getIn(segments.slice(0, length), true);
    if (isNode(node) && node.range !== undefined && node.range !== null) {
      return lineCounter.linePos(node.range[0]).line;
    }
  }
  return undefined;
}
