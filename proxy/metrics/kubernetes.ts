/**
 * `remora_kubernetes_*`: the Kubernetes discovery source's watches (discovery/kubernetes/). Read
 * from the source's counters at scrape time; registered only when `discovery.kubernetes` is set.
 * `remora_discovery_last_sync_age_seconds{source="kubernetes"}` (remora.ts) covers updates too.
 */
import { Counter, Gauge, type Registry } from "prom-client";
import type { KubernetesStats } from "../../discovery/kubernetes/source.js";

/** What the metrics read; KubernetesSource fits. */
export interface KubernetesMetricsSubject {
  readonly stats: KubernetesStats;
  readonly objects: { readonly services: number; readonly endpointslices: number };
  readonly heldUpdates: number;
}

export function registerKubernetesMetrics(
  registry: Registry,
  source: KubernetesMetricsSubject,
): void {
  new Counter({
    name: "remora_kubernetes_watch_restarts_total",
    help: "Restarts of a Kubernetes list/watch loop, by resource and reason (closed = the server ended the watch normally; expired = 410, relisted; the rest back off).",
    labelNames: ["resource", "reason"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [key, count] of source.stats.restarts) {
        const [resource = "", reason = ""] = key.split("|");
        this.inc({ resource, reason }, count);
      }
    },
  });
  new Counter({
    name: "remora_kubernetes_events_applied_total",
    help: "Kubernetes watch events (ADDED, MODIFIED, DELETED) applied, by resource.",
    labelNames: ["resource"],
    registers: [registry],
    collect() {
      this.reset();
      for (const [resource, count] of source.stats.eventsApplied) this.inc({ resource }, count);
    },
  });
  new Gauge({
    name: "remora_kubernetes_objects",
    help: "Kubernetes objects held in memory, by resource.",
    labelNames: ["resource"],
    registers: [registry],
    collect() {
      const objects = source.objects;
      this.set({ resource: "services" }, objects.services);
      this.set({ resource: "endpointslices.discovery.k8s.io" }, objects.endpointslices);
    },
  });
  new Gauge({
    name: "remora_kubernetes_held_updates",
    help: "EndpointSlice updates held, unparsed, for Services this proxy has not routed to; each is applied within discovery.kubernetes.idleRefresh.",
    registers: [registry],
    collect() {
      this.set(source.heldUpdates);
    },
  });
  new Gauge({
    name: "remora_kubernetes_last_full_sync_age_seconds",
    help: "Seconds since a full Kubernetes list last replaced the state: the first sync, a relist after 410, a resync (-1 = not yet).",
    registers: [registry],
    collect() {
      const last = source.stats.lastFullSyncMs;
      this.set(last === 0 ? -1 : Math.max(0, Date.now() - last) / 1000);
    },
  });
}
