/**
 * What `remora iptables` (the init step) and `remora sidecar` (the proxy) must agree on, in one
 * place: Istio's ports and user id, and which listener port each app port is redirected to.
 *
 * Node.js cannot read SO_ORIGINAL_DST, so a redirected connection does not tell remora which port
 * the client dialled. Outbound, that does not matter for HTTP: the request's Host names the
 * destination. Inbound it does: a pod with app ports 8080 and 9090 needs the connection to 9090 to
 * reach the app on 9090. So every app port gets an inbound listener of its own, and the iptables
 * rules redirect each app port to that listener (`REDIRECT --to-ports`): the listener's port *is*
 * the original destination. Both commands compute the mapping with `inboundListenerPorts`, from
 * the same ordered list of app ports, so they cannot disagree.
 */

/** Istio's sidecar user and group: its own traffic is never captured. */
export const PROXY_UID = 1337;
export const PROXY_GID = 1337;

/** Istio's ports (docs/design: "Ports and defaults"). */
export const PORTS = {
  outbound: 15001,
  inbound: 15006,
  admin: 15000,
  probes: 15021,
  metrics: 15090,
} as const;

/** Inbound ports never redirected: the kubelet's probes, Prometheus, the (loopback) admin API. */
export const ALWAYS_EXCLUDED_INBOUND = [PORTS.metrics, PORTS.probes, PORTS.admin] as const;

/** remora's own ports; an inbound listener for an app port never takes one of these. */
const RESERVED = new Set<number>(Object.values(PORTS));

/**
 * The inbound listener port of each app port, in order: the first app port's listener is Istio's
 * 15006, the next ones 15007, 15008, ... skipping remora's own ports and the app ports themselves.
 * It depends on nothing but the list, so the two commands agree given the same list.
 */
export function inboundListenerPorts(appPorts: readonly number[]): Map<number, number> {
  const taken = new Set<number>([...RESERVED, ...appPorts]);
  taken.delete(PORTS.inbound);
  const out = new Map<number, number>();
  let next = PORTS.inbound;
  for (const app of appPorts) {
    if (out.has(app)) continue;
    while (taken.has(next)) next++;
    if (next > 65535) throw new RangeError("no free port left for another inbound listener");
    out.set(app, next);
    taken.add(next);
    next++;
  }
  return out;
}

/**
 * A comma-separated port list (`8080,9090`), as flags and environment variables write it. Throws a
 * RangeError naming the bad entry. Empty text is an empty list.
 */
export function parsePortList(text: string, what: string): number[] {
  const ports: number[] = [];
  for (const raw of text.split(",")) {
    const item = raw.trim();
    if (item === "") continue;
    const port = Number(item);
    if (!/^\d{1,5}$/.test(item) || port < 1 || port > 65535) {
      throw new RangeError(`${what}: expected ports 1-65535 separated by commas, got "${item}"`);
    }
    if (!ports.includes(port)) ports.push(port);
  }
  return ports;
}
