import { mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ConfigError } from "../proxy/config/errors.js";
import { FileSource, readServicesFile } from "./file-source.js";
import { ServiceRegistry } from "./registry.js";

const DEBOUNCE_MS = 20;

function servicesYaml(ports: number[]): string {
  const endpoints = ports.map((port) => `      - address: 127.0.0.1:${port}`).join("\n");
  return `services:\n  - name: hello\n    endpoints:\n${endpoints}\n`;
}

describe("FileSource", () => {
  let dir: string;
  let path: string;
  let registry: ServiceRegistry;
  let warn: ReturnType<typeof vi.fn<(obj: object, msg: string) => void>>;
  let source: FileSource | undefined;

  const ports = () => registry.get("hello.default")?.endpoints.map((e) => e.port);
  const start = async () => {
    source = new FileSource(registry, path, { logger: { warn }, debounceMs: DEBOUNCE_MS });
    await source.start();
    return source;
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "remora-file-source-"));
    path = join(dir, "services.yaml");
    registry = new ServiceRegistry();
    warn = vi.fn<(obj: object, msg: string) => void>();
  });

  afterEach(() => {
    source?.stop();
    source = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it("publishes the file at start and is synced", async () => {
    writeFileSync(path, servicesYaml([9101, 9102]));
    const pending = new FileSource(registry, path, { logger: { warn } });
    expect(registry.isSynced()).toBe(false);
    source = pending;
    await pending.start();
    expect(registry.isSynced()).toBe(true);
    expect(ports()).toEqual([9101, 9102]);
    expect(registry.get("hello.default")?.endpoints[0]?.ready).toBe(true);
  });

  it("follows in-place writes", async () => {
    writeFileSync(path, servicesYaml([9101]));
    await start();
    writeFileSync(path, servicesYaml([9101, 9102]));
    await vi.waitFor(() => expect(ports()).toEqual([9101, 9102]));
    writeFileSync(path, "services: []\n");
    await vi.waitFor(() => expect(registry.get("hello.default")).toBeUndefined());
  });

  it("follows editors' write-then-rename saves", async () => {
    writeFileSync(path, servicesYaml([9101]));
    await start();
    for (const port of [9102, 9103]) {
      const temp = join(dir, `.services.yaml.${port}.swp`);
      writeFileSync(temp, servicesYaml([port]));
      renameSync(temp, path);
      await vi.waitFor(() => expect(ports()).toEqual([port]));
    }
  });

  it("keeps the last good endpoints on a bad file, and applies the fix", async () => {
    writeFileSync(path, servicesYaml([9101]));
    await start();
    const events: string[] = [];
    registry.subscribe((_snapshot, key) => events.push(key));

    writeFileSync(path, "services:\n  - name: hello\n   endpoints: [\n");
    await vi.waitFor(() => expect(warn).toHaveBeenCalledTimes(1));
    expect(warn.mock.calls[0]?.[1]).toBe(
      "discovery file rejected; keeping the last good endpoints",
    );
    expect(warn.mock.calls[0]?.[0]).toMatchObject({ path, err: expect.any(ConfigError) });
    expect(ports()).toEqual([9101]);
    expect(registry.isSynced()).toBe(true);

    writeFileSync(path, "services:\n  - name: hello\n    endpoints: [{ address: nope }]\n");
    await vi.waitFor(() => expect(warn).toHaveBeenCalledTimes(2));
    expect(warn.mock.calls[1]?.[0]).toMatchObject({
      err: expect.objectContaining({
        message: expect.stringMatching(
          /services\[0\]\.endpoints\[0\]\.address: invalid address "nope"/,
        ),
      }),
    });
    expect(ports()).toEqual([9101]);
    expect(events).toEqual([]);

    writeFileSync(path, servicesYaml([9102]));
    await vi.waitFor(() => expect(ports()).toEqual([9102]));
    expect(events).toEqual(["hello.default"]);
  });

  it("keeps endpoints while the file is deleted, and picks it up when it returns", async () => {
    writeFileSync(path, servicesYaml([9101]));
    await start();
    unlinkSync(path);
    await vi.waitFor(() => expect(warn).toHaveBeenCalledTimes(1));
    expect(warn.mock.calls[0]?.[1]).toMatch(/unreadable; keeping the last good endpoints/);
    expect(ports()).toEqual([9101]);
    writeFileSync(path, servicesYaml([9101]));
    writeFileSync(join(dir, "unrelated"), "x");
    await vi.waitFor(() => expect(registry.get("hello.default")).toBeDefined());
    writeFileSync(path, servicesYaml([9103]));
    await vi.waitFor(() => expect(ports()).toEqual([9103]));
  });

  it("debounces a burst of writes into one publication", async () => {
    writeFileSync(path, servicesYaml([9101]));
    await start();
    const events: string[] = [];
    registry.subscribe((snapshot) => events.push(String(snapshot?.endpoints.length)));
    for (let n = 2; n <= 6; n++) {
      writeFileSync(path, servicesYaml(Array.from({ length: n }, (_, i) => 9100 + i)));
    }
    await vi.waitFor(() => expect(ports()).toHaveLength(6));
    await sleep(DEBOUNCE_MS * 5);
    expect(events).toEqual(["6"]);
  });

  it("ignores directory events that leave the file unchanged", async () => {
    writeFileSync(path, servicesYaml([9101]));
    await start();
    const version = registry.get("hello.default")?.version;
    writeFileSync(path, servicesYaml([9101]));
    writeFileSync(join(dir, "other.txt"), "x");
    await sleep(DEBOUNCE_MS * 5);
    expect(registry.get("hello.default")?.version).toBe(version);
    expect(warn).not.toHaveBeenCalled();
  });

  it("reports a bad file only once however often the directory changes", async () => {
    writeFileSync(path, servicesYaml([9101]));
    await start();
    writeFileSync(path, "services: nope\n");
    await vi.waitFor(() => expect(warn).toHaveBeenCalledTimes(1));
    writeFileSync(join(dir, "other.txt"), "x");
    writeFileSync(path, "services: nope\n");
    await sleep(DEBOUNCE_MS * 5);
    expect(warn).toHaveBeenCalledTimes(1);
  });

  it("stops following the file after stop(), keeping what it published", async () => {
    writeFileSync(path, servicesYaml([9101]));
    const running = await start();
    running.stop();
    writeFileSync(path, servicesYaml([9102]));
    await sleep(DEBOUNCE_MS * 5);
    expect(ports()).toEqual([9101]);
  });

  it("rejects start() when the file is missing", async () => {
    source = new FileSource(registry, path, { logger: { warn } });
    await expect(source.start()).rejects.toThrow(ConfigError);
    await expect(new FileSource(registry, path).start()).rejects.toThrow(/cannot read: ENOENT/);
    expect(registry.isSynced()).toBe(false);
  });

  it("rejects start() when the directory is missing", async () => {
    source = new FileSource(registry, join(dir, "nope", "services.yaml"), { logger: { warn } });
    await expect(source.start()).rejects.toThrow(ConfigError);
  });

  it("rejects start() when the file is invalid, naming the bad path", async () => {
    writeFileSync(path, "services:\n  - name: Hello\n");
    source = new FileSource(registry, path, { logger: { warn } });
    await expect(source.start()).rejects.toThrow(/services\[0\]\.name: expected a DNS-1123 label/);
    expect(registry.isSynced()).toBe(false);
    expect(registry.keys()).toEqual([]);
  });

  it("startFrom publishes contents read earlier at once, then catches up with the file", async () => {
    writeFileSync(path, servicesYaml([9101]));
    const contents = await readServicesFile(path);
    writeFileSync(path, servicesYaml([9102]));
    source = new FileSource(registry, path, { logger: { warn }, debounceMs: DEBOUNCE_MS });
    source.startFrom(contents);
    expect(registry.isSynced()).toBe(true);
    expect(ports()).toEqual([9101]);
    await vi.waitFor(() => expect(ports()).toEqual([9102]));
  });

  it("readServicesFile rejects a bad file with every issue and publishes nothing", async () => {
    writeFileSync(path, "services:\n  - name: Hello\n    bogus: 1\n");
    const error = await readServicesFile(path).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues.map((i) => i.path)).toEqual([
      "services[0].name",
      "services[0].bogus",
    ]);
  });
});
