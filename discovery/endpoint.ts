/**
 * One upstream address of a service, as discovery reports it. Endpoints inside a published
 * snapshot are frozen, so a balancer or pool may keep references without copying.
 */
export interface Endpoint {
  /** `host:port`, with IPv6 hosts bracketed (`[::1]:8080`); unique within a service. */
  readonly id: string;
  /** Host to connect to: an IP address (IPv6 without brackets) or a DNS name. */
  readonly host: string;
  readonly port: number;
  /** Relative share of traffic, 1..128 (Istio's range); balancers that ignore weights see 1s. */
  readonly weight: number;
  readonly labels: Readonly<Record<string, string>>;
  /**
   * Discovery's own readiness verdict (EndpointSlice `conditions.ready` later; static and file
   * endpoints are always ready). Health checks and outlier detection keep separate flags.
   */
  readonly ready: boolean;
}
