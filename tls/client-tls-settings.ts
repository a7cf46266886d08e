/**
 * Upstream TLS settings of one service or subset: Istio's DestinationRule ClientTLSSettings, as
 * the config schema resolves them (proxy/config/tls-schema.ts) and the connector uses them
 * (tls/outbound.ts). Plain data: Cluster compares settings as JSON, so a change here (a reload)
 * gives new pools and never reuses a connection made with other settings.
 */

/**
 * - ISTIO_MUTUAL: present this workload's identity (top-level `tls`), verify the server against
 *   its trust bundle and its SPIFFE identity.
 * - MUTUAL: present `certFile`/`keyFile`, verify the server against `caFile` (or the system's CAs).
 * - SIMPLE: verify the server only (TLS origination for a plaintext app).
 * - DISABLE: plain TCP (never stored: a service with DISABLE has no settings at all).
 */
export type ClientTlsMode = "ISTIO_MUTUAL" | "MUTUAL" | "SIMPLE" | "DISABLE";

export const CLIENT_TLS_MODES = ["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"] as const;

export interface ClientTlsSettings {
  readonly mode: Exclude<ClientTlsMode, "DISABLE">;
  /**
   * Identities the server must carry (any one). ISTIO_MUTUAL: SPIFFE IDs, `spiffe://` already
   * added by the schema. SIMPLE/MUTUAL: DNS names (wildcards in the certificate honoured), URIs or
   * IP addresses, replacing the hostname check as Envoy's SAN matchers do. Empty = the default
   * check (see tls/outbound.ts).
   */
  readonly subjectAltNames: readonly string[];
  /** SNI sent to the server; SIMPLE/MUTUAL also check the certificate against it. */
  readonly sni?: string;
  /** Absolute paths (SIMPLE/MUTUAL only). */
  readonly caFile?: string;
  readonly certFile?: string;
  readonly keyFile?: string;
  /**
   * A digest of the files' contents when the settings were built, so a reload that finds a file
   * changed builds new pools even though the paths are the same.
   */
  readonly filesVersion?: string;
}
