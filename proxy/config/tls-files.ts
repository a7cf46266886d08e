/**
 * The files `trafficPolicy.tls` names (caFile, certFile, keyFile), read and checked when the
 * config is loaded, so a bad one is a config error naming its key and path, not a handshake that
 * fails later. The running proxy reads them again when it applies the config
 * (proxy/upstream-tls.ts); both use `readClientTlsFiles`.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import type { ConfigIssue } from "./errors.js";

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The file keys of one trafficPolicy.tls, paths as written or resolved. */
export interface TlsFileKeys {
  caFile?: string;
  certFile?: string;
  keyFile?: string;
}

interface ServiceFiles {
  readonly trafficPolicy: { readonly tls: TlsFileKeys };
  readonly subsets: readonly { readonly trafficPolicy?: { readonly tls?: TlsFileKeys } }[];
}

/** Every trafficPolicy.tls of the services, with its key path (`services[0].trafficPolicy.tls`). */
export function tlsSettingsOf(services: readonly ServiceFiles[]): [string, TlsFileKeys][] {
  const out: [string, TlsFileKeys][] = [];
  services.forEach((service, index) => {
    out.push([`services[${index}].trafficPolicy.tls`, service.trafficPolicy.tls]);
    service.subsets.forEach((subset, s) => {
      const tls = subset.trafficPolicy?.tls;
      if (tls !== undefined) out.push([`services[${index}].subsets[${s}].trafficPolicy.tls`, tls]);
    });
  });
  return out;
}

/** A config's services and its discovered Services' default policy (`discovery.kubernetes`). */
interface ConfigFiles {
  readonly services: readonly ServiceFiles[];
  readonly discovery?: {
    readonly kubernetes?: { readonly trafficPolicy?: { readonly tls: TlsFileKeys } };
  };
}

/** tlsSettingsOf, and `discovery.kubernetes.trafficPolicy.tls` when the config sets it. */
export function configTlsSettings(config: ConfigFiles): [string, TlsFileKeys][] {
  const out = tlsSettingsOf(config.services);
  const tls = config.discovery?.kubernetes?.trafficPolicy?.tls;
  if (tls !== undefined) out.push(["discovery.kubernetes.trafficPolicy.tls", tls]);
  return out;
}

/** Relative file paths are relative to the config file's directory, like every path in it. */
export function resolveTlsFiles(config: ConfigFiles, dir: string): void {
  for (const [, tls] of configTlsSettings(config)) {
    for (const key of ["caFile", "certFile", "keyFile"] as const) {
      const path = tls[key];
      if (path !== undefined) tls[key] = resolve(dir, path);
    }
  }
}

/** The text of a file, or why it cannot be read (in words, with the path). */
function read(path: string): { text: string } | { problem: string } {
  try {
    return { text: readFileSync(path, "utf8") };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return {
      problem: `${path} ${code === "ENOENT" ? "does not exist" : `cannot be read (${code ?? error})`}`,
    };
  }
}

function certificates(path: string, text: string): X509Certificate[] | string {
  const blocks = text.match(PEM_CERTIFICATE);
  if (blocks === null) return `${path} holds no PEM certificate (no "BEGIN CERTIFICATE")`;
  try {
    return blocks.map((block) => new X509Certificate(block));
  } catch (error) {
    return `${path} does not parse as X.509 (${(error as Error).message})`;
  }
}

/**
 * Checks every file the config's trafficPolicy.tls keys name (paths already resolved): readable,
 * PEM, the key is the certificate's, the certificate is within its dates. Returns the issues.
 */
export function checkClientTlsFiles(config: ConfigFiles, now: number = Date.now()): ConfigIssue[] {
  const issues: ConfigIssue[] = [];
  for (const [at, tls] of configTlsSettings(config)) {
    const add = (key: string, message: string) => issues.push({ path: `${at}.${key}`, message });
    if (tls.caFile !== undefined) {
      const ca = read(tls.caFile);
      if ("problem" in ca) add("caFile", ca.problem);
      else {
        const parsed = certificates(tls.caFile, ca.text);
        if (typeof parsed === "string") add("caFile", parsed);
      }
    }
    let leaf: X509Certificate | undefined;
    if (tls.certFile !== undefined) {
      const cert = read(tls.certFile);
      if ("problem" in cert) add("certFile", cert.problem);
      else {
        const parsed = certificates(tls.certFile, cert.text);
        if (typeof parsed === "string") add("certFile", parsed);
        else leaf = parsed[0];
      }
    }
    if (leaf !== undefined) {
      const notAfter = leaf.validToDate.getTime();
      const notBefore = leaf.validFromDate.getTime();
      if (now >= notAfter)
        add("certFile", `${tls.certFile} expired ${leaf.validToDate.toISOString()}`);
      else if (now < notBefore) {
        add("certFile", `${tls.certFile} is not valid until ${leaf.validFromDate.toISOString()}`);
      }
    }
    if (tls.keyFile !== undefined) {
      const key = read(tls.keyFile);
      if ("problem" in key) add("keyFile", key.problem);
      else {
        try {
          const parsed = createPrivateKey(key.text);
          if (leaf !== undefined && !leaf.checkPrivateKey(parsed)) {
            add("keyFile", `${tls.keyFile} is not the key of ${tls.certFile}`);
          }
        } catch (error) {
          add(
            "keyFile",
            `${tls.keyFile} is not a readable PEM private key (${(error as Error).message})`,
          );
        }
      }
    }
  }
  return issues;
}
