/**
 * The config schema's upstream TLS part: `services[].trafficPolicy.tls` and
 * `services[].subsets[].trafficPolicy.tls`, Istio's DestinationRule ClientTLSSettings
 * (tls/client-tls-settings.ts, tls/outbound.ts). The files it names are read and checked at load
 * (tls-files.ts), so `remora validate` catches an unreadable or mismatched one.
 */
import * as z from "zod";
import { CLIENT_TLS_MODES } from "../../tls/client-tls-settings.js";
import { parseSpiffeId } from "../../tls/identity.js";

const SPIFFE = "spiffe://";
const filePath = z.string().min(1, { error: "expected a file path" });

/**
 * Istio accepts an identity without its scheme (`cluster.local/ns/x/sa/y`), as in
 * AuthorizationPolicy principals; stored with it so the check compares like with like.
 */
function withScheme(name: string): string {
  return name.startsWith(SPIFFE) ? name : `${SPIFFE}${name}`;
}

export const clientTlsSchema = z
  .strictObject({
    /** DISABLE (plain TCP, the default), SIMPLE, MUTUAL or ISTIO_MUTUAL. */
    mode: z
      .enum(CLIENT_TLS_MODES, {
        error: (issue) =>
          `expected one of ${CLIENT_TLS_MODES.join(", ")}, got ${JSON.stringify(issue.input)}`,
      })
      .default("DISABLE"),
    /**
     * Identities the server may present (any one). ISTIO_MUTUAL: SPIFFE IDs, with or without
     * `spiffe://`. SIMPLE/MUTUAL: DNS names, URIs or IPs, replacing the hostname check.
     */
    subjectAltNames: z.array(z.string().min(1, { error: "expected a name" })).default(() => []),
    /** SNI; SIMPLE/MUTUAL also check the server's certificate against it (default: the service name). */
    sni: z.string().min(1, { error: "expected a server name" }).optional(),
    /** SIMPLE/MUTUAL: PEM CA certificates that must have issued the server's (default: node's bundled CAs). */
    caFile: filePath.optional(),
    /** MUTUAL: the PEM client certificate to present, and its key. */
    certFile: filePath.optional(),
    keyFile: filePath.optional(),
  })
  .superRefine((tls, ctx) => {
    const issue = (path: string | number, message: string, ...more: (string | number)[]) =>
      ctx.addIssue({ code: "custom", path: [path, ...more], message });
    const files = (["caFile", "certFile", "keyFile"] as const).filter((k) => tls[k] !== undefined);
    switch (tls.mode) {
      case "ISTIO_MUTUAL":
        for (const key of files) {
          issue(
            key,
            "ISTIO_MUTUAL uses this workload's identity (the top-level tls) and its trust bundle; Istio would ignore this file silently, remora refuses it so an unused file is not mistaken for a used one (use MUTUAL to present other files)",
          );
        }
        tls.subjectAltNames.forEach((name, index) => {
          try {
            parseSpiffeId(withScheme(name));
          } catch (error) {
            issue(
              "subjectAltNames",
              `ISTIO_MUTUAL expects SPIFFE identities (spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/ACCOUNT, or without spiffe://): ${(error as Error).message}`,
              index,
            );
          }
        });
        break;
      case "MUTUAL":
        for (const key of ["certFile", "keyFile"] as const) {
          if (tls[key] === undefined) {
            issue(key, "required for MUTUAL: the client certificate and key to present");
          }
        }
        break;
      case "SIMPLE":
        for (const key of ["certFile", "keyFile"] as const) {
          if (tls[key] !== undefined) {
            issue(key, "SIMPLE presents no client certificate; use mode MUTUAL to present one");
          }
        }
        break;
      default:
        for (const key of [...files, "sni"] as const) {
          if (tls[key] !== undefined) issue(key, "has no effect with mode DISABLE (plain TCP)");
        }
        if (tls.subjectAltNames.length > 0) {
          issue("subjectAltNames", "has no effect with mode DISABLE (plain TCP)");
        }
    }
  })
  .transform((tls) =>
    tls.mode === "ISTIO_MUTUAL"
      ? { ...tls, subjectAltNames: tls.subjectAltNames.map(withScheme) }
      : tls,
  );

export type ClientTlsConfig = z.output<typeof clientTlsSchema>;

const NEEDS_IDENTITY =
  "ISTIO_MUTUAL needs this workload's identity: set the top-level tls: { certFile, keyFile, caFile }";

interface ServiceTls {
  readonly trafficPolicy?: { readonly tls?: ClientTlsConfig };
  readonly subsets?: readonly { readonly trafficPolicy?: { readonly tls?: ClientTlsConfig } }[];
}

/**
 * ISTIO_MUTUAL presents this workload's identity, so the config must have one (the top-level
 * `tls`), as inbound STRICT/PERMISSIVE do. Runs in configSchema's superRefine.
 */
export function checkIstioMutualIdentity(
  services: readonly ServiceTls[],
  hasIdentity: boolean,
  ctx: z.RefinementCtx,
): void {
  if (hasIdentity) return;
  const message = NEEDS_IDENTITY;
  services.forEach((service, index) => {
    if (service.trafficPolicy?.tls?.mode === "ISTIO_MUTUAL") {
      ctx.addIssue({
        code: "custom",
        path: ["services", index, "trafficPolicy", "tls", "mode"],
        message,
      });
    }
    (service.subsets ?? []).forEach((subset, s) => {
      if (subset.trafficPolicy?.tls?.mode !== "ISTIO_MUTUAL") return;
      ctx.addIssue({
        code: "custom",
        path: ["services", index, "subsets", s, "trafficPolicy", "tls", "mode"],
        message,
      });
    });
  });
}

/**
 * The same check for `discovery.kubernetes.trafficPolicy` (the discovered Services' default).
 * Runs in configSchema's superRefine.
 */
export function checkDiscoveryIstioMutual(
  policy: { readonly tls?: ClientTlsConfig } | undefined,
  identity: unknown,
  ctx: z.RefinementCtx,
): void {
  if (identity !== undefined || policy?.tls?.mode !== "ISTIO_MUTUAL") return;
  ctx.addIssue({
    code: "custom",
    path: ["discovery", "kubernetes", "trafficPolicy", "tls", "mode"],
    message: NEEDS_IDENTITY,
  });
}
