import type { describe } from "./admin.js";
import type { Cluster } from "./cluster.js";
import type { BoundListener, Runtime } from "./runtime.js";
import { WINDOW_SECONDS, type WindowSummary } from "./traffic-window.js";

/**
 * `GET /dashboard.json`: everything the dashboard page (`GET /`) and `remora status` show, in one
 * document, read fresh on every request. docs/dashboard.md documents each field; keep it in step.
 */
export interface DashboardSnapshot {
  /** When this document was made (ISO 8601). */
  generatedAt: string;
  server: {
    /** As the admin's /ready says it: "LIVE", "DRAINING" or "NOT READY". */
    state: "LIVE" | "DRAINING" | "NOT READY";
    uptimeSeconds: number;
    node: string;
    pid: number;
  };
  config: {
    hash: string;
    appliedAt: string;
    reloads: { ok: number; failed: number; lastAttemptAt: string | null; lastError: string };
  };
  /** Open client connections across listeners. */
  downstream: { connections: number };
  /** The rates below are over `spanSeconds`: the last minute, or less since start. */
  window: { seconds: number; spanSeconds: number };
  /** All exchanges, including those that matched no service (NR). */
  total: LastMinute;
  listeners: BoundListener[];
  services: ServiceView[];
}

/** A WindowSummary with rounded figures; `perSecond` only for services and the total. */
export type LastMinute = Omit<WindowSummary, "perSecond"> & { perSecond?: number[] };

type ClusterDescription = ReturnType<typeof describe>;

export type ServiceView = Omit<ClusterDescription, "endpoints"> & {
  lastMinute: LastMinute;
  endpoints: (ClusterDescription["endpoints"][number] & { lastMinute: LastMinute })[];
};

/**
 * Build the snapshot. `describeCluster` is the admin's /clusters view, so both show the same
 * health and connections; the dashboard adds the last minute of traffic to it.
 */
export function dashboardSnapshot(
  runtime: Runtime,
  describeCluster: (cluster: Cluster) => ClusterDescription,
): DashboardSnapshot {
  const traffic = runtime.traffic;
  const reloads = runtime.reloads;
  const services: ServiceView[] = [];
  runtime.kubernetes?.catchUp();
  for (const cluster of [...runtime.clusters.all(), ...runtime.appClusters]) {
    const view = describeCluster(cluster);
    services.push({
      ...view,
      lastMinute: rounded(traffic.service(cluster.key), true),
      endpoints: view.endpoints.map((endpoint) => ({
        ...endpoint,
        lastMinute: rounded(traffic.service(cluster.key, endpoint.address), false),
      })),
    });
  }
  return {
    generatedAt: new Date().toISOString(),
    server: {
      state: runtime.ready ? "LIVE" : runtime.draining ? "DRAINING" : "NOT READY",
      uptimeSeconds: round(process.uptime(), 1),
      node: process.version,
      pid: process.pid,
    },
    config: {
      hash: reloads.hash,
      appliedAt: new Date(reloads.appliedAtMs).toISOString(),
      reloads: {
        ok: reloads.ok,
        failed: reloads.failed,
        lastAttemptAt:
          reloads.lastAttemptMs === 0 ? null : new Date(reloads.lastAttemptMs).toISOString(),
        lastError: reloads.lastError,
      },
    },
    downstream: { connections: runtime.connections },
    window: { seconds: WINDOW_SECONDS, spanSeconds: round(traffic.spanSeconds(), 3) },
    total: rounded(traffic.total(), true),
    listeners: runtime.listeners,
    services,
  };
}

function rounded(summary: WindowSummary, withHistory: boolean): LastMinute {
  const out: LastMinute = {
    requests: summary.requests,
    errors: summary.errors,
    requestsPerSecond: round(summary.requestsPerSecond, 3),
    errorRate: round(summary.errorRate, 4),
    p50Ms: summary.p50Ms === null ? null : round(summary.p50Ms, 3),
    p99Ms: summary.p99Ms === null ? null : round(summary.p99Ms, 3),
    responseFlags: summary.responseFlags,
  };
  if (withHistory) out.perSecond = summary.perSecond;
  return out;
}

function round(value: number, digits: number): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}
