/**
 * `discovery.kubernetes`: Services and EndpointSlices from the Kubernetes API
 * (discovery/kubernetes/, docs/kubernetes.md). A restart applies changes.
 */
import * as z from "zod";
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
});

export type KubernetesDiscoveryConfig = z.output<typeof kubernetesDiscoverySchema>;
