/** The kubelet's probe port and /ready across start and drain, in a real process. */

import { once } from "node:events";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { httpBackend, RawClient, type SpawnedRemora, spawnRemora } from "./harness.js";

const running: SpawnedRemora[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) await r.stop("SIGKILL");
});

/** The port logged with "probes listening", or undefined when none was logged. */
function probesPort(remora: SpawnedRemora): number | undefined {
  for (const line of remora.stderr().split("\n")) {
    if (!line.startsWith("{")) continue;
    const record = JSON.parse(line);
    if (record.msg === "probes listening") return record.port;
  }
  return undefined;
}

describe("probe listener", () => {
  it("answers /healthz/ready 200 when ready and 503 once draining; nothing else", async () => {
    const backend = await httpBackend((_req, res) => res.end("a"));
    try {
      const dir = await mkdtemp(join(tmpdir(), "remora-probes-"));
      const config = join(dir, "remora.yaml");
      await writeFile(
        config,
        `admin: { port: 0 }
probes: { port: 0, address: 127.0.0.1 }
metrics: { port: null }
listeners: [{ name: out, kind: outbound, port: 0 }]
services: [{ name: hello, endpoints: [{ address: "${backend.address}" }] }]
`,
      );
      // --drain-time keeps the drained process up long enough to be probed.
      const remora = await spawnRemora(["run", "-c", config, "--drain-time", "30s"]);
      running.push(remora);
      const port = probesPort(remora);
      expect(port).toBeGreaterThan(0);
      const probe = (path = "/healthz/ready", method = "GET") =>
        fetch(`http://127.0.0.1:${port}${path}`, { method });

      const ready = await probe();
      expect(ready.status).toBe(200);
      expect(await ready.text()).toBe("LIVE\n");
      // Only readiness is served here: no admin path leaks onto the probe port.
      for (const path of ["/ready", "/clusters", "/config_dump", "/quitquitquit", "/"]) {
        expect((await probe(path)).status, path).toBe(404);
      }
      expect((await probe("/healthz/ready", "POST")).status).toBe(405);

      const drain = await fetch(`http://127.0.0.1:${remora.adminPort}/drain`, { method: "POST" });
      expect(drain.status).toBe(200);
      const draining = await probe();
      expect(draining.status).toBe(503);
      expect(await draining.text()).toBe("DRAINING\n");
      expect((await fetch(`http://127.0.0.1:${remora.adminPort}/ready`)).status).toBe(503);
    } finally {
      await backend.close();
    }
  });

  it("turns 503 on SIGTERM while an exchange drains, then the process exits 0", async () => {
    let release!: () => void;
    let arrived!: () => void;
    const arrival = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const backend = await httpBackend((_req, res) => {
      release = () => res.end("done");
      arrived();
    });
    try {
      const dir = await mkdtemp(join(tmpdir(), "remora-probes-"));
      const config = join(dir, "remora.yaml");
      await writeFile(
        config,
        `admin: { port: 0 }
probes: { port: 0, address: 127.0.0.1 }
metrics: { port: null }
listeners: [{ name: out, kind: outbound, port: 0 }]
services: [{ name: hello, endpoints: [{ address: "${backend.address}" }] }]
`,
      );
      const remora = await spawnRemora(["run", "-c", config, "--drain-time", "30s"]);
      running.push(remora);
      const port = probesPort(remora)!;
      const probe = () => fetch(`http://127.0.0.1:${port}/healthz/ready`);
      expect((await probe()).status).toBe(200);
      // A request in flight keeps the drain (and so the process) going until it completes.
      const inFlight = RawClient.exchange(
        remora.ports.get("out")!,
        "GET / HTTP/1.1\r\nHost: hello\r\n\r\n",
      );
      await arrival;
      const exited = once(remora.child, "exit");
      remora.child.kill("SIGTERM");
      await vi.waitFor(async () => expect((await probe()).status).toBe(503), { interval: 20 });
      expect(remora.child.exitCode).toBeNull();
      release();
      const res = await inFlight;
      expect(res.body.toString()).toBe("done");
      expect(res.header("connection")).toBe("close");
      expect((await exited)[0]).toBe(0);
    } finally {
      await backend.close();
    }
  });

  it("is off in quick mode (probes.port null)", async () => {
    const remora = await spawnRemora([
      "run",
      "--listen",
      "0",
      "--admin-port",
      "0",
      "--service",
      "hello=127.0.0.1:9",
    ]);
    running.push(remora);
    expect(probesPort(remora)).toBeUndefined();
    expect((await fetch(`http://127.0.0.1:${remora.adminPort}/healthz/ready`)).status).toBe(200);
  });
});
