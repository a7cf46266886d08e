import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
// The built module: it finds dist/proxy/cli.js relative to itself, as `npm run bench` runs it.
import {
  nodeRuntime,
  remoraVariantConfig,
  SERVICE_NAME,
  TARGETS,
  targetsWith,
} from "../dist/bench/targets.js";
import { parseConfig } from "../proxy/config/load.js";
import { quickConfig } from "../proxy/config/quick.js";
import { httpBackend, RawClient } from "../test/harness.js";

describe("--compare-node target variants", () => {
  it("adds one variant per Node.js program, right after it", () => {
    const ids = targetsWith([{ path: "/opt/node20/bin/node", version: "20.20.2" }]).map(
      (t) => t.id,
    );
    expect(ids).toEqual([
      "direct",
      "remora",
      "remora@node20",
      "remora-metrics-off",
      "remora-least-request",
      "remora-access-log",
      "remora-access-log-null",
      "remora-mtls",
      "node-http-proxy",
      "node-http-proxy@node20",
      "fastify-http-proxy",
      "fastify-http-proxy@node20",
      "haproxy",
      "nginx",
    ]);
    expect(targetsWith([]).map((t) => t.id)).toEqual(TARGETS.map((t) => t.id));
    // The cost-of-a-feature variants run only when named with --target.
    const optIn = TARGETS.filter((t) => t.optIn === true).map((t) => t.id);
    expect(optIn).toEqual([
      "remora-metrics-off",
      "remora-least-request",
      "remora-access-log",
      "remora-access-log-null",
    ]);
  });

  it("labels a variant with its Node.js version", () => {
    const node = { path: "/opt/node20/bin/node", version: "20.20.2" };
    const labels = targetsWith([node]).map((t) => t.label);
    expect(labels).toContain("remora, Node 20.20.2");
    expect(labels).toContain("node-http-proxy, Node 20.20.2");
  });

  it("asks a binary its version, and refuses one that is not Node.js", () => {
    expect(nodeRuntime(process.execPath).version).toBe(process.versions.node);
    expect(() => nodeRuntime("/bin/true")).toThrow(/not a Node.js binary/);
  });

  it("starts remora with the variant's binary and forwards through it", async () => {
    const backend = await httpBackend((_req, res) => res.end("through the variant"));
    const dir = await mkdtemp(join(tmpdir(), "remora-bench-variant-"));
    const variant = targetsWith([{ path: process.execPath, version: "0.0.1" }]).find(
      (t) => t.id === "remora@node0",
    )!;
    const running = await variant.start({ backends: [backend.address], core: null, dir });
    try {
      const port = Number(new URL(running.url).port);
      const res = await RawClient.exchange(port, `GET / HTTP/1.1\r\nHost: ${SERVICE_NAME}\r\n\r\n`);
      expect(res.body.toString()).toBe("through the variant");
    } finally {
      await running.stop();
      await backend.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("the remora-metrics-off target", () => {
  it("runs quick mode's config with only metrics.enabled changed", () => {
    const backends = ["127.0.0.1:9101", "127.0.0.1:9102"];
    const off = parseConfig(
      remoraVariantConfig(15001, 15000, backends, { metrics: false }),
      "off.yaml",
    );
    const quick = quickConfig({
      listen: 15001,
      adminPort: 15000,
      services: [`${SERVICE_NAME}=${backends.join(",")}`],
    });
    expect(off.metrics.enabled).toBe(false);
    expect(quick.metrics.enabled).toBe(true);
    expect({ ...off, metrics: quick.metrics }).toEqual(quick);
  });
});

describe("the remora-least-request target", () => {
  it("runs quick mode's config with only the balancing policy changed", () => {
    const backends = ["127.0.0.1:9101", "127.0.0.1:9102"];
    const least = parseConfig(
      remoraVariantConfig(15001, 15000, backends, { policy: "least-request" }),
      "least.yaml",
    );
    const quick = quickConfig({
      listen: 15001,
      adminPort: 15000,
      services: [`${SERVICE_NAME}=${backends.join(",")}`],
    });
    expect(least.services[0]!.trafficPolicy.loadBalancer.policy).toBe("least-request");
    const service = {
      ...least.services[0]!,
      trafficPolicy: quick.services[0]!.trafficPolicy,
    };
    expect({ ...least, services: [service] }).toEqual(quick);
  });
});
