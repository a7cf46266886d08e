/**
 * `outboundTrafficPolicy`: Istio's MeshConfig setting for requests whose Host is no mesh service
 * (proxy/routing/passthrough.ts, docs/deploy.md). A restart applies changes.
 */
import * as z from "zod";

export const outboundTrafficPolicySchema = z.strictObject({
  /**
   * ALLOW_ANY (Istio's default): pass the request through to the host it names (Istio's
   * PassthroughCluster). REGISTRY_ONLY: 502 NR (Istio's BlackHoleCluster).
   */
  mode: z
    .enum(["ALLOW_ANY", "REGISTRY_ONLY"], {
      error: (issue) =>
        `expected "ALLOW_ANY" or "REGISTRY_ONLY", got ${JSON.stringify(issue.input)}`,
    })
    .default("ALLOW_ANY"),
});

export type OutboundTrafficPolicy = z.output<typeof outboundTrafficPolicySchema>;
