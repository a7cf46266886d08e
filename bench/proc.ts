/**
 * What a process tree costs, read from Linux's /proc (proc(5)): CPU time from
 * /proc/PID/stat utime+stime, memory from /proc/PID/status VmRSS/VmHWM. A "tree" is the
 * process and every live descendant, because nginx serves from a worker child and remora may
 * run node:cluster workers; summing the tree charges a target for all of its processes.
 * Everything here degrades to `null` off Linux rather than throwing.
 */
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";

/** The fields of /proc/PID/stat this harness uses, in clock ticks. */
export interface StatFields {
  readonly pid: number;
  readonly ppid: number;
  readonly utime: number;
  readonly stime: number;
  /** CPU of children already waited for; counts processes that came and went mid-run. */
  readonly cutime: number;
  readonly cstime: number;
}

/**
 * Parses one /proc/PID/stat line. The command name (field 2) is in parentheses and may itself
 * contain spaces or ')', so fields are counted from the last ')'.
 */
export function parseStat(text: string): StatFields | null {
  const close = text.lastIndexOf(")");
  if (close < 0) return null;
  const pid = Number.parseInt(text, 10);
  // After ") " come fields 3.. (state, ppid, ...); index 0 here is field 3.
  const rest = text.slice(close + 2).split(" ");
  const field = (n: number): number => Number(rest[n - 3]);
  const ppid = field(4);
  const utime = field(14);
  const stime = field(15);
  const cutime = field(16);
  const cstime = field(17);
  if (![pid, ppid, utime, stime, cutime, cstime].every(Number.isFinite)) return null;
  return { pid, ppid, utime, stime, cutime, cstime };
}

/** Reads a "Name:   1234 kB" line of /proc/PID/status as bytes, or null when absent. */
export function parseStatusBytes(text: string, name: "VmRSS" | "VmHWM"): number | null {
  const at = text.indexOf(`\n${name}:`);
  const start = at < 0 ? (text.startsWith(`${name}:`) ? 0 : -1) : at + 1;
  if (start < 0) return null;
  const kb = Number.parseInt(text.slice(start + name.length + 1).trimStart(), 10);
  return Number.isFinite(kb) ? kb * 1024 : null;
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

let clockTicks: number | undefined;

/** Clock ticks per second (sysconf(_SC_CLK_TCK)); 100 on every mainstream Linux build. */
export function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number.parseInt(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }), 10);
    } catch {
      clockTicks = 100;
    }
    if (!Number.isFinite(clockTicks) || clockTicks <= 0) clockTicks = 100;
  }
  return clockTicks;
}

/** Whether /proc is there to read at all. */
export function procAvailable(): boolean {
  return readText("/proc/self/stat") !== null;
}

/** The pid and all live descendants of `root`, found by scanning every /proc/PID/stat once. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [root];
  }
  for (const entry of entries) {
    const c = entry.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const stat = readText(`/proc/${entry}/stat`);
    const parsed = stat === null ? null : parseStat(stat);
    if (parsed === null) continue;
    const list = children.get(parsed.ppid);
    if (list === undefined) children.set(parsed.ppid, [parsed.pid]);
    else list.push(parsed.pid);
  }
  const tree: number[] = [];
  const queue = [root];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    tree.push(pid);
    for (const child of children.get(pid) ?? []) queue.push(child);
  }
  return tree;
}

/**
 * Total CPU milliseconds used so far by the tree under `root`: each process's own
 * utime+stime plus cutime+cstime of the children it has reaped. Null when the root is gone.
 */
export function treeCpuMs(root: number): number | null {
  let ticks = 0;
  let found = false;
  for (const pid of processTree(root)) {
    const text = readText(`/proc/${pid}/stat`);
    const stat = text === null ? null : parseStat(text);
    if (stat === null) continue;
    found = true;
    ticks += stat.utime + stat.stime + stat.cutime + stat.cstime;
  }
  return found ? (ticks * 1000) / ticksPerSecond() : null;
}

/** CPU milliseconds of one process alone (not its children), or null when it is gone. */
export function processCpuMs(pid: number): number | null {
  const text = readText(`/proc/${pid}/stat`);
  const stat = text === null ? null : parseStat(text);
  return stat === null ? null : ((stat.utime + stat.stime) * 1000) / ticksPerSecond();
}

/**
 * Busy and total clock ticks of one core from /proc/stat ("cpuN user nice system idle
 * iowait irq softirq steal ..."); busy is everything but idle and iowait.
 */
export function parseCoreTicks(
  procStat: string,
  core: number,
): { busy: number; total: number } | null {
  const prefix = `cpu${core} `;
  const line = procStat.split("\n").find((l) => l.startsWith(prefix));
  if (line === undefined) return null;
  // user nice system idle iowait irq softirq steal; guest time is already inside user.
  const fields = line.slice(prefix.length).trim().split(/\s+/).slice(0, 8).map(Number);
  if (fields.length < 4 || !fields.every(Number.isFinite)) return null;
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: total - idle, total };
}

/** Busy milliseconds of one core since boot, or null off Linux. */
export function coreBusyMs(core: number): number | null {
  const text = readText("/proc/stat");
  const ticks = text === null ? null : parseCoreTicks(text, core);
  return ticks === null ? null : (ticks.busy * 1000) / ticksPerSecond();
}

/**
 * How much of a core *other* processes used over a window: the core's busy time minus the
 * CPU of the processes the benchmark put there. On a shared machine this says which runs
 * were disturbed (the proxy can only be as fast as the share of its core it got).
 */
export class CoreContention {
  readonly #core: number;
  readonly #ours: () => number;
  readonly #busyStart: number | null;
  readonly #oursStart: number;
  readonly #wallStart: number;

  /** `ours` returns the CPU ms used so far by everything the harness pinned to `core`. */
  constructor(core: number, ours: () => number) {
    this.#core = core;
    this.#ours = ours;
    this.#busyStart = coreBusyMs(core);
    this.#oursStart = ours();
    this.#wallStart = performance.now();
  }

  /** Fraction (0–1) of the window that other processes kept the core busy, or null. */
  stop(): number | null {
    const busyEnd = coreBusyMs(this.#core);
    const wall = performance.now() - this.#wallStart;
    if (this.#busyStart === null || busyEnd === null || wall <= 0) return null;
    const other = busyEnd - this.#busyStart - (this.#ours() - this.#oursStart);
    return Math.min(1, Math.max(0, other / wall));
  }
}

function treeStatusSum(root: number, name: "VmRSS" | "VmHWM"): number | null {
  let sum = 0;
  let found = false;
  for (const pid of processTree(root)) {
    const text = readText(`/proc/${pid}/status`);
    const bytes = text === null ? null : parseStatusBytes(text, name);
    if (bytes === null) continue;
    found = true;
    sum += bytes;
  }
  return found ? sum : null;
}

/** Resident set size of the whole tree now, in bytes. */
export function treeRssBytes(root: number): number | null {
  return treeStatusSum(root, "VmRSS");
}

/**
 * Resets every process's VmHWM to its current RSS (writing "5" to clear_refs, Linux ≥ 4.0),
 * so a later VmHWM read is the peak of this run rather than of the process's life.
 * Returns false when the kernel or permissions refuse.
 */
export function resetPeakRss(root: number): boolean {
  let ok = true;
  for (const pid of processTree(root)) {
    try {
      writeFileSync(`/proc/${pid}/clear_refs`, "5");
    } catch {
      ok = false;
    }
  }
  return ok;
}

/**
 * Watches a tree's memory while a run is under way: VmRSS sampled on an interval (so short
 * spikes between samples can be missed) combined with the kernel's own VmHWM high-water mark
 * when it could be reset at the start (which misses nothing, but is summed per process).
 * The tree is walked once at the start and once at the end, not on every sample, so the
 * probe itself stays cheap on a machine with many processes.
 */
export class PeakRssProbe {
  readonly #root: number;
  readonly #pids: number[];
  readonly #hwmUsable: boolean;
  readonly #timer: NodeJS.Timeout;
  #peak = 0;

  constructor(root: number, intervalMs = 200) {
    this.#root = root;
    this.#pids = processTree(root);
    this.#hwmUsable = resetPeakRss(root);
    this.#sample();
    this.#timer = setInterval(() => this.#sample(), intervalMs);
    this.#timer.unref();
  }

  #sample(): void {
    let rss = 0;
    for (const pid of this.#pids) {
      const text = readText(`/proc/${pid}/status`);
      rss += (text === null ? null : parseStatusBytes(text, "VmRSS")) ?? 0;
    }
    if (rss > this.#peak) this.#peak = rss;
  }

  /** Stops sampling and returns the peak in bytes, or null when nothing could be read. */
  stop(): number | null {
    clearInterval(this.#timer);
    this.#sample();
    const hwm = this.#hwmUsable ? treeStatusSum(this.#root, "VmHWM") : null;
    const peak = Math.max(this.#peak, hwm ?? 0);
    return peak > 0 ? peak : null;
  }
}
