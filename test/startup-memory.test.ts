/**
 * What loading remora costs at rest. An ESM import of node:http reads its lazy `WebSocket`
 * export and so loads Node's bundled undici (about 14 MB); proxy/node-http.ts avoids that.
 */
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const RUNTIME = fileURLToPath(new URL("../dist/proxy/runtime.js", import.meta.url));

function modulesLoadedBy(script: string): string[] {
  const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
  });
  return JSON.parse(out) as string[];
}

describe("loading remora", () => {
  it("does not load Node's bundled undici (its node:http, admin and probes included)", () => {
    const loaded = modulesLoadedBy(
      `await import(${JSON.stringify(RUNTIME)});
       console.log(JSON.stringify(process.moduleLoadList));`,
    );
    expect(loaded).toContain("NativeModule http");
    expect(loaded.filter((m) => m.includes("undici"))).toEqual([]);
  });

  it("the check can fail: an ESM import of node:http does load it", () => {
    const loaded = modulesLoadedBy(
      `await import("node:http"); console.log(JSON.stringify(process.moduleLoadList));`,
    );
    expect(loaded.filter((m) => m.includes("undici")).length).toBeGreaterThan(0);
  });
});
