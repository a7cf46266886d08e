/**
 * The proxy's long-lived thread must not load the YAML parser or zod: config validation runs in
 * a worker (proxy/config/isolated.ts), which keeps ~9 MB out of the sidecar's resident memory.
 * Nor node-forge: only `remora ca` and dev mode (`--dev-mtls`) need it, and load it on demand.
 * This walks the static imports of the built CLI and fails if any of them is reachable.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { CLI } from "./harness.js";

const STATIC_IMPORT = /^\s*(?:import|export)\s[^"']*?from\s+["']([^"']+)["'];?\s*$/gm;

function staticGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const visit = (file: string): void => {
    if (files.has(file)) return;
    files.add(file);
    for (const match of readFileSync(file, "utf8").matchAll(STATIC_IMPORT)) {
      const specifier = match[1]!;
      if (specifier.startsWith(".")) visit(resolve(dirname(file), specifier));
      else packages.add(specifier);
    }
  };
  visit(entry);
  return { files, packages };
}

describe("the proxy thread's imports", () => {
  it("never statically reach yaml or zod from the CLI", () => {
    const { files, packages } = staticGraph(CLI);
    expect(files.size).toBeGreaterThan(10);
    expect(packages).toContain("pino");
    expect(
      [...packages].filter(
        (p) => p === "yaml" || p === "zod" || p.startsWith("zod/") || p.startsWith("node-forge"),
      ),
    ).toEqual([]);
    const worker = fileURLToPath(
      new URL("../dist/proxy/config/validate-worker.js", import.meta.url),
    );
    expect(files.has(worker)).toBe(false);
    // The worker itself does load them: the check above would catch a regression.
    expect(staticGraph(worker).packages).toContain("yaml");
    const caCommand = fileURLToPath(new URL("../dist/tls/ca-command.js", import.meta.url));
    expect(files.has(caCommand)).toBe(false);
    expect(staticGraph(caCommand).packages).toContain("node-forge");
    // Dev mode's CA is loaded by the runtime with a dynamic import, only when tls.dev is set.
    // The injector, the webhook and the manifests (yaml, node-forge, an HTTPS server) are loaded
    // by proxy/cli.ts on demand, only for their commands.
    for (const file of ["commands", "inject-yaml", "webhook", "manifests"]) {
      const path = fileURLToPath(new URL(`../dist/deploy/${file}.js`, import.meta.url));
      expect(files.has(path), file).toBe(false);
    }
    const devIdentity = fileURLToPath(new URL("../dist/tls/dev-identity.js", import.meta.url));
    expect(files.has(devIdentity)).toBe(false);
    expect(staticGraph(devIdentity).packages).toContain("node-forge");
  });
});
