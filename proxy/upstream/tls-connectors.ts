import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { ClientTlsSettings } from "../../tls/client-tls-settings.js";
import { type ClientIdentity, OutboundTlsConnector } from "../../tls/outbound.js";
import { UpstreamTlsFailures } from "../../tls/outbound-failures.js";
import type { ConnectorFactory } from "../cluster.js";
import type { ServiceConfig } from "../config/schema.js";
import { type TlsFileKeys, tlsSettingsOf } from "../config/tls-files.js";
import type { ClientTlsConfig } from "../config/tls-schema.js";
import type { Logger } from "../log.js";

/** Path → sha256 of the text, for `ClientTlsSettings.filesVersion`. */
export type TlsFileVersions = Readonly<Record<string, string>>;

/** trafficPolicy.tls as a cluster keeps it; undefined for DISABLE (plain TCP, no connector). */
export function clientTlsSettings(
  tls: ClientTlsConfig | undefined,
  versions: TlsFileVersions,
): ClientTlsSettings | undefined {
  if (tls === undefined || tls.mode === "DISABLE") return undefined;
  const files = [tls.caFile, tls.certFile, tls.keyFile].filter((f) => f !== undefined);
  const settings: { -readonly [K in keyof ClientTlsSettings]: ClientTlsSettings[K] } = {
    mode: tls.mode,
    subjectAltNames: tls.subjectAltNames,
  };
  if (tls.sni !== undefined) settings.sni = tls.sni;
  if (tls.caFile !== undefined) settings.caFile = tls.caFile;
  if (tls.certFile !== undefined) settings.certFile = tls.certFile;
  if (tls.keyFile !== undefined) settings.keyFile = tls.keyFile;
  if (files.length > 0) settings.filesVersion = files.map((f) => versions[f] ?? "").join(",");
  return settings;
}

/**
 * The runtime's side of upstream TLS: the files services name (read when a config is applied,
 * so a reload with rotated files gets new pools), the failure counts and log, and the factory
 * clusters build their connectors with.
 */
export class UpstreamTlsConnectors {
  readonly failures: UpstreamTlsFailures;
  readonly #identity: () => ClientIdentity | undefined;
  #texts = new Map<string, string>();

  constructor(logger: Logger, identity: () => ClientIdentity | undefined) {
    this.failures = new UpstreamTlsFailures({
      warn: (fields, message) => logger.warn(fields, message),
    });
    this.#identity = identity;
  }

  /**
   * Read every file the services' trafficPolicy.tls names (start, reload). Rejects with the path
   * and the reason; on success the new texts replace the old. Returns their versions.
   */
  async load(services: readonly ServiceConfig[]): Promise<TlsFileVersions> {
    const paths = new Set<string>();
    for (const [, tls] of tlsSettingsOf(
      services as unknown as Parameters<typeof tlsSettingsOf>[0],
    )) {
      for (const key of ["caFile", "certFile", "keyFile"] as (keyof TlsFileKeys)[]) {
        const path = tls[key];
        if (path !== undefined) paths.add(path);
      }
    }
    const texts = new Map<string, string>();
    const versions: Record<string, string> = {};
    for (const path of paths) {
      let text: string;
      try {
        text = await readFile(path, "utf8");
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        throw new Error(
          `trafficPolicy.tls: ${path} ${code === "ENOENT" ? "does not exist" : `cannot be read (${code ?? error})`}`,
          { cause: error },
        );
      }
      texts.set(path, text);
      versions[path] = createHash("sha256").update(text).digest("hex").slice(0, 16);
    }
    this.#texts = texts;
    return versions;
  }

  /** ClusterOptions.connectors. */
  readonly factory: ConnectorFactory = (settings, service) =>
    new OutboundTlsConnector({
      settings,
      service,
      identity: settings.mode === "ISTIO_MUTUAL" ? this.#identity() : undefined,
      files: {
        ca: this.#text(settings.caFile),
        cert: this.#text(settings.certFile),
        key: this.#text(settings.keyFile),
      },
      failures: this.failures,
    });

  #text(path: string | undefined): string | undefined {
    if (path === undefined) return undefined;
    const text = this.#texts.get(path);
    if (text === undefined) throw new Error(`trafficPolicy.tls: ${path} was not loaded`);
    return text;
  }
}
