import { describe, expect, it } from "vitest";
import { eligibleEndpoints, ServiceTable } from "./service-table.js";
import type { EndpointSlice, Service, SliceEndpoint } from "./wire.js";

function service(
  name: string,
  ports: Service["spec"] extends infer S ? S : never,
  namespace = "default",
): Service {
  return { kind: "Service", metadata: { name, namespace }, spec: ports };
}

function slice(
  name: string,
  owner: string,
  endpoints: SliceEndpoint[] | null,
  ports: { name?: string; port: number }[] = [{ name: "http", port: 8080 }],
  namespace = "default",
): EndpointSlice {
  return {
    kind: "EndpointSlice",
    metadata: { name, namespace, labels: { "kubernetes.io/service-name": owner } },
    addressType: "IPv4",
    endpoints,
    ports,
  };
}

const web = service("web", {
  clusterIP: "10.96.0.12",
  clusterIPs: ["10.96.0.12"],
  ports: [{ name: "http", port: 80, targetPort: "http", protocol: "TCP" }],
});

function ids(table: ServiceTable, key: string): string[] {
  const entry = table.all().find((s) => `${s.name}.${s.namespace}` === key);
  return (entry?.endpoints ?? []).map((e) => e.id).sort();
}

describe("eligibleEndpoints", () => {
  const port = { name: "http", port: 80 };

  it("takes the union of slices, de-duplicated; null endpoints and missing conditions are valid", () => {
    const endpoints = eligibleEndpoints(
      [
        slice("a", "web", [
          { addresses: ["10.0.0.1"] },
          { addresses: ["10.0.0.2"], conditions: {} },
        ]),
        slice("b", "web", [{ addresses: ["10.0.0.2"], conditions: { ready: true } }]),
        slice("c", "web", null),
      ],
      port,
    );
    expect(endpoints.map((e) => e.id)).toEqual(["10.0.0.1:8080", "10.0.0.2:8080"]);
    expect(endpoints.every((e) => e.ready && Object.isFrozen(e))).toBe(true);
  });

  it("keeps only ready endpoints while any is ready", () => {
    const endpoints = eligibleEndpoints(
      [
        slice("a", "web", [
          { addresses: ["10.0.0.1"], conditions: { ready: true } },
          { addresses: ["10.0.0.2"], conditions: { ready: false, serving: false } },
          {
            addresses: ["10.0.0.3"],
            conditions: { ready: false, serving: true, terminating: true },
          },
        ]),
      ],
      port,
    );
    expect(endpoints.map((e) => e.id)).toEqual(["10.0.0.1:8080"]);
  });

  it("falls back to serving terminating endpoints when none is ready, never to not-serving ones", () => {
    const endpoints = eligibleEndpoints(
      [
        slice("a", "web", [
          {
            addresses: ["10.0.0.2"],
            conditions: { ready: false, serving: false, terminating: true },
          },
          {
            addresses: ["10.0.0.3"],
            conditions: { ready: false, serving: true, terminating: true },
          },
          { addresses: ["10.0.0.4"], conditions: { ready: false } },
        ]),
      ],
      port,
    );
    expect(endpoints.map((e) => e.id)).toEqual(["10.0.0.3:8080"]);
  });

  it("an endpoint in two slices counts at its best (ready in one, not in the other)", () => {
    const endpoints = eligibleEndpoints(
      [
        slice("a", "web", [{ addresses: ["10.0.0.1"], conditions: { ready: false } }]),
        slice("b", "web", [{ addresses: ["10.0.0.1"], conditions: { ready: true } }]),
      ],
      port,
    );
    expect(endpoints.map((e) => e.id)).toEqual(["10.0.0.1:8080"]);
  });

  it("resolves the port per slice by name, so a named targetPort that differs per pod works", () => {
    const endpoints = eligibleEndpoints(
      [
        slice("a", "web", [{ addresses: ["10.0.0.1"] }], [{ name: "http", port: 8080 }]),
        slice(
          "b",
          "web",
          [{ addresses: ["10.0.0.2"] }],
          [
            { name: "http", port: 9090 },
            { name: "metrics", port: 1 },
          ],
        ),
        slice("c", "web", [{ addresses: ["10.0.0.3"] }], [{ name: "metrics", port: 15090 }]),
      ],
      port,
    );
    expect(endpoints.map((e) => e.id)).toEqual(["10.0.0.1:8080", "10.0.0.2:9090"]);
  });

  it("matches an unnamed service port to the unnamed slice port", () => {
    const endpoints = eligibleEndpoints(
      [slice("a", "web", [{ addresses: ["10.0.0.1"] }], [{ port: 5000 }])],
      {
        port: 80,
      },
    );
    expect(endpoints.map((e) => e.id)).toEqual(["10.0.0.1:5000"]);
  });

  it("keeps zone, node name and pod as labels; IPv6 ids are bracketed", () => {
    const [endpoint] = eligibleEndpoints(
      [
        {
          ...slice("a", "web", [
            {
              addresses: ["FD00::1"],
              zone: "eu-west-1a",
              nodeName: "node-7",
              targetRef: { kind: "Pod", name: "web-5d8f", namespace: "default" },
            },
          ]),
          addressType: "IPv6",
        },
      ],
      port,
    );
    expect(endpoint).toMatchObject({
      id: "[fd00::1]:8080",
      host: "fd00::1",
      port: 8080,
      labels: {
        "topology.kubernetes.io/zone": "eu-west-1a",
        "kubernetes.io/hostname": "node-7",
        pod: "web-5d8f",
      },
    });
  });
});

describe("ServiceTable", () => {
  it("publishes one registry service per TCP port, named NAME:PORT, routed by every name and the ClusterIP", () => {
    const table = new ServiceTable({ namespace: "default", clusterDomain: "cluster.local" });
    table.upsertService(
      service("api", {
        clusterIP: "10.96.0.20",
        ports: [
          { name: "http", port: 8080, protocol: "TCP" },
          { name: "grpc", port: 9000 },
          { name: "dns", port: 53, protocol: "UDP" },
        ],
      }),
    );
    table.upsertSlice(
      slice(
        "api-1",
        "api",
        [{ addresses: ["10.0.0.1"] }],
        [
          { name: "http", port: 80 },
          { name: "grpc", port: 9001 },
        ],
      ),
    );
    const { upserts } = table.flush();
    expect(upserts.map((s) => `${s.name}.${s.namespace}`)).toEqual([
      "api:8080.default",
      "api:9000.default",
    ]);
    expect(upserts[1]?.endpoints.map((e) => e.id)).toEqual(["10.0.0.1:9001"]);
    for (const authority of [
      "api:8080",
      "API.default:8080",
      "api.default.svc:8080",
      "api.default.svc.cluster.local:8080",
      "api.default.svc.cluster.local.:8080",
      "10.96.0.20:8080",
    ]) {
      expect(table.route(authority), authority).toBe("api:8080.default");
    }
    expect(table.route("api")).toBeUndefined();
    expect(table.route("api:53")).toBeUndefined();
    expect(table.route("api:9000")).toBe("api:9000.default");
  });

  it("port 80 answers to a Host without a port; a bare NAME only in the sidecar's own namespace", () => {
    const table = new ServiceTable({ namespace: "default", clusterDomain: "corp.example" });
    table.upsertService(web);
    table.upsertService(service("db", { clusterIP: "None", ports: [{ port: 80 }] }, "data"));
    table.flush();
    expect(table.route("web")).toBe("web:80.default");
    expect(table.route("web:80")).toBe("web:80.default");
    expect(table.route("10.96.0.12")).toBe("web:80.default");
    expect(table.route("web.default.svc.corp.example")).toBe("web:80.default");
    expect(table.route("db")).toBeUndefined();
    expect(table.route("db.data")).toBe("db:80.data");
    expect(table.route("None")).toBeUndefined();
  });

  it("does not publish ExternalName services, and tells once", () => {
    const told: string[] = [];
    const table = new ServiceTable({
      namespace: "default",
      clusterDomain: "cluster.local",
      onExternalName: (ns, name, external) => told.push(`${name}.${ns} -> ${external}`),
    });
    const external = service("ext", {
      type: "ExternalName",
      externalName: "api.example.com",
      ports: [{ port: 443 }],
    });
    table.upsertService(external);
    table.upsertService(external);
    expect(table.flush().upserts).toEqual([]);
    expect(table.route("ext:443")).toBeUndefined();
    expect(told).toEqual(["ext.default -> api.example.com"]);
  });

  it("knows the external name behind every name of an ExternalName service, until it changes type", () => {
    const table = new ServiceTable({ namespace: "default", clusterDomain: "cluster.local" });
    table.upsertService(
      service("ext", { type: "ExternalName", externalName: "api.example.com" }, "shop"),
    );
    table.flush();
    for (const name of ["ext.shop", "EXT.shop.svc:443", "ext.shop.svc.cluster.local."]) {
      expect(table.externalName(name), name).toBe("api.example.com");
    }
    // A bare name resolves in the sidecar's own namespace only.
    expect(table.externalName("ext")).toBeUndefined();
    expect(table.externalName("web.shop")).toBeUndefined();
    table.upsertService(service("ext", { clusterIP: "10.96.0.9", ports: [{ port: 80 }] }, "shop"));
    table.flush();
    expect(table.externalName("ext.shop")).toBeUndefined();
    expect(table.route("ext.shop")).toBe("ext:80.shop");
    table.upsertService(
      service("ext", { type: "ExternalName", externalName: "b.example" }, "shop"),
    );
    table.flush();
    table.deleteService(service("ext", {}, "shop"));
    table.flush();
    expect(table.externalName("ext.shop")).toBeUndefined();
  });

  it("recomputes only the services whose slices or spec changed", () => {
    const table = new ServiceTable({ namespace: "default", clusterDomain: "cluster.local" });
    for (let i = 0; i < 50; i++) {
      table.upsertService(service(`s${i}`, { ports: [{ name: "http", port: 80 }] }));
      table.upsertSlice(slice(`s${i}-a`, `s${i}`, [{ addresses: [`10.0.${i}.1`] }]));
    }
    expect(table.flush().upserts).toHaveLength(50);
    table.upsertSlice(
      slice("s7-a", "s7", [{ addresses: ["10.0.7.1"] }, { addresses: ["10.0.7.2"] }]),
    );
    const { upserts, removals } = table.flush();
    expect(upserts.map((s) => s.name)).toEqual(["s7:80"]);
    expect(upserts[0]?.endpoints).toHaveLength(2);
    expect(removals).toEqual([]);
    expect(table.flush().upserts).toEqual([]);
  });

  it("a slice moved to another service, a slice deleted, a service deleted", () => {
    const table = new ServiceTable({ namespace: "default", clusterDomain: "cluster.local" });
    table.upsertService(service("a", { ports: [{ name: "http", port: 80 }] }));
    table.upsertService(service("b", { ports: [{ name: "http", port: 80 }] }));
    table.upsertSlice(slice("x", "a", [{ addresses: ["10.0.0.1"] }]));
    table.flush();
    table.upsertSlice(slice("x", "b", [{ addresses: ["10.0.0.1"] }]));
    expect(
      table
        .flush()
        .upserts.map((s) => `${s.name}=${s.endpoints.length}`)
        .sort(),
    ).toEqual(["a:80=0", "b:80=1"]);
    table.deleteSlice(slice("x", "b", null));
    expect(table.flush().upserts.map((s) => `${s.name}=${s.endpoints.length}`)).toEqual(["b:80=0"]);
    table.deleteService(service("a", {}));
    expect(table.flush()).toEqual({ upserts: [], removals: ["a:80.default"] });
    expect(table.route("a")).toBeUndefined();
    expect(table.counts).toEqual({ services: 1, endpointslices: 0 });
  });

  it("a replace (relist) drops what the list no longer has, only within its namespace", () => {
    const table = new ServiceTable({ namespace: "default", clusterDomain: "cluster.local" });
    table.upsertService(service("a", { ports: [{ name: "http", port: 80 }] }));
    table.upsertService(service("c", { ports: [{ name: "http", port: 80 }] }, "other"));
    table.upsertSlice(slice("a-1", "a", [{ addresses: ["10.0.0.1"] }]));
    table.upsertSlice(slice("a-2", "a", [{ addresses: ["10.0.0.2"] }]));
    table.upsertSlice(slice("c-1", "c", [{ addresses: ["10.0.1.1"] }], undefined, "other"));
    table.flush();
    table.replaceSlices([slice("a-2", "a", [{ addresses: ["10.0.0.2"] }])], "default");
    expect(ids(table, "a:80.default")).toEqual(["10.0.0.2:8080"]);
    expect(ids(table, "c:80.other")).toEqual(["10.0.1.1:8080"]);
    table.replaceServices([], "other");
    expect(table.all().map((s) => s.name)).toEqual(["a:80"]);
  });
});

describe("ServiceTable under churn: what a slice rewrite leaves behind", () => {
  const api = service("api", {
    clusterIP: "10.96.0.20",
    ports: [
      { name: "http", port: 80 },
      { name: "grpc", port: 9000 },
    ],
  });
  const pods = (notReady: number) =>
    [1, 2, 3].map((i) => ({
      addresses: [`10.0.0.${i}`],
      conditions: { ready: i !== notReady },
      zone: "zone-a",
      targetRef: { kind: "Pod", name: `api-${i}` },
    }));

  function published(changes: { upserts: { name: string; endpoints: readonly unknown[] }[] }) {
    return new Map(changes.upserts.map((s) => [s.name, s.endpoints]));
  }

  it("keeps the endpoints that did not change as the same objects", () => {
    const table = new ServiceTable({ namespace: "default", clusterDomain: "cluster.local" });
    table.upsertService(api);
    table.upsertSlice(slice("api-a", "api", pods(0)));
    const before = published(table.flush()).get("api:80");
    expect(before).toHaveLength(3);
    table.upsertSlice(slice("api-a", "api", pods(2)));
    const after = published(table.flush()).get("api:80");
    expect(after?.map((e) => (e as { id: string }).id)).toEqual(["10.0.0.1:8080", "10.0.0.3:8080"]);
    expect(after?.[0]).toBe(before?.[0]);
    expect(after?.[1]).toBe(before?.[2]);
    expect(Object.isFrozen(after)).toBe(true);
    // Back to ready: the very Endpoint it was before (address, port and labels did not change).
    table.upsertSlice(slice("api-a", "api", pods(0)));
    const again = published(table.flush()).get("api:80");
    expect(again).toHaveLength(3);
    expect(again?.[1]).toBe(before?.[1]);
  });

  it("a label change is a new endpoint object; a rewrite that changes nothing publishes nothing", () => {
    const table = new ServiceTable({ namespace: "default", clusterDomain: "cluster.local" });
    table.upsertService(api);
    table.upsertSlice(slice("api-a", "api", pods(0)));
    const before = published(table.flush()).get("api:80");
    // The same slice again (a new resourceVersion, an annotation): nothing to publish.
    table.upsertSlice(slice("api-a", "api", pods(0)));
    expect(table.flush()).toEqual({ upserts: [], removals: [] });
    const moved = pods(0);
    moved[0] = { ...moved[0]!, zone: "zone-b" };
    table.upsertSlice(slice("api-a", "api", moved));
    const after = published(table.flush()).get("api:80") as readonly { labels: object }[];
    expect(after[0]).not.toBe(before?.[0]);
    expect(after[0]?.labels).toMatchObject({ "topology.kubernetes.io/zone": "zone-b" });
    expect(after[1]).toBe(before?.[1]);
  });

  it("republishes only the ports whose endpoints changed, and every port when the Service changed", () => {
    const table = new ServiceTable({ namespace: "default", clusterDomain: "cluster.local" });
    table.upsertService(api);
    table.upsertSlice(slice("api-http", "api", pods(0), [{ name: "http", port: 8080 }]));
    table.upsertSlice(slice("api-grpc", "api", pods(0), [{ name: "grpc", port: 9001 }]));
    expect([...published(table.flush()).keys()]).toEqual(["api:80", "api:9000"]);
    const routes = table.routesVersion;
    table.upsertSlice(slice("api-grpc", "api", pods(1), [{ name: "grpc", port: 9001 }]));
    expect([...published(table.flush()).keys()]).toEqual(["api:9000"]);
    expect(table.routesVersion).toBe(routes);
    // The Service rewritten (a label, a new resourceVersion): its keys are published again.
    table.upsertService({ ...api, metadata: { ...api.metadata, labels: { team: "x" } } });
    expect([...published(table.flush()).keys()]).toEqual(["api:80", "api:9000"]);
    expect(table.route("api.default:9000")).toBe("api:9000.default");
  });
});
