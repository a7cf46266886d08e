import { readdirSync, readFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { loadConfigFile, parseServicesFile } from "./load.js";

const EXAMPLES = resolve(dirname(fileURLToPath(import.meta.url)), "../../examples");
const files = readdirSync(EXAMPLES)
  .filter((name) => name.endsWith(".yaml") || name.endsWith(".yml"))
  .map((name) => join(EXAMPLES, name));

/** Files some example config names as its discovery.file are services files, not configs. */
function discoveryFiles(): Set<string> {
  const out = new Set<string>();
  for (const file of files) {
    const text = readFileSync(file, "utf8");
    if (!/^listeners:/m.test(text)) continue;
    const discoveryFile = loadConfigFile(file).discovery?.file;
    if (discoveryFile !== undefined) out.add(discoveryFile);
  }
  return out;
}

describe("examples/", () => {
  it("has the local example and a services file", () => {
    expect(files.map((file) => basename(file))).toEqual(
      expect.arrayContaining(["local.yaml", "services.yaml"]),
    );
  });

  const services = discoveryFiles();
  it.each(files.map((file) => [basename(file), file]))("%s is valid", (_name, file) => {
    if (services.has(file)) {
      expect(parseServicesFile(readFileSync(file, "utf8"), file).length).toBeGreaterThan(0);
    } else {
      const config = loadConfigFile(file);
      expect(config.listeners.length).toBeGreaterThan(0);
      const discoveryFile = config.discovery?.file;
      if (discoveryFile !== undefined) expect(services.has(discoveryFile)).toBe(true);
    }
  });

  it("local.yaml is the documented laptop setup", () => {
    const config = loadConfigFile(join(EXAMPLES, "local.yaml"));
    expect(config.admin.port).toBe(15000);
    expect(config.listeners).toEqual([expect.objectContaining({ kind: "outbound", port: 15001 })]);
    expect(config.services).toEqual([
      expect.objectContaining({
        name: "hello",
        endpoints: [
          expect.objectContaining({ address: "127.0.0.1:9101" }),
          expect.objectContaining({ address: "127.0.0.1:9102" }),
        ],
      }),
    ]);
  });
});
