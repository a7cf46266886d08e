/**
 * Config keys whose values are secrets (private keys, tokens), replaced by REDACTED wherever the
 * config is shown (GET /config_dump). A path is dot-separated keys; `*` stands for every element
 * of a list or every value of a mapping, e.g. `services.*.trafficPolicy.tls.privateKey`.
 *
 * TODO: empty because no config key holds a secret yet; the key or token fields added by the
 * TLS and Kubernetes work must be listed here, and redact.test.ts checks how a listed path reads.
 */
export const SECRET_PATHS: readonly string[] = [];

export const REDACTED = "[redacted]";

/** A copy of `config` with every value at `paths` replaced by REDACTED (the input is untouched). */
export function redact<T>(config: T, paths: readonly string[] = SECRET_PATHS): T {
  if (paths.length === 0) return config;
  const copy = structuredClone(config);
  for (const path of paths) hide(copy, path.split("."));
  return copy;
}

function hide(node: unknown, segments: readonly string[]): void {
  if (node === null || typeof node !== "object" || segments.length === 0) return;
  const [first, ...rest] = segments as [string, ...string[]];
  const record = node as Record<string, unknown>;
  const keys = first === "*" ? Object.keys(record) : Object.hasOwn(record, first) ? [first] : [];
  for (const key of keys) {
    if (rest.length > 0) hide(record[key], rest);
    else if (record[key] !== undefined && record[key] !== null) record[key] = REDACTED;
  }
}

/**
 * `value`, found at key path `path` (dot-separated, e.g. `admin.port`), as it may be shown: the
 * value itself when it is a secret or lies inside one, else any secrets inside it redacted.
 */
export function redactAt(path: string, value: unknown, paths = SECRET_PATHS): unknown {
  const segments = path.split(".");
  const inner: string[] = [];
  for (const secret of paths) {
    const pattern = secret.split(".");
    const shared = Math.min(pattern.length, segments.length);
    let matches = true;
    for (let i = 0; i < shared; i++) {
      if (pattern[i] !== "*" && pattern[i] !== segments[i]) matches = false;
    }
    if (!matches) continue;
    if (pattern.length <= segments.length)
      return value === undefined || value === null ? value : REDACTED;
    inner.push(pattern.slice(segments.length).join("."));
  }
  return inner.length > 0 ? redact(value, inner) : value;
}
