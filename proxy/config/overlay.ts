/**
 * A generated config with a file merged over it (`remora sidecar`'s mounted config file). The
 * rules, in docs/deploy.md:
 * - mappings merge key by key, recursively; any other value in the file replaces the generated one;
 * - the top-level lists of named entries merge by name: `listeners` by `name`, `services` by
 *   `name` and `namespace`, `authorizationPolicies` by `name`. An entry of the file whose name is
 *   generated merges into that entry; the others are appended in the file's order;
 * - any other list in the file replaces the generated list.
 * The result is validated by the schema like a file, so a mistake names its key path.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { parseDocument } from "yaml";
import { ConfigError } from "./errors.js";
import { resolveConfigPaths, validateInput } from "./load.js";
import { configSchema, type RemoraConfig } from "./schema.js";
import { checkClientTlsFiles } from "./tls-files.js";

type Entry = Record<string, unknown>;

const NAMED_LISTS: Readonly<Record<string, (entry: Entry) => unknown>> = {
  listeners: (entry) => entry.name,
  services: (entry) => `${String(entry.name)}.${String(entry.namespace ?? "default")}`,
  authorizationPolicies: (entry) => entry.name,
};

function isMapping(value: unknown): value is Entry {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `overlay` merged over `base` (neither is changed). */
export function overlayConfig(base: Entry, overlay: Entry): Entry {
  const out: Entry = { ...base };
  for (const [key, value] of Object.entries(overlay)) {
    const named = NAMED_LISTS[key];
    const current = out[key];
    if (named !== undefined && Array.isArray(current) && Array.isArray(value)) {
      out[key] = mergeNamed(current, value, named);
    } else out[key] = mergeValue(current, value);
  }
  return out;
}

function mergeValue(base: unknown, overlay: unknown): unknown {
  if (!isMapping(base) || !isMapping(overlay)) return overlay;
  const out: Entry = { ...base };
  for (const [key, value] of Object.entries(overlay)) out[key] = mergeValue(out[key], value);
  return out;
}

function mergeNamed(base: unknown[], overlay: unknown[], nameOf: (entry: Entry) => unknown) {
  const out = [...base];
  for (const entry of overlay) {
    const at = isMapping(entry)
      ? out.findIndex((existing) => isMapping(existing) && nameOf(existing) === nameOf(entry))
      : -1;
    if (at < 0) out.push(entry);
    else out[at] = mergeValue(out[at], entry);
  }
  return out;
}

/**
 * `base` with the YAML file at `path` merged over it (none: `base` alone), validated; relative
 * paths are resolved against the file's directory (the working directory without a file).
 */
export function loadOverlaid(base: Entry, path: string | undefined): RemoraConfig {
  const merged = mergedDocument(base, path);
  const source =
    path === undefined
      ? "generated sidecar config"
      : `generated sidecar config with ${path} merged`;
  const config = validateInput(configSchema, merged, source);
  resolveConfigPaths(config, path === undefined ? process.cwd() : dirname(resolve(path)));
  const tlsIssues = checkClientTlsFiles(config);
  if (tlsIssues.length > 0) throw new ConfigError(source, tlsIssues);
  return config;
}

/** `base` with the YAML file at `path` merged over it, before validation (what --print-config shows). */
export function mergedDocument(base: Entry, path: string | undefined): Entry {
  if (path !== undefined) {
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (error) {
      throw new ConfigError(path, [
        { path: "", message: `cannot read: ${(error as Error).message}` },
      ]);
    }
    const doc = parseDocument(text, { uniqueKeys: true, prettyErrors: false });
    if (doc.errors.length > 0) {
      throw new ConfigError(
        path,
        doc.errors.map((error) => ({ path: "", message: `YAML error: ${error.message}` })),
      );
    }
    const data: unknown = doc.toJS({ maxAliasCount: 100 }) ?? {};
    if (!isMapping(data)) {
      throw new ConfigError(path, [{ path: "", message: "expected a mapping at the top level" }]);
    }
    return overlayConfig(base, data);
  }
  return base;
}
