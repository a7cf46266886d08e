import { describe, expect, it } from "vitest";
import { parseConfig } from "./config/load.js";
import type { RemoraConfig } from "./config/schema.js";
import { describeChanges, planReload } from "./reload.js";
import { configHash } from "./runtime.js";

const BASE = `
admin: { port: 15000 }
probes: { port: 15021 }
discovery: { file: /etc/remora/services.yaml }
listeners:
  - { name: out, kind: outbound, port: 15001 }
  - { name: in, kind: inbound, port: 15006, app: 127.0.0.1:8080 }
  - { name: db, kind: tcp, port: 5432, service: postgres }
services:
  - { name: hello, endpoints: [{ address: 127.0.0.1:9101 }] }
  - { name: postgres, endpoints: [{ address: 127.0.0.1:5433 }] }
  - { name: gone, endpoints: [{ address: 127.0.0.1:9999 }] }
`;

const running = parseConfig(BASE, "running.yaml");

function edited(replace: [string, string][]): ReturnType<typeof parseConfig> {
  let text = BASE;
  for (const [from, to] of replace) {
    if (!text.includes(from)) throw new Error(`not in BASE: ${from}`);
    text = text.replace(from, to);
  }
  return parseConfig(text, "wanted.yaml");
}

describe("planReload", () => {
  it("finds nothing to do in the same config, even re-parsed", () => {
    const plan = planReload(running, parseConfig(BASE, "again.yaml"));
    expect(plan.unchanged).toBe(true);
    expect(plan.hash).toBe(configHash(running));
    expect(describeChanges(plan)).toEqual({});
  });

  it("sorts listeners into added, removed and rebound (any field changed)", () => {
    const plan = planReload(
      running,
      edited([
        ["  - { name: in, kind: inbound, port: 15006, app: 127.0.0.1:8080 }\n", ""],
        ["port: 15001 }", "port: 15001, timeouts: { idle: 5s } }"],
        ["port: 5432,", "port: 5434,"],
        ["services:", "  - { name: extra, kind: outbound, port: 15011 }\nservices:"],
      ]),
    );
    expect(plan.unchanged).toBe(false);
    expect(plan.listeners.added.map((l) => l.name)).toEqual(["extra"]);
    expect(plan.listeners.removed.map((l) => l.name)).toEqual(["in"]);
    expect(plan.listeners.rebound.map((r) => [r.from.port, r.to.port])).toEqual([
      [15001, 15001],
      [5432, 5434],
    ]);
    expect(describeChanges(plan)).toEqual({
      listenersAdded: ["extra"],
      listenersRemoved: ["in"],
      listenersRebound: ["out", "db"],
    });
  });

  it("sorts services into added, removed and changed (endpoints or policy)", () => {
    const plan = planReload(
      running,
      edited([
        ["  - { name: gone, endpoints: [{ address: 127.0.0.1:9999 }] }\n", ""],
        ["9101 }] }", "9102 }] }\n  - { name: new, namespace: ns }"],
        ["5433 }] }", "5433 }], timeout: 2s }"],
      ]),
    );
    expect(plan.services).toEqual({
      added: ["new.ns"],
      removed: ["gone.default"],
      changed: ["hello.default", "postgres.default"],
    });
    expect(plan.listeners).toEqual({ added: [], removed: [], rebound: [] });
    expect(plan.discovery).toBeUndefined();
  });

  it("sees the discovery file added, moved or dropped", () => {
    const moved = planReload(running, edited([["/etc/remora/", "/etc/other/"]]));
    expect(moved.discovery).toEqual({
      from: "/etc/remora/services.yaml",
      to: "/etc/other/services.yaml",
    });
    const dropped = planReload(
      running,
      edited([["discovery: { file: /etc/remora/services.yaml }\n", ""]]),
    );
    expect(dropped.discovery).toEqual({ from: "/etc/remora/services.yaml", to: undefined });
    expect(dropped.config.discovery).toBeUndefined();
  });

  it("keeps restart-only values (admin, probes) at their running values and lists them", () => {
    const plan = planReload(
      running,
      edited([
        ["admin: { port: 15000 }", "admin: { port: 15100, address: 0.0.0.0 }"],
        ["probes: { port: 15021 }", "probes: { port: null }"],
      ]),
    );
    expect(plan.restartOnly).toEqual([
      { key: "admin.port", running: 15000, wanted: 15100 },
      { key: "admin.address", running: "127.0.0.1", wanted: "0.0.0.0" },
      { key: "probes.port", running: 15021, wanted: null },
    ]);
    expect(plan.config.admin).toEqual(running.admin);
    expect(plan.config.probes).toEqual(running.probes);
    // Nothing live changed, so there is nothing to apply.
    expect(plan.unchanged).toBe(true);
    expect(describeChanges(plan)).toEqual({
      needsRestart: ["admin.port", "admin.address", "probes.port"],
    });
  });

  it("applies an access-log change live and says so", () => {
    const wanted = { ...running, accessLog: { ...running.accessLog, enabled: true, sample: 0.5 } };
    const plan = planReload(running, wanted);
    expect(plan.restartOnly).toEqual([]);
    expect(plan.accessLog).toBe(true);
    expect(plan.unchanged).toBe(false);
    expect(plan.config.accessLog).toEqual(wanted.accessLog);
    expect(describeChanges(plan)).toEqual({ accessLog: wanted.accessLog });
    expect(planReload(running, { ...running }).accessLog).toBe(false);
  });

  it("keeps discovery.kubernetes at its running value (restart-only) while discovery.file reloads", () => {
    const kube = { clusterDomain: "cluster.local" };
    const withKube = {
      ...running,
      discovery: { file: "/etc/remora/services.yaml", kubernetes: kube },
    };
    const wanted = {
      ...running,
      discovery: { file: "/etc/b.yaml", kubernetes: { ...kube, namespaces: ["shop"] } },
    };
    const plan = planReload(withKube, wanted);
    expect(plan.restartOnly).toEqual([
      { key: "discovery.kubernetes.namespaces", running: null, wanted: ["shop"] },
    ]);
    expect(plan.config.discovery).toEqual({ file: "/etc/b.yaml", kubernetes: kube });
    expect(plan.discovery).toEqual({ from: "/etc/remora/services.yaml", to: "/etc/b.yaml" });
    const dropped = planReload(withKube, { ...running, discovery: undefined });
    expect(dropped.config.discovery).toEqual({ kubernetes: kube });
    const added = planReload(running, {
      ...running,
      discovery: { file: "/etc/remora/services.yaml", kubernetes: kube },
    });
    expect(added.config.discovery).toEqual(running.discovery);
    expect(added.restartOnly.map((c) => c.key)).toEqual(["discovery.kubernetes"]);
    expect(added.unchanged).toBe(true);
  });

  it("applies discovery.kubernetes.trafficPolicy live while the watches' keys wait for a restart", () => {
    const kube = { clusterDomain: "cluster.local" };
    const withKube = { ...running, discovery: { kubernetes: kube } } as RemoraConfig;
    const policy = { tls: { mode: "ISTIO_MUTUAL" } } as never;
    const wanted = {
      ...running,
      discovery: { kubernetes: { ...kube, namespaces: ["shop"], trafficPolicy: policy } },
    } as RemoraConfig;
    const plan = planReload(withKube, wanted);
    expect(plan.restartOnly.map((c) => c.key)).toEqual(["discovery.kubernetes.namespaces"]);
    expect(plan.config.discovery).toEqual({ kubernetes: { ...kube, trafficPolicy: policy } });
    expect(plan.kubernetesTrafficPolicy).toBe(true);
    expect(plan.unchanged).toBe(false);
    expect(describeChanges(plan)).toMatchObject({ kubernetesTrafficPolicy: true });
    // And removed again: the running watches stay, without a policy.
    const back = planReload(plan.config, withKube);
    expect(back.config.discovery).toEqual({ kubernetes: kube });
    expect(back.restartOnly).toEqual([]);
    expect(back.kubernetesTrafficPolicy).toBe(true);
    expect(planReload(withKube, withKube).kubernetesTrafficPolicy).toBe(false);
  });

  it("treats any top-level key it does not apply live as restart-only", () => {
    const wanted = { ...running, workload: { ...running.workload, name: "w" } };
    const plan = planReload(running, wanted);
    expect(plan.restartOnly).toEqual([{ key: "workload.name", running: null, wanted: "w" }]);
    expect(plan.config.workload).toEqual(running.workload);
    expect(plan.unchanged).toBe(true);
  });
});
