import { describe, expect, it } from "vitest";
import { parseConfig } from "../proxy/config/load.js";
import { quickConfig } from "../proxy/config/quick.js";
import { remoraMetricsOffConfig, SERVICE_NAME } from "./targets.js";

describe("the remora-metrics-off target", () => {
  it("runs quick mode's config with only metrics.enabled changed", () => {
    const backends = ["127.0.0.1:9101", "127.0.0.1:9102"];
    const off = parseConfig(remoraMetricsOffConfig(15001, 15000, backends), "off.yaml");
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
