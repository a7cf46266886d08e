/**
 * The cluster names Istio gives traffic to no mesh service, as access logs (`upstream_cluster`)
 * and metrics (`destination_service_name`) show them. passthrough.ts makes the traffic.
 */

/** outboundTrafficPolicy ALLOW_ANY: the request went to the host it named. */
export const PASSTHROUGH_CLUSTER = "PassthroughCluster";
/** outboundTrafficPolicy REGISTRY_ONLY: the request was refused (502 NR). */
export const BLACKHOLE_CLUSTER = "BlackHoleCluster";
