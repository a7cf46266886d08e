/**
 * Starting, pinning, probing and stopping the processes a benchmark run needs (backends,
 * proxies, the load generator). Every process gets its own process group so it can be
 * stopped with everything it forked, and every one is remembered so an interrupted run
 * leaves nothing behind.
 */
import {
  type ChildProcess,
  execFileSync,
  type StdioOptions,
  spawn,
  spawnSync,
} from "node:child_process";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { availableParallelism } from "node:os";
import type { ClientTls } from "./tls-material.js";

/** Which core each role runs on; null cores mean "not pinned". */
export interface Pinning {
  readonly proxyCore: number | null;
  readonly loadCore: number | null;
  readonly description: string;
}

function hasTaskset(): boolean {
  try {
    execFileSync("taskset", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * Proxies on core 0, backend and load generator on core 1, when taskset exists and there
 * are two cores or more: every proxy then gets the same single core, so the figures compare
 * per-core efficiency, which is what a sidecar costs.
 */
export function detectPinning(): Pinning {
  const cores = availableParallelism();
  if (!hasTaskset()) {
    return { proxyCore: null, loadCore: null, description: "none (taskset not found)" };
  }
  if (cores < 2) {
    return { proxyCore: null, loadCore: null, description: `none (only ${cores} core available)` };
  }
  return { proxyCore: 0, loadCore: 1, description: "proxy on core 0; backend and load on core 1" };
}

/** Moves an already running process (all its threads) onto one core; false if refused. */
export function pinProcess(pid: number, core: number | null): boolean {
  if (core === null) return false;
  try {
    execFileSync("taskset", ["-a", "-p", "-c", String(core), String(pid)], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const live = new Set<Launched>();

/** A child process started by this harness. */
export class Launched {
  readonly name: string;
  readonly child: ChildProcess;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<void>;
  #output = "";
  #exitCode: number | null | undefined;

  constructor(name: string, child: ChildProcess) {
    this.name = name;
    this.child = child;
    const keep = (chunk: Buffer): void => {
      this.#output = (this.#output + chunk.toString("utf8")).slice(-4000);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    this.exited = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        this.#exitCode = code ?? (signal === null ? null : -1);
        live.delete(this);
        resolve();
      });
      child.once("error", (err) => {
        this.#output += `\n${err.message}`;
        this.#exitCode = -1;
        live.delete(this);
        resolve();
      });
    });
    live.add(this);
  }

  get pid(): number | null {
    return this.child.pid ?? null;
  }

  get hasExited(): boolean {
    return this.#exitCode !== undefined;
  }

  /** The last few kilobytes the process wrote to stdout/stderr, for error messages. */
  get outputTail(): string {
    return this.#output.trim();
  }

  /** Sends a signal to the whole process group. */
  signal(sig: NodeJS.Signals): void {
    const pid = this.child.pid;
    if (pid === undefined || this.hasExited) return;
    try {
      process.kill(-pid, sig);
    } catch {
      try {
        process.kill(pid, sig);
      } catch {
        // Already gone.
      }
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
  async stop(graceMs = 3000): Promise<void> {
    if (this.hasExited) return;
    this.signal("SIGTERM");
    const timer = setTimeout(() => this.signal("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
    // The group may outlive its leader (e.g. cluster workers); make sure nothing is left.
    this.signal("SIGKILL");
  }

  /** Kills the process group at once, as a crash would. */
  async kill(): Promise<void> {
    this.signal("SIGKILL");
    await this.exited;
  }
}

export interface LaunchOptions {
  /** Core to pin to with taskset, or null. */
  readonly core: number | null;
  readonly env?: NodeJS.ProcessEnv;
  readonly cwd?: string;
  /** Adds an IPC channel (for Node.js children). */
  readonly ipc?: boolean;
}

/**
 * Spawns `command args` in its own process group, through `taskset -c CORE` when pinned
 * (taskset execs the command, so the pid is the command's own).
 */
export function launch(
  name: string,
  command: string,
  args: readonly string[],
  options: LaunchOptions,
): Launched {
  const [cmd, argv] =
    options.core === null
      ? [command, [...args]]
      : ["taskset", ["-c", String(options.core), command, ...args]];
  const stdio: StdioOptions = options.ipc
    ? ["ignore", "pipe", "pipe", "ipc"]
    : ["ignore", "pipe", "pipe"];
  const child = spawn(cmd, argv, {
    stdio,
    detached: true,
    env: options.env ?? process.env,
    ...(options.cwd === undefined ? {} : { cwd: options.cwd }),
  });
  return new Launched(name, child);
}

/** Kills everything still running, synchronously (for exit and signal handlers). */
export function killAllLaunched(): void {
  for (const p of live) p.signal("SIGKILL");
}

/** A TCP port that was free a moment ago on 127.0.0.1. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * One GET over a fresh connection; resolves with the status code, rejects on error. With `tls`
 * (an https URL), it presents that client certificate and checks the server's chain against
 * the trust bundle, not its name (a mesh workload certificate names a SPIFFE ID).
 */
export function httpStatus(
  url: string,
  headers: Record<string, string> = {},
  timeoutMs = 2000,
  tls?: ClientTls,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const send = tls === undefined ? request : httpsRequest;
    const secure =
      tls === undefined
        ? {}
        : {
            cert: readFileSync(tls.certFile),
            key: readFileSync(tls.keyFile),
            ca: readFileSync(tls.caFile),
            checkServerIdentity: () => undefined,
          };
    const req = send(
      url,
      { method: "GET", headers, agent: false, timeout: timeoutMs, ...secure },
      (res) => {
        res.resume();
        res.once("end", () => resolve(res.statusCode ?? 0));
        res.once("error", reject);
      },
    );
    req.once("timeout", () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.once("error", reject);
    req.end();
  });
}

export class NotReadyError extends Error {
  override readonly name = "NotReadyError";
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `url` until it answers `expect`, the process exits, or `timeoutMs` passes; the error
 * names what was last seen and the tail of the process's output.
 */
export async function waitForHttp(
  proc: Launched | null,
  url: string,
  {
    timeoutMs = 10_000,
    expect = 200,
    headers = {},
    tls,
  }: {
    timeoutMs?: number;
    expect?: number;
    headers?: Record<string, string>;
    /** Speak mTLS with this client certificate (an https URL). */
    tls?: ClientTls;
  } = {},
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "no answer";
  while (Date.now() < deadline) {
    if (proc?.hasExited) {
      throw new NotReadyError(`${proc.name} exited before it was ready${tailOf(proc)}`);
    }
    try {
      const status = await httpStatus(url, headers, 1000, tls);
      if (status === expect) return;
      last = `HTTP ${status}`;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await sleep(100);
  }
  throw new NotReadyError(
    `${proc?.name ?? url} not ready within ${timeoutMs / 1000} s (GET ${url}: ${last})${proc ? tailOf(proc) : ""}`,
  );
}

function tailOf(proc: Launched): string {
  const tail = proc.outputTail.split("\n").slice(-3).join(" / ");
  return tail ? `: ${tail}` : "";
}

/**
 * Runs `cmd args` and returns stdout and stderr together (nginx -v prints to stderr), or null
 * when the command is not on PATH.
 */
export function commandText(cmd: string, args: readonly string[]): string | null {
  const result = spawnSync(cmd, args, {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
    timeout: 10_000,
  });
  if (result.error !== undefined) return null;
  return `${result.stdout}${result.stderr}`;
}
