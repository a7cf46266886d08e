/**
 * `discovery.kubernetes`: Services and EndpointSlices from the Kubernetes API
 * (discovery/kubernetes/, docs/kubernetes.md). A restart applies changes, except to
 * `trafficPolicy`, which a reload applies.
 */
import * as z from "zod";
import { durationSchema } from "./duration.js";
import { dnsLabel, positiveDuration } from "./fields.js";

/** A DNS subdomain such as `cluster.local` (RFC 1123), without a trailing dot. */
const DNS_SUBDOMAIN =
  /^[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)*$/;

export const kubernetesDiscoverySchema = z.strictObject({
  /**
   * A kubeconfig for development outside a cluster; unset: the pod's service account, else
   * $KUBECONFIG, else ~/.kube/config.
   */
  kubeconfig: z.string().min(1, { error: "expected a file path" }).optional(),
  /** Watch only these namespaces (one watch each); unset: all namespaces, one cluster-wide watch. */
  namespaces: z
    .array(dnsLabel)
    .min(1, { error: "list at least one namespace, or leave namespaces out to watch all" })
    .refine((list) => new Set(list).size === list.length, { error: "a namespace is listed twice" })
    .optional(),
  /** The cluster's DNS suffix, for `NAME.NS.svc.<clusterDomain>` names. */
  clusterDomain: z
    .string()
    .regex(DNS_SUBDOMAIN, { error: "expected a DNS domain such as cluster.local" })
    .default("cluster.local"),
  /** Relist this often even when the watches are healthy (e.g. `30m`); unset: never. */
  resync: positiveDuration("a resync of 0 would relist without pause").optional(),
  /**
   * How long slice updates of Services this proxy has not routed to may wait, held unparsed, before
   * they are applied (`0s`: apply every update as it comes). Routed Services are always current.
   */
  idleRefresh: durationSchema.prefault("10s"),
});

/**
 * `discovery.kubernetes` with `trafficPolicy`: the policy of every discovered Service that
 * `services:` does not name, like an Istio DestinationRule for `*.local`. A `services:` entry
 * for NAME replaces it whole for NAME's ports (Istio merges nothing across DestinationRules);
 * unset, such Services get the schema's defaults (plain TCP). `trafficPolicy` is the schema
 * `services[].trafficPolicy` uses, passed in by schema.ts (which imports this file), without its
 * default so that an unset key stays unset.
 */
export function kubernetesDiscoveryWithPolicy<P extends z.ZodType>(trafficPolicy: P) {
  return kubernetesDiscoverySchema.extend({ trafficPolicy: trafficPolicy.optional() });
}

export type KubernetesDiscoveryConfig = z.output<typeof kubernetesDiscoverySchema>;
