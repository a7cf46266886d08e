/**
 * wrk as the load client of the saturation scenarios. autocannon (JavaScript, one core)
 * tops out near 39k req/s on the benchmark machine, below the proxies it measures; wrk (C,
 * one thread here) drives the same nginx backend at about 71k req/s, so what it measures is
 * the proxy. It has no fixed-rate mode, so the latency scenario keeps autocannon.
 *
 * The worker runs `wrk -t1 -cN -dSs --latency -s script.lua URL` (inheriting the load core's
 * pinning) and parses the summary it prints. The generated Lua script sets the method and
 * body and, from wrk's `done` hook, prints one extra line with the p99.9 latency, which the
 * standard `--latency` output lacks.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { LoadRequest, LoadResult } from "./load.js";
import type { LatencySummary } from "./report.js";

/** The line the generated script's `done` hook adds, e.g. "  Latency p99.9: 20875us". */
const P999_LABEL = "Latency p99.9:";

/** A time as wrk prints it ("331.00us", "2.40ms", "1.40s") in milliseconds. */
export function parseWrkTime(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(us|ms|s|m|h)$/.exec(text.trim());
  if (m === null) throw new Error(`not a wrk time: "${text}"`);
  const scale = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as string] ?? 1;
  return Number(m[1]) * scale;
}

/** A size as wrk prints it ("512.00B", "7.44KB", "32.77MB"; binary units) in bytes. */
export function parseWrkBytes(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMGTP]?)B$/.exec(text.trim());
  if (m === null) throw new Error(`not a wrk size: "${text}"`);
  return Number(m[1]) * 1024 ** "_KMGTP".indexOf(m[2] || "_");
}

/** The version in `wrk -v` output ("wrk debian/4.1.0-3+b2 [epoll] ..." gives "4.1.0"). */
export function wrkVersion(text: string): string | null {
  return /\bwrk\s+(?:\S*\/)?(\d+(?:\.\d+)+)/.exec(text)?.[1] ?? null;
}

export interface ParseWrkOptions {
  /** Bytes of request body sent per request (uploads count toward bytes moved). */
  readonly requestBodyBytes?: number;
}

const TIME = String.raw`\d+(?:\.\d+)?(?:us|ms|s|m|h)`;

function match(text: string, re: RegExp, what: string): RegExpExecArray {
  const m = re.exec(text);
  if (m === null) throw new Error(`wrk output has no ${what}: ${text.trim().slice(0, 300)}`);
  return m;
}

/**
 * Reduces wrk's printed summary (run with `--latency`) to a run sample without CPU/RSS.
 *
 * - requests/s is wrk's own figure (completed responses of any status over its exact
 *   runtime); completed and duration come from "N requests in T, S read".
 * - bytes: response bytes wrk read (headers included, any status), plus the request body
 *   of each 2xx/3xx response, like fromAutocannon.
 * - latency: p50/p90/p99 from the distribution, mean and max from the thread stats (one
 *   thread, so they are the run's), p99.9 from the script's extra line (max if absent).
 *   wrk records microseconds and applies no coordinated-omission correction, which is
 *   moot at saturation.
 * - errors: wrk's socket errors (connect, read, write, and timeout, which wrk counts for
 *   responses slower than --timeout); non2xx: "Non-2xx or 3xx responses".
 */
export function parseWrkOutput(text: string, options: ParseWrkOptions = {}): LoadResult {
  const summary = match(
    text,
    new RegExp(String.raw`^[ \t]*(\d+) requests in (${TIME}), (\S+) read`, "m"),
    '"N requests in T, S read" line',
  );
  const completed = Number(summary[1]);
  const durationSec = parseWrkTime(summary[2] ?? "") / 1000 || 1;
  const readBytes = parseWrkBytes(summary[3] ?? "");
  const requestsPerSec = Number(
    match(text, /^Requests\/sec:[ \t]*(\d+(?:\.\d+)?)/m, "Requests/sec line")[1],
  );

  const stats = match(
    text,
    new RegExp(String.raw`^[ \t]*Latency[ \t]+(${TIME})[ \t]+(${TIME})[ \t]+(${TIME})`, "m"),
    "Latency thread-stats line",
  );
  const percentiles = new Map<string, number>();
  for (const m of text.matchAll(new RegExp(String.raw`^[ \t]*(\d+)%[ \t]+(${TIME})`, "gm"))) {
    percentiles.set(m[1] ?? "", parseWrkTime(m[2] ?? ""));
  }
  const pick = (p: string): number => {
    const v = percentiles.get(p);
    if (v === undefined) throw new Error(`wrk output has no ${p}% latency (run with --latency)`);
    return v;
  };
  const max = parseWrkTime(stats[3] ?? "");
  const p999 = new RegExp(String.raw`^[ \t]*${P999_LABEL}[ \t]*(${TIME})`, "m").exec(text)?.[1];
  const latency: LatencySummary = {
    p50: pick("50"),
    p90: pick("90"),
    p99: pick("99"),
    p999: p999 === undefined ? max : parseWrkTime(p999),
    max,
    mean: parseWrkTime(stats[1] ?? ""),
  };

  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  const errors = socket === null ? 0 : socket.slice(1, 5).reduce((sum, n) => sum + Number(n), 0);
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0);
  const totalBytes = readBytes + (options.requestBodyBytes ?? 0) * Math.max(0, completed - non2xx);
  return {
    requestsPerSec,
    bytesPerSec: totalBytes / durationSec,
    latency,
    latencySource: "wrk",
    completed,
    non2xx,
    errors,
    totalBytes,
    durationSec,
  };
}

/** "host" -> "Host", "content-type" -> "Content-Type": wrk only recognises "Host" as given. */
function headerName(name: string): string {
  return name
    .split("-")
    .map((w) => (w === "" ? w : `${w[0]?.toUpperCase()}${w.slice(1).toLowerCase()}`))
    .join("-");
}

/** The Lua script for one run: method, body (the worker never sends it over IPC), p99.9. */
export function wrkScript(req: LoadRequest): string {
  const lines = [
    "-- Generated by remora's bench/wrk.ts for one load run.",
    `wrk.method = "${req.method}"`,
  ];
  if (req.bodyBytes > 0) {
    // The same body as the autocannon client sends: that many "b"s.
    lines.push(
      `wrk.body = string.rep("b", ${Math.round(req.bodyBytes)})`,
      'wrk.headers["Content-Type"] = "application/octet-stream"',
    );
  }
  lines.push(
    "function done(summary, latency, requests)",
    `  io.write(string.format("  ${P999_LABEL} %dus\\n", latency:percentile(99.9)))`,
    "end",
    "",
  );
  return lines.join("\n");
}

/** wrk's arguments for one run; whole seconds, as wrk takes no fractions. */
export function wrkArgs(req: LoadRequest, scriptPath: string): string[] {
  const headers = Object.entries(req.headers).flatMap(([k, v]) => ["-H", `${headerName(k)}: ${v}`]);
  return [
    "-t1",
    `-c${Math.max(1, Math.round(req.connections))}`,
    `-d${Math.max(1, Math.ceil(req.durationSec))}s`,
    "--timeout",
    `${Math.max(1, Math.ceil(req.timeoutSec))}s`,
    "--latency",
    "-s",
    scriptPath,
    ...headers,
    `${req.url}${req.path}`,
  ];
}

/** The soft open-files limit of this process (from /proc/self/limits), or null. */
function openFilesLimit(): number | null {
  try {
    const line = readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    const soft = line?.slice("Max open files".length).trim().split(/\s+/)[0];
    return soft === undefined || soft === "unlimited" ? null : Number(soft);
  } catch {
    return null;
  }
}

const running = new Set<ChildProcess>();

/** Kills any wrk still running (the worker is going away). */
export function killRunningWrk(): void {
  for (const child of running) child.kill("SIGKILL");
}

/** Runs wrk once, in this process's cgroup/affinity, and parses its summary. */
export function runWrkLoad(req: LoadRequest): Promise<LoadResult> {
  // wrk keeps one socket per connection, plus a few of its own.
  const needed = req.connections + 32;
  const limit = openFilesLimit();
  if (limit !== null && limit < needed) {
    return Promise.reject(
      new Error(
        `wrk needs about ${needed} open files for ${req.connections} connections, but the limit is ${limit}; raise it (ulimit -n) before npm run bench`,
      ),
    );
  }
  const dir = mkdtempSync(join(tmpdir(), "remora-wrk-"));
  const script = join(dir, "load.lua");
  writeFileSync(script, wrkScript(req));
  return new Promise<LoadResult>((resolve, reject) => {
    const child = spawn("wrk", wrkArgs(req, script), { stdio: ["ignore", "pipe", "pipe"] });
    running.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding("utf8").on("data", (s: string) => {
      stderr = (stderr + s).slice(-2000);
    });
    // wrk stops on its own after -d; this only catches a hung run.
    const watchdog = setTimeout(
      () => child.kill("SIGKILL"),
      (Math.ceil(req.durationSec) + Math.ceil(req.timeoutSec) + 30) * 1000,
    );
    const finish = (err: Error | null): void => {
      clearTimeout(watchdog);
      running.delete(child);
      rmSync(dir, { recursive: true, force: true });
      if (err !== null) {
        reject(err);
        return;
      }
      try {
        resolve(parseWrkOutput(stdout, { requestBodyBytes: req.bodyBytes }));
      } catch (parseErr) {
        reject(parseErr instanceof Error ? parseErr : new Error(String(parseErr)));
      }
    };
    child.once("error", (err) => finish(new Error(`could not run wrk: ${err.message}`)));
    child.once("close", (code, signal) => {
      if (code === 0) finish(null);
      else {
        const why = (stderr || stdout).trim().split("\n").slice(-3).join(" / ");
        finish(new Error(`wrk exited with ${signal ?? `code ${code}`}${why ? `: ${why}` : ""}`));
      }
    });
  });
}
