import { describe, expect, it } from "vitest";
import {
  parseCoreTicks,
  parseStat,
  parseStatusBytes,
  processTree,
  treeCpuMs,
  treeRssBytes,
} from "./proc.js";

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

describe("parseCoreTicks", () => {
  const stat =
    "cpu  35216 0 24654 176811 223 0 9335 53 0 0\ncpu0 19177 0 10941 87898 60 0 5256 22 7 0\ncpu1 16038 0 13712 88912 163 0 4079 31 0 0\n";
  it("counts all but idle and iowait as busy, without double-counting guest time", () => {
    expect(parseCoreTicks(stat, 0)).toEqual({
      busy: 19177 + 10941 + 5256 + 22,
      total: 19177 + 10941 + 87898 + 60 + 5256 + 22,
    });
    expect(parseCoreTicks(stat, 1)?.busy).toBe(16038 + 13712 + 4079 + 31);
  });
  it("is null for a core that does not exist", () => {
    expect(parseCoreTicks(stat, 2)).toBeNull();
  });
});

describe.runIf(process.platform === "linux")("live /proc", () => {
  it("finds this process and charges it CPU and memory", () => {
    expect(processTree(process.pid)[0]).toBe(process.pid);
    expect(treeCpuMs(process.pid)).toBeGreaterThan(0);
    expect(treeRssBytes(process.pid)).toBeGreaterThan(1024 * 1024);
  });
});
