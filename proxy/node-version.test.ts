import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  ALLOW_UNSUPPORTED_ENV,
  MIN_NODE,
  nodeSupported,
  unsupportedNodeMessage,
} from "./node-version.js";

describe("supported Node.js lines", () => {
  it.each([
    ["20.20.2", false],
    ["v20.20.2", false],
    ["22.11.0", false],
    ["22.12.0", false],
    ["22.18.9", false],
    ["22.19.0", true],
    ["v22.22.1", true],
    ["23.0.0", true],
    ["24.21.0", true],
    ["v26.10.0", true],
  ])("%s supported: %s", (version, expected) => {
    expect(nodeSupported(version)).toBe(expected);
  });

  it("matches engines.node in package.json", () => {
    const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
    expect(pkg.engines.node).toBe(`>=${MIN_NODE.replace(/\.0$/, "")}`);
  });

  it("refuses an old Node with a message naming both versions, unless overridden", () => {
    const message = unsupportedNodeMessage("v20.20.2", {});
    expect(message).toContain("v20.20.2");
    expect(message).toContain(MIN_NODE);
    expect(unsupportedNodeMessage("v20.20.2", { [ALLOW_UNSUPPORTED_ENV]: "1" })).toBeUndefined();
    expect(unsupportedNodeMessage("v24.21.0", {})).toBeUndefined();
  });

  // CI runs the suite once per Node line and names the line in REMORA_EXPECT_NODE: this proves
  // each leg of the matrix really ran on the Node it claims (npm scripts could pick another).
  it("runs on the Node line CI asked for", () => {
    expect(nodeSupported(process.version)).toBe(true);
    const expected = process.env.REMORA_EXPECT_NODE;
    if (expected !== undefined) expect(process.version).toMatch(new RegExp(`^v${expected}\\.`));
  });
});
