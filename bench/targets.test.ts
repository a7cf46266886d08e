import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { RESILIENCE } from "../dist/bench/scenarios.js";
// The built module: it finds dist/proxy/cli.js relative to itself, as `npm run bench` runs it.
import {
  configDuration,
  haproxyConfig,
  nginxProxyConfig,
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
      "remora-tls",
      "remora-mtls",
      "node-http-proxy",
      "node-http-proxy@node20",
      "fastify-http-proxy",
      "fastify-http-proxy@node20",
      "haproxy",
      "haproxy-tls",
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

/** Whether `cmd` runs here (HAProxy and nginx are optional peers). */
function installed(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: "ignore" }).error === undefined;
}

describe("targets hardened for a failing backend (failover-503, failover-hang)", () => {
  const backends = ["127.0.0.1:9101", "127.0.0.1:9102", "127.0.0.1:9103"];

  it("writes durations as the configs read them", () => {
    expect(configDuration(1000)).toBe("1s");
    expect(configDuration(30_000)).toBe("30s");
    expect(configDuration(250)).toBe("250ms");
  });

  it("remora: quick mode's config plus retries, outlier detection and active checks", () => {
    const hard = parseConfig(
      remoraVariantConfig(15001, 15000, backends, { resilience: RESILIENCE }),
      "hard.yaml",
    );
    const service = hard.services[0]!;
    expect(service.retries).toMatchObject({
      attempts: 2,
      perTryTimeout: 1000,
      retryOn: "connect-failure,reset,5xx",
    });
    expect(service.trafficPolicy.outlierDetection).toMatchObject({
      mode: "consecutive",
      consecutiveErrors: 5,
      baseEjectionTimeMs: 30_000,
      // Istio's 10% of three endpoints: still one may go.
      maxEjectionPercent: 10,
    });
    expect(service.trafficPolicy.healthCheck).toMatchObject({
      path: "/healthz",
      intervalMs: 1000,
      timeoutMs: 1000,
      unhealthyThreshold: 2,
      healthyThreshold: 2,
      tcp: false,
    });
    expect(service.trafficPolicy.connectionPool.tcp.connectTimeout).toBe(1000);
    // Nothing else differs from what `remora run --service` builds.
    const quick = quickConfig({
      listen: 15001,
      adminPort: 15000,
      services: [`${SERVICE_NAME}=${backends.join(",")}`],
    });
    const plain = quick.services[0]!;
    const { outlierDetection: _od, healthCheck: _hc, ...policy } = service.trafficPolicy;
    const pool = policy.connectionPool;
    expect({
      ...policy,
      connectionPool: {
        ...pool,
        tcp: { ...pool.tcp, connectTimeout: plain.trafficPolicy.connectionPool.tcp.connectTimeout },
      },
    }).toEqual(plain.trafficPolicy);
    expect({
      ...hard,
      services: [{ ...service, retries: plain.retries, trafficPolicy: plain.trafficPolicy }],
    }).toEqual(quick);
  });

  it("remora: keeps a variant's own change and its access log alongside", () => {
    const hard = parseConfig(
      remoraVariantConfig(15001, 15000, backends, {
        resilience: RESILIENCE,
        policy: "least-request",
        accessLog: "/dev/null",
      }),
      "hard.yaml",
    );
    expect(hard.services[0]!.trafficPolicy.loadBalancer.policy).toBe("least-request");
    expect(hard.services[0]!.trafficPolicy.healthCheck?.path).toBe("/healthz");
    expect(hard.accessLog).toMatchObject({ enabled: true, path: "/dev/null" });
  });

  it("HAProxy: the kill scenario's config is unchanged", () => {
    expect(haproxyConfig(8080, backends)).toBe(`# Generated by remora's bench/targets.ts.
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  option http-keep-alive
  option redispatch
  retries 2
  retry-on conn-failure empty-response
  timeout connect 2s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
frontend fe
  bind 127.0.0.1:8080
  default_backend be
backend be
  balance roundrobin
  server s0 127.0.0.1:9101 check inter 1s fall 2 rise 2
  server s1 127.0.0.1:9102 check inter 1s fall 2 rise 2
  server s2 127.0.0.1:9103 check inter 1s fall 2 rise 2
`);
    expect(haproxyConfig(8080, [backends[0]!])).toContain("  server s0 127.0.0.1:9101\n");
  });

  it("HAProxy: L7 retries on other servers, a server timeout per try, passive and active checks", () => {
    const conf = haproxyConfig(8080, backends, RESILIENCE);
    for (const line of [
      "  option redispatch 1\n",
      "  retries 2\n",
      "  retry-on all-retryable-errors\n",
      "  timeout connect 1s\n",
      "  timeout server 1s\n",
      "  timeout check 1s\n",
      "  option httpchk GET /healthz\n",
      "  http-check expect status 200\n",
      "  server s2 127.0.0.1:9103 check inter 1s fall 2 rise 2 observe layer7 error-limit 5 on-error mark-down\n",
    ]) {
      expect(conf).toContain(line);
    }
    expect(conf).not.toContain("timeout server 60s");
  });

  it.skipIf(!installed("haproxy", ["-v"]))(
    "HAProxy: the installed version accepts both",
    async () => {
      const dir = await mkdtemp(join(tmpdir(), "remora-bench-haproxy-"));
      try {
        for (const [name, text] of [
          ["plain.cfg", haproxyConfig(8080, backends)],
          ["hard.cfg", haproxyConfig(8080, backends, RESILIENCE)],
        ] as const) {
          await writeFile(join(dir, name), text);
          const check = spawnSync("haproxy", ["-c", "-f", join(dir, name)], { encoding: "utf8" });
          expect(check.status, `${name}: ${check.stdout}${check.stderr}`).toBe(0);
        }
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    },
  );

  it("nginx: the kill scenario's config is unchanged", () => {
    const conf = nginxProxyConfig("/d", 8080, backends);
    expect(conf).toContain("    server 127.0.0.1:9101 max_fails=1 fail_timeout=10s;\n");
    expect(conf).toContain(
      '      proxy_set_header Connection "";\n      proxy_next_upstream error timeout;\n      client_max_body_size 0;\n',
    );
    expect(conf).not.toMatch(/proxy_read_timeout|proxy_next_upstream_tries|http_503/);
  });

  it("nginx: next upstream on errors, timeouts and 5xx, a read timeout per try, max_fails", () => {
    const conf = nginxProxyConfig("/d", 8080, backends, RESILIENCE);
    for (const line of [
      "    server 127.0.0.1:9103 max_fails=1 fail_timeout=30s;\n",
      "      proxy_next_upstream error timeout http_500 http_502 http_503 http_504;\n",
      "      proxy_next_upstream_tries 3;\n",
      "      proxy_connect_timeout 1s;\n",
      "      proxy_read_timeout 1s;\n",
    ]) {
      expect(conf).toContain(line);
    }
  });

  it.skipIf(!installed("nginx", ["-v"]))("nginx: the installed version accepts both", async () => {
    const dir = await mkdtemp(join(tmpdir(), "remora-bench-nginx-"));
    try {
      for (const [name, resilience] of [
        ["plain", undefined],
        ["hard", RESILIENCE],
      ] as const) {
        const own = join(dir, name);
        await mkdir(own);
        const conf = join(own, "nginx.conf");
        await writeFile(conf, nginxProxyConfig(own, 8080, backends, resilience));
        const check = spawnSync(
          "nginx",
          ["-t", "-p", own, "-c", conf, "-e", join(own, "error.log")],
          {
            encoding: "utf8",
          },
        );
        expect(check.status, `${name}: ${check.stdout}${check.stderr}`).toBe(0);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("starts remora with that config: a 500 is retried on another endpoint", async () => {
    // Quick mode's defaults (Istio's retryOn) would pass this 500 on; "5xx" retries it.
    const failing = await httpBackend((_req, res) => {
      res.statusCode = 500;
      res.end("failing");
    });
    const healthy = await httpBackend((_req, res) => res.end("healthy"));
    const dir = await mkdtemp(join(tmpdir(), "remora-bench-hard-"));
    const remora = TARGETS.find((t) => t.id === "remora")!;
    const running = await remora.start({
      backends: [failing.address, healthy.address],
      core: null,
      dir,
      resilience: RESILIENCE,
    });
    try {
      const port = Number(new URL(running.url).port);
      for (let i = 0; i < 4; i++) {
        const res = await RawClient.exchange(
          port,
          `GET / HTTP/1.1\r\nHost: ${SERVICE_NAME}\r\nConnection: close\r\n\r\n`,
        );
        expect(res.body.toString()).toBe("healthy");
      }
    } finally {
      await running.stop();
      await failing.close();
      await healthy.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
