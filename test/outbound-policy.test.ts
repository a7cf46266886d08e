/**
 * outboundTrafficPolicy on a real outbound listener: REGISTRY_ONLY answers 502 NR recorded as
 * BlackHoleCluster; ALLOW_ANY refuses loopback and the proxy's own ports with 502 NR; unset keeps
 * the plain proxy's 404. A successful passthrough needs a non-loopback destination, so it is
 * shown for real in test/netns-interception.test.ts (peer namespace) and here at the unit level.
 */
import { afterEach, describe, expect, it } from "vitest";
import { serviceDefaults } from "../proxy/config/load.js";
import { ERRORS } from "../proxy/errors.js";
import {
  isLoopbackHost,
  OutboundPassthrough,
  passthroughDestination,
  refuseLoopbackLookup,
} from "../proxy/routing/passthrough.js";
import { clusterSettings } from "../proxy/runtime.js";
import {
  type InProcessRemora,
  namedBackend,
  outboundConfig,
  rawRequest,
  startRemora,
} from "./harness.js";

let remora: InProcessRemora | undefined;
afterEach(async () => {
  await remora?.stop();
  remora = undefined;
});

function get(host: string): string {
  return `GET /x HTTP/1.1\r\nHost: ${host}\r\n\r\n`;
}

describe("outboundTrafficPolicy on the outbound listener", () => {
  it("REGISTRY_ONLY: a host that is no mesh service gets 502 NR, logged as BlackHoleCluster", async () => {
    const backend = await namedBackend("hello");
    try {
      remora = await startRemora(
        outboundConfig([backend.address], "outboundTrafficPolicy: { mode: REGISTRY_ONLY }"),
      );
      const port = remora.port();
      const mesh = await rawRequest(port, get("hello"));
      expect(mesh.text).toMatch(/^HTTP\/1\.1 200 /);
      const outside = await rawRequest(port, get("example.com"));
      expect(outside.text).toMatch(/^HTTP\/1\.1 502 /);
      expect(outside.text).toContain("x-remora-response-flags: NR");
      expect(outside.text).toContain(ERRORS.REMORA_ERR_REGISTRY_ONLY.body);
      const record = remora.records.find((r) => r.authority === "example.com");
      expect(record).toMatchObject({ status: 502, flags: "NR", cluster: "BlackHoleCluster" });
    } finally {
      await backend.close();
    }
  });

  it("ALLOW_ANY refuses loopback hosts and the proxy's own ports (the admin API) with 502 NR", async () => {
    remora = await startRemora(outboundConfig(["127.0.0.1:9"], "outboundTrafficPolicy: {}"));
    const port = remora.port();
    const admin = remora.runtime.adminPort;
    for (const host of [
      `127.0.0.1:${admin}`,
      `localhost:${admin}`,
      "127.0.0.2",
      "[::1]:8080",
      "0.0.0.0:8080",
      // Any host, when the port is one of the proxy's own: the pod's address would loop back.
      `198.18.0.1:${admin}`,
      `198.18.0.1:${port}`,
    ]) {
      const reply = await rawRequest(port, get(host));
      expect(reply.text, host).toMatch(/^HTTP\/1\.1 502 /);
      expect(reply.text, host).toContain(ERRORS.REMORA_ERR_PASSTHROUGH_REFUSED.body);
    }
    expect(remora.records.every((r) => r.flags === "NR")).toBe(true);
  });

  it("without outboundTrafficPolicy a plain proxy keeps 404 NR", async () => {
    remora = await startRemora(outboundConfig(["127.0.0.1:9"]));
    const reply = await rawRequest(remora.port(), get("example.com"));
    expect(reply.text).toMatch(/^HTTP\/1\.1 404 /);
  });
});

describe("OutboundPassthrough", () => {
  const settings = clusterSettings(serviceDefaults());

  it("makes one PassthroughCluster destination per authority: IP:port as is, port 80 by default", () => {
    const passthrough = new OutboundPassthrough({
      mode: "ALLOW_ANY",
      settings,
      ownPorts: () => new Set([15001]),
    });
    const ip = passthrough.route("198.18.0.2:8080")!;
    expect(ip.key).toBe("PassthroughCluster");
    expect(ip.endpoints.map((e) => e.id)).toEqual(["198.18.0.2:8080"]);
    expect(passthrough.route("198.18.0.2:8080")).toBe(ip);
    expect(passthrough.route("Example.COM.")!.endpoints.map((e) => e.id)).toEqual([
      "example.com:80",
    ]);
    expect(passthrough.route("[2001:db8::1]")!.endpoints.map((e) => e.id)).toEqual([
      "[2001:db8::1]:80",
    ]);
    expect(passthrough.route("198.18.0.2:15001")).toBeUndefined();
    expect(passthrough.unrouted("198.18.0.2:15001")).toBe("REMORA_ERR_PASSTHROUGH_REFUSED");
    expect(passthrough.unrouted("")).toBe("REMORA_ERR_NO_ROUTE");
    passthrough.close();
  });

  it("keeps a bounded number of destinations", () => {
    const passthrough = new OutboundPassthrough({
      mode: "ALLOW_ANY",
      settings,
      ownPorts: () => new Set(),
      limit: 2,
    });
    passthrough.route("198.18.0.2:1");
    passthrough.route("198.18.0.2:2");
    passthrough.route("198.18.0.2:3");
    expect(passthrough.size).toBe(2);
    passthrough.close();
  });

  it("REGISTRY_ONLY passes nothing through", () => {
    const passthrough = new OutboundPassthrough({
      mode: "REGISTRY_ONLY",
      settings,
      ownPorts: () => new Set(),
    });
    expect(passthrough.route("198.18.0.2:8080")).toBeUndefined();
    expect(passthrough.unrouted("198.18.0.2:8080")).toBe("REMORA_ERR_REGISTRY_ONLY");
  });

  it("parses authorities and recognises loopback spellings", () => {
    expect(passthroughDestination("host:")).toBeUndefined();
    expect(passthroughDestination("a b")).toBeUndefined();
    expect(passthroughDestination("[::1]:99")).toEqual({ host: "::1", port: 99 });
    for (const host of [
      "localhost",
      "api.localhost",
      "127.9.9.9",
      "0.0.0.0",
      "::1",
      "::",
      "::ffff:127.0.0.1",
    ]) {
      expect(isLoopbackHost(host), host).toBe(true);
    }
    for (const host of ["198.18.0.2", "example.com", "2001:db8::1", "::ffff:198.18.0.2"]) {
      expect(isLoopbackHost(host), host).toBe(false);
    }
  });

  it("fails the connect of a name that resolves to loopback", async () => {
    const error = await new Promise<NodeJS.ErrnoException | null>((resolve) =>
      refuseLoopbackLookup("localhost", { all: true }, (err) => resolve(err)),
    );
    expect(error?.code).toBe("REMORA_ERR_PASSTHROUGH_REFUSED");
    expect(error?.message).toMatch(/^passthrough refused: localhost resolves to loopback/);
  });
});
