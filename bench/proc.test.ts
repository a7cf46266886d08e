import { describe, expect, it } from "vitest";
import { parseStat, parseStatusBytes, processTree, treeCpuMs, treeRssBytes } from "./proc.js";

describe("parseStat", () => {
  it("counts fields from the last ')' so odd command names parse", () => {
    const line =
      "4242 (node) worker (x)) S 4200 4242 4200 0 -1 4194560 1000 0 0 0 1234 567 89 10 20 0 11 0 36311 3133440 351";
    expect(parseStat(line)).toEqual({
      pid: 4242,
      ppid: 4200,
      utime: 1234,
      stime: 567,
      cutime: 89,
      cstime: 10,
    });
  });

  it("rejects text that is not a stat line", () => {
    expect(parseStat("garbage")).toBeNull();
  });
});

describe("parseStatusBytes", () => {
  const status = "Name:\tnginx\nVmPeak:\t  20000 kB\nVmHWM:\t    2116 kB\nVmRSS:\t    1800 kB\n";
  it("reads kB fields as bytes", () => {
    expect(parseStatusBytes(status, "VmHWM")).toBe(2116 * 1024);
    expect(parseStatusBytes(status, "VmRSS")).toBe(1800 * 1024);
  });
  it("is null when the field is absent (kernel threads have no VmRSS)", () => {
    expect(parseStatusBytes("Name:\tkthreadd\n", "VmRSS")).toBeNull();
  });
});

describe.runIf(process.platform === "linux")("live /proc", () => {
  it("finds this process and charges it CPU and memory", () => {
    expect(processTree(process.pid)[0]).toBe(process.pid);
    expect(treeCpuMs(process.pid)).toBeGreaterThan(0);
    expect(treeRssBytes(process.pid)).toBeGreaterThan(1024 * 1024);
  });
});
