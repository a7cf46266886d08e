/**
 * remora's memory settings live in two places: the CLI's first line (how `remora` and the
 * benchmark start it) and deploy/Dockerfile's runtime stage (how a sidecar starts it). They
 * must agree, and Node must accept them.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { remoraLaunch } from "../bench/targets.js";

const root = (path: string) => fileURLToPath(new URL(`../${path}`, import.meta.url));
const dockerfile = readFileSync(root("deploy/Dockerfile"), "utf8");

/** The instructions of the Dockerfile stage named `name`. */
function stage(name: string): string[] {
  const stages = dockerfile.split(/^FROM /m).slice(1);
  const found = stages.find((s) => s.split("\n", 1)[0]!.endsWith(` AS ${name}`));
  if (found === undefined) throw new Error(`no stage ${name}`);
  return found.split("\n").filter((line) => line !== "" && !line.startsWith("#"));
}

describe("memory settings", () => {
  it("the CLI's first line sets them, as the benchmark reads it", () => {
    const { env, flags } = remoraLaunch();
    expect(env.MALLOC_ARENA_MAX).toBe("2");
    expect(flags).toContain("--max-semi-space-size=2");
    expect(flags).toContain("--heap-growing-percent=10");
  });

  it("the runtime image sets the same environment and Node.js flags", () => {
    const { env, flags } = remoraLaunch();
    const runtime = stage("runtime");
    for (const [name, value] of Object.entries(env))
      expect(runtime).toContain(`ENV ${name}=${value}`);
    const entrypoint = runtime.find((line) => line.startsWith("ENTRYPOINT "));
    expect(JSON.parse(entrypoint!.slice("ENTRYPOINT ".length))).toEqual([
      "/nodejs/bin/node",
      ...flags,
      "/app/dist/proxy/cli.js",
    ]);
  });

  it("Node.js accepts the flags and applies the environment", () => {
    const { env, flags } = remoraLaunch();
    const out = execFileSync(
      process.execPath,
      [...flags, "-e", "console.log(process.env.MALLOC_ARENA_MAX)"],
      { env: { ...process.env, ...env }, encoding: "utf8" },
    );
    expect(out.trim()).toBe("2");
  });

  it("the image's build stage copies every source folder the build compiles", () => {
    const copied = stage("build")
      .filter((line) => line.startsWith("COPY "))
      .map((line) => line.split(/\s+/)[1]);
    const compiled = readdirSync(root("dist"), { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
    expect(compiled.length).toBeGreaterThan(5);
    for (const folder of compiled) expect(copied).toContain(folder);
  });
});
