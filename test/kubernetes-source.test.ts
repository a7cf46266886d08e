/**
 * KubernetesSource over real HTTPS (undici) against the fake API server, in process, with the
 * reflector's timers injected: every backoff is observed as the delay it asked for, and fires at
 * once, so failures are exercised without sleeping.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { ApiAccess } from "../discovery/kubernetes/access.js";
import type { Timers } from "../discovery/kubernetes/backoff.js";
import { KubernetesSource } from "../discovery/kubernetes/source.js";
import {
  FakeKubeApi,
  serviceObject,
  sliceObject,
} from "../discovery/kubernetes/testing/fake-api.js";
import { ServiceRegistry } from "../discovery/registry.js";

let api: FakeKubeApi | undefined;
let source: KubernetesSource | undefined;

afterEach(async () => {
  await source?.stop();
  await api?.stop();
  source = undefined;
  api = undefined;
});

interface Setup {
  api: FakeKubeApi;
  source: KubernetesSource;
  registry: ServiceRegistry;
  /** Sleeps the reflectors asked for (the watch stall guard, minutes long, left out). */
  delays: number[];
  warnings: string[];
}

async function setup(
  options: {
    namespaces?: string[];
    before?: (api: FakeKubeApi) => void;
    /** Default 0: every update applied as it comes (the tests of holding set it). */
    idleRefreshMs?: number;
    timers?: Timers;
    now?: () => number;
  } = {},
): Promise<Setup> {
  api = new FakeKubeApi();
  await api.start();
  const server = api;
  options.before?.(server);
  const registry = new ServiceRegistry();
  const delays: number[] = [];
  const warnings: string[] = [];
  const timers: Timers = options.timers ?? {
    setTimeout: (callback, ms) => {
      if (ms < 300_000) delays.push(ms);
      const timer = setTimeout(callback, ms < 300_000 ? 0 : ms);
      timer.unref();
      return timer;
    },
    clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  };
  const access: ApiAccess = {
    server: server.url,
    ca: server.ca.certPem,
    cert: undefined,
    key: undefined,
    insecureSkipTlsVerify: false,
    namespace: "default",
    origin: "test",
    token: async () => server.token,
    tokenRejected: () => {},
  };
  source = new KubernetesSource(registry, {
    access,
    clusterDomain: "cluster.local",
    namespaces: options.namespaces,
    idleRefreshMs: options.idleRefreshMs ?? 0,
    timers,
    now: options.now,
    random: () => 0,
    logger: { info: () => {}, warn: (_obj, msg) => warnings.push(msg) },
  });
  await source.start();
  return { api: server, source, registry, delays, warnings };
}

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function ids(registry: ServiceRegistry, key: string): string[] {
  return (registry.get(key)?.endpoints ?? []).map((e) => e.id).sort();
}

describe("KubernetesSource against the fake API server", () => {
  it("backs off through 403 (saying which RBAC is missing), 429 (for Retry-After) and 500, then syncs", async () => {
    const run = await setup({
      before: (server) => {
        server.put("services", serviceObject("web", "default", [{ name: "http", port: 80 }]));
        server.put(
          "endpointslices",
          sliceObject("web-1", "default", "web", [{ ip: "10.0.0.1" }], {
            name: "http",
            port: 8080,
          }),
        );
        server.fail(
          { status: 403, on: "list" },
          { status: 429, on: "list", retryAfterSeconds: 7 },
          { status: 500, on: "list" },
        );
      },
    });
    await until(() => run.registry.isSynced(), "the first sync");
    expect(ids(run.registry, "web:80.default")).toEqual(["10.0.0.1:8080"]);
    expect(run.delays).toContain(7000);
    expect(run.delays.filter((ms) => ms !== 7000).every((ms) => ms >= 800 && ms <= 30_000)).toBe(
      true,
    );
    expect(
      run.warnings.some((msg) =>
        /may not list (services|endpointslices\.discovery\.k8s\.io) in all namespaces; grant get, list and watch/.test(
          msg,
        ),
      ),
    ).toBe(true);
    const reasons = [...run.source.stats.restarts.keys()].map((key) => key.split("|")[1]).sort();
    expect(reasons).toEqual(["forbidden", "server_error", "throttled"]);
  });

  it("an HTTP 410 to a watch relists, and the fresh list replaces what changed while the watch was down", async () => {
    const run = await setup({
      before: (server) => {
        server.expiredAs = "http";
        server.put("services", serviceObject("web", "default", [{ name: "http", port: 80 }]));
        server.put(
          "endpointslices",
          sliceObject("web-1", "default", "web", [{ ip: "10.0.0.1" }], {
            name: "http",
            port: 8080,
          }),
        );
      },
    });
    await until(() => run.registry.isSynced() && run.api.watchCount === 2, "the watches");
    await run.api.stop();
    run.api.delete("endpointslices", "default", "web-1");
    run.api.put(
      "endpointslices",
      sliceObject("web-2", "default", "web", [{ ip: "10.0.0.2" }], { name: "http", port: 8080 }),
    );
    await run.api.restart({ compact: true });
    await until(() => ids(run.registry, "web:80.default").join() === "10.0.0.2:8080", "the relist");
    expect(
      run.source.stats.restarts.get("endpointslices.discovery.k8s.io|expired"),
    ).toBeGreaterThanOrEqual(1);
    expect(run.api.requests.some((r) => r.status === 410 && r.query.watch === "true")).toBe(true);
  });

  it("watches only the configured namespaces, each on its own URL", async () => {
    const run = await setup({
      namespaces: ["shop"],
      before: (server) => {
        server.put("services", serviceObject("cart", "shop", [{ name: "http", port: 80 }]));
        server.put("services", serviceObject("web", "default", [{ name: "http", port: 80 }]));
      },
    });
    await until(() => run.registry.isSynced(), "the first sync");
    expect(run.registry.keys()).toEqual(["cart:80.shop"]);
    expect(run.source.route("cart.shop")).toBe("cart:80.shop");
    const paths = new Set(run.api.requests.map((r) => r.path));
    expect([...paths].sort()).toEqual([
      "/api/v1/namespaces/shop/services",
      "/apis/discovery.k8s.io/v1/namespaces/shop/endpointslices",
    ]);
  });

  it("applies watch events incrementally: only the changed Service is republished", async () => {
    const run = await setup({
      before: (server) => {
        for (const name of ["a", "b", "c"]) {
          server.put("services", serviceObject(name, "default", [{ name: "http", port: 80 }]));
          server.put(
            "endpointslices",
            sliceObject(`${name}-1`, "default", name, [{ ip: "10.0.0.1" }], {
              name: "http",
              port: 8080,
            }),
          );
        }
      },
    });
    await until(() => run.registry.isSynced() && run.api.watchCount === 2, "the watches");
    const published: string[] = [];
    run.registry.subscribe((_snapshot, key) => published.push(key));
    run.api.put(
      "endpointslices",
      sliceObject("b-1", "default", "b", [{ ip: "10.0.0.1" }, { ip: "10.0.0.9" }], {
        name: "http",
        port: 8080,
      }),
    );
    await until(() => ids(run.registry, "b:80.default").length === 2, "the event");
    expect(published).toEqual(["b:80.default"]);
    expect(run.source.stats.eventsApplied.get("endpointslices.discovery.k8s.io")).toBe(1);
  });
});

/** Timers that fire only when the test says, and a clock the test moves. */
function manualTime() {
  let clock = 1_000_000;
  const pending = new Map<number, { at: number; callback: () => void }>();
  let next = 0;
  const timers: Timers = {
    setTimeout: (callback, ms) => {
      const id = next++;
      pending.set(id, { at: clock + ms, callback });
      return id;
    },
    clearTimeout: (handle) => pending.delete(handle as number),
  };
  return {
    timers,
    now: () => clock,
    /** Move the clock and run every timer due by then, including ones they set that are due. */
    advance(ms: number): void {
      clock += ms;
      for (;;) {
        const due = [...pending].find(([, timer]) => timer.at <= clock);
        if (due === undefined) return;
        pending.delete(due[0]);
        due[1].callback();
      }
    },
  };
}

describe("KubernetesSource holding the slice updates of Services not routed to", () => {
  const slice = (service: string, ips: string[], name = `${service}-1`) =>
    sliceObject(
      name,
      "default",
      service,
      ips.map((ip) => ({ ip })),
      { name: "http", port: 8080 },
    );

  async function holding() {
    const time = manualTime();
    const run = await setup({
      idleRefreshMs: 10_000,
      timers: time.timers,
      now: time.now,
      before: (server) => {
        for (const name of ["web", "api"]) {
          server.put("services", serviceObject(name, "default", [{ name: "http", port: 80 }]));
          server.put("endpointslices", slice(name, ["10.0.0.1"]));
        }
      },
    });
    await until(() => run.registry.isSynced() && run.api.watchCount === 2, "the watches");
    return { ...run, time };
  }

  it("holds them unparsed until idleRefresh has passed, parsing a slice rewritten meanwhile once", async () => {
    const run = await holding();
    run.api.put("endpointslices", slice("api", ["10.0.0.1", "10.0.0.2"]));
    run.api.put("endpointslices", slice("api", ["10.0.0.3"]));
    await until(
      () => run.source.stats.eventsApplied.get("endpointslices.discovery.k8s.io") === 2,
      "the events",
    );
    expect(run.source.heldUpdates).toBe(1);
    expect(ids(run.registry, "api:80.default")).toEqual(["10.0.0.1:8080"]);
    run.time.advance(9_000);
    expect(ids(run.registry, "api:80.default")).toEqual(["10.0.0.1:8080"]);
    run.time.advance(1_000);
    expect(ids(run.registry, "api:80.default")).toEqual(["10.0.0.3:8080"]);
    expect(run.source.heldUpdates).toBe(0);
  });

  it("applies what is held for a Service at its first route, before answering, then applies its updates as they come", async () => {
    const run = await holding();
    run.api.put("endpointslices", slice("web", ["10.0.0.4"]));
    await until(() => run.source.heldUpdates === 1, "the held event");
    expect(ids(run.registry, "web:80.default")).toEqual(["10.0.0.1:8080"]);
    expect(run.source.route("web")).toBe("web:80.default");
    expect(ids(run.registry, "web:80.default")).toEqual(["10.0.0.4:8080"]);
    expect(run.source.heldUpdates).toBe(0);
    // Routed now: the next update is applied without any timer firing.
    run.api.put("endpointslices", slice("web", ["10.0.0.5"]));
    await until(() => ids(run.registry, "web:80.default").join() === "10.0.0.5:8080", "the update");
    expect(run.source.heldUpdates).toBe(0);
    // The Service not routed to is still held back.
    run.api.put("endpointslices", slice("api", ["10.0.0.6"]));
    await until(() => run.source.heldUpdates === 1, "the held event");
    expect(ids(run.registry, "api:80.default")).toEqual(["10.0.0.1:8080"]);
  });

  it("catchUp applies everything held, a deletion and a new slice included", async () => {
    const run = await holding();
    run.api.delete("endpointslices", "default", "api-1");
    run.api.put("endpointslices", slice("web", ["10.0.0.7"], "web-2"));
    await until(() => run.source.heldUpdates === 2, "the held events");
    expect(ids(run.registry, "api:80.default")).toEqual(["10.0.0.1:8080"]);
    run.source.catchUp();
    expect(ids(run.registry, "api:80.default")).toEqual([]);
    expect(ids(run.registry, "web:80.default")).toEqual(["10.0.0.1:8080", "10.0.0.7:8080"]);
    expect(run.source.heldUpdates).toBe(0);
  });

  it("a relist drops what was held (the list is newer) and publishes the list's state", async () => {
    const run = await holding();
    run.api.expiredAs = "http";
    run.api.put("endpointslices", slice("api", ["10.0.0.8"]));
    await until(() => run.source.heldUpdates === 1, "the held event");
    await run.api.stop();
    run.api.put("endpointslices", slice("api", ["10.0.0.9"]));
    await run.api.restart({ compact: true });
    // The reflector backs off after the cut: its timers are the test's.
    for (
      let i = 0;
      i < 100 && ids(run.registry, "api:80.default").join() !== "10.0.0.9:8080";
      i++
    ) {
      run.time.advance(1_000);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    expect(ids(run.registry, "api:80.default")).toEqual(["10.0.0.9:8080"]);
    expect(run.source.heldUpdates).toBe(0);
  });

  it("does not hold a line that is not valid JSON: the watch fails as before", async () => {
    const run = await holding();
    // Valid but for one trailing comma: a scan that skipped the end would hold it.
    const broken = `${JSON.stringify({ type: "MODIFIED", object: slice("api", ["10.0.0.2"]) }).slice(0, -2)},}}`;
    run.api.sendRawLine("endpointslices", broken);
    await until(
      () => run.source.stats.restarts.get("endpointslices.discovery.k8s.io|invalid_json") === 1,
      "the failed watch",
    );
    expect(run.source.heldUpdates).toBe(0);
    expect(ids(run.registry, "api:80.default")).toEqual(["10.0.0.1:8080"]);
  });
});
