import { APP_HEALTH_PREFIX, type AppProber } from "../proxy/app-probes.js";
import { PORTS } from "./sidecar-template.js";

type JsonObject = Record<string, unknown>;

/** The probe fields and the suffix of their rewritten path, in the order the env var lists them. */
const PROBES = [
  ["livenessProbe", "livez"],
  ["readinessProbe", "readyz"],
  ["startupProbe", "startupz"],
] as const;

export interface RewrittenProbes {
  /** The app containers with their HTTP probes pointing at the probe port. */
  readonly containers: JsonObject[];
  /** What the probe listener asks the app, keyed by rewritten path, in container order. */
  readonly probers: Record<string, AppProber>;
  readonly warnings: string[];
}

/**
 * Istio's probe rewrite: each app container's `httpGet` liveness, readiness and startup probe is
 * sent to `/app-health/<container>/livez|readyz|startupz` on the probe port instead, and the
 * original (its port resolved to a number) goes to the sidecar in an env var. The kubelet then
 * reaches the app through the sidecar's plain-HTTP probe port, which keeps working when the app's
 * own port only accepts mTLS. Timing fields (period, thresholds) stay on the rewritten probe.
 * tcpSocket, grpc and exec probes are left alone (see docs/deploy.md).
 */
export function rewriteAppProbes(containers: readonly JsonObject[]): RewrittenProbes {
  const probers: Record<string, AppProber> = {};
  const warnings: string[] = [];
  const rewritten = containers.map((container) => {
    const name = String(container.name);
    let copy: JsonObject | undefined;
    for (const [field, suffix] of PROBES) {
      const probe = container[field] as JsonObject | undefined;
      const httpGet = probe?.httpGet as JsonObject | undefined;
      if (probe === undefined || httpGet === undefined) continue;
      const port = resolvePort(httpGet.port, container);
      if (port === undefined) {
        warnings.push(
          `container "${name}" ${field}: port ${JSON.stringify(httpGet.port)} is not one of its named ports; probe left as is`,
        );
        continue;
      }
      if (port === PORTS.probes) continue;
      const path = `${APP_HEALTH_PREFIX}${name}/${suffix}`;
      probers[path] = {
        httpGet: {
          path: typeof httpGet.path === "string" && httpGet.path !== "" ? httpGet.path : "/",
          port,
          scheme: httpGet.scheme === "HTTPS" ? "HTTPS" : "HTTP",
          ...(typeof httpGet.host === "string" && httpGet.host !== ""
            ? { host: httpGet.host }
            : {}),
          ...(Array.isArray(httpGet.httpHeaders) && httpGet.httpHeaders.length > 0
            ? { httpHeaders: httpGet.httpHeaders }
            : {}),
        },
        ...(typeof probe.timeoutSeconds === "number"
          ? { timeoutSeconds: probe.timeoutSeconds }
          : {}),
      };
      copy ??= { ...container };
      copy[field] = { ...probe, httpGet: { path, port: PORTS.probes, scheme: "HTTP" } };
    }
    return copy ?? container;
  });
  return { containers: rewritten, probers, warnings };
}

/** A number, a numeric string, or the name of one of the container's ports. */
function resolvePort(port: unknown, container: JsonObject): number | undefined {
  if (typeof port === "number") return port;
  if (typeof port !== "string") return undefined;
  if (/^\d+$/.test(port)) return Number(port);
  const ports = (container.ports as JsonObject[] | undefined) ?? [];
  const named = ports.find((p) => p.name === port);
  return typeof named?.containerPort === "number" ? named.containerPort : undefined;
}
