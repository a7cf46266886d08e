import { mkdtemp, rm } from "node:fs/promises";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
// The built module: it starts dist/bench/faulty-backend.js relative to itself, as a run does.
import { type Backend, HEALTH_PATH, startBackend } from "../dist/bench/backend.js";

/** One GET over a fresh connection: the status and body, or the error that ended it. */
function get(address: string, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`http://${address}${path}`, { agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        body += chunk;
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("the switchable faulty backend", () => {
  let backend: Backend | undefined;
  let dir: string | undefined;

  afterEach(async () => {
    await backend?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    backend = undefined;
    dir = undefined;
  });

  async function start(): Promise<Backend> {
    dir = await mkdtemp(join(tmpdir(), "remora-bench-faulty-"));
    backend = await startBackend({ count: 2, kind: "node", core: null, dir, faulty: 1 });
    return backend;
  }

  it("is healthy until told, then answers everything 503 and counts it, checks apart", async () => {
    const b = await start();
    const bad = b.instances[1]!;
    expect(b.instances[0]!.faulty).toBeUndefined();
    expect(await get(bad.address, "/")).toEqual({ status: 200, body: "hello, world\n" });
    expect(await get(bad.address, HEALTH_PATH)).toMatchObject({ status: 200 });
    // What it served while healthy is not counted.
    expect(await bad.faulty!.counts()).toEqual({ requests: 0, checks: 0 });

    await b.disrupt(1, "503");
    // The fault message and the count request travel in order on the same channel, so this
    // count is taken after the switch.
    expect(await bad.faulty!.counts()).toEqual({ requests: 0, checks: 0 });
    expect(await get(bad.address, "/")).toEqual({ status: 503, body: "unavailable\n" });
    expect(await get(bad.address, "/other")).toMatchObject({ status: 503 });
    expect(await get(bad.address, HEALTH_PATH)).toMatchObject({ status: 503 });
    expect(await bad.faulty!.counts()).toEqual({ requests: 2, checks: 1 });
    // The other instance is untouched.
    expect(await get(b.instances[0]!.address, "/")).toMatchObject({ status: 200 });
  });

  it("hangs: reads the request, never answers, and counts it", async () => {
    const b = await start();
    const bad = b.instances[1]!;
    await b.disrupt(1, "hang");
    expect(await bad.faulty!.counts()).toEqual({ requests: 0, checks: 0 });
    let answered = false;
    const req = request(`http://${bad.address}/`, { agent: false }, () => {
      answered = true;
    });
    req.on("error", () => {});
    req.end();
    // Wait for the backend to have the request (its count says so), then check no answer came.
    let counts = await bad.faulty!.counts();
    while (counts.requests === 0) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      counts = await bad.faulty!.counts();
    }
    expect(counts).toEqual({ requests: 1, checks: 0 });
    // A request on another connection is received as well, and a health check is counted apart.
    const check = request(`http://${bad.address}${HEALTH_PATH}`, { agent: false });
    check.on("error", () => {});
    check.end();
    while (counts.checks === 0) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      counts = await bad.faulty!.counts();
    }
    expect(counts).toEqual({ requests: 1, checks: 1 });
    expect(answered).toBe(false);
    req.destroy();
    check.destroy();
  });

  it("kills any instance, but only the faulty one can answer 503 or hang", async () => {
    const b = await start();
    await expect(b.disrupt(0, "503")).rejects.toThrow(/cannot 503/);
    await expect(b.disrupt(5, "kill")).rejects.toThrow(/no backend instance 5/);
    await b.disrupt(0, "kill");
    expect(b.instances[0]!.process.hasExited).toBe(true);
    await expect(get(b.instances[0]!.address, "/")).rejects.toThrow(/ECONNREFUSED/);
  });
});
