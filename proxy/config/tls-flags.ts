/**
 * `remora run --dev-mtls [--state-dir DIR]`: the command line's say over the config's `tls`,
 * applied to the raw document before it is validated, so a file whose STRICT listener relies on
 * the flag validates, and a file that names certificate files conflicts with it in words.
 */
import { ConfigError } from "./errors.js";

export interface TlsFlags {
  /** `--dev-mtls`: this workload's identity comes from the local dev CA. */
  readonly devMtls?: boolean;
  /** `--state-dir DIR` (absolute): where the dev CA lives; needs dev mode. */
  readonly stateDir?: string;
}

const FILE_KEYS = ["certFile", "keyFile", "caFile"];

/**
 * The document with the flags applied (a new top-level object; `data` is not changed). Throws a
 * ConfigError naming the flag when the document and the flags disagree.
 */
export function applyTlsFlags(data: unknown, flags: TlsFlags, source: string): unknown {
  if (flags.devMtls !== true && flags.stateDir === undefined) return data;
  // Anything but a mapping is the schema's to report.
  if (data === null || typeof data !== "object" || Array.isArray(data)) return data;
  const document = data as Record<string, unknown>;
  let tls = document.tls;
  if (tls !== undefined && (tls === null || typeof tls !== "object" || Array.isArray(tls))) {
    return data;
  }
  let fields = { ...(tls as Record<string, unknown> | undefined) };
  if (flags.devMtls === true) {
    const named = FILE_KEYS.filter((key) => fields[key] !== undefined);
    if (named.length > 0) {
      throw new ConfigError("command line", [
        {
          path: "--dev-mtls",
          message: `${source} sets ${named.map((key) => `tls.${key}`).join(", ")}: dev mode makes its own certificate files; drop --dev-mtls or the tls files`,
        },
      ]);
    }
    fields = { ...fields, dev: true };
  }
  if (flags.stateDir !== undefined) {
    if (fields.dev !== true) {
      throw new ConfigError("command line", [
        {
          path: "--state-dir",
          message: `only with dev mode (--dev-mtls, or tls: { dev: true } in ${source})`,
        },
      ]);
    }
    fields = { ...fields, stateDir: flags.stateDir };
  }
  tls = fields;
  return { ...document, tls };
}
