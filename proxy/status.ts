import { Agent, request } from "undici";
import type { DashboardSnapshot, LastMinute } from "./dashboard.js";

/**
 * `remora status`: the admin API's /dashboard.json as a table, like `istioctl proxy-config
 * endpoints`, or as JSON for scripts. Loaded only by that command (the proxy never imports undici
 * for it), and it never waits more than `timeoutMs` for an answer.
 */
export interface StatusOptions {
  /** The admin API: a URL, HOST:PORT or a port on 127.0.0.1. */
  readonly admin: string;
  readonly json: boolean;
  readonly timeoutMs: number;
}

export const DEFAULT_ADMIN = "http://127.0.0.1:15000";

/** A failure to show the user as is, without a stack (exit 1). */
export class StatusError extends Error {
  override readonly name = "StatusError";
}

/** `15000`, `host:15000` or a URL, as the base URL of an admin API. */
export function adminBase(text: string): URL {
  const spec = /^\d+$/.test(text)
    ? `http://127.0.0.1:${text}`
    : /^[a-z][a-z0-9+.-]*:\/\//i.test(text)
      ? text
      : `http://${text}`;
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    throw new StatusError(`--admin: expected a URL like ${DEFAULT_ADMIN}, got "${text}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:")
    throw new StatusError(`--admin: expected an http:// or https:// URL, got "${text}"`);
  if (!url.pathname.endsWith("/")) url.pathname += "/";
  url.search = "";
  url.hash = "";
  return url;
}

/** Fetch the snapshot; every way of not getting one becomes a StatusError that says why. */
export async function fetchSnapshot(base: URL, timeoutMs: number): Promise<DashboardSnapshot> {
  const url = new URL("dashboard.json", base);
  const where = base.href.replace(/\/$/, "");
  const agent = new Agent({ connect: { timeout: timeoutMs } });
  try {
    const res = await request(url, {
      dispatcher: agent,
      signal: AbortSignal.timeout(timeoutMs),
      headers: { accept: "application/json" },
    });
    const text = await res.body.text();
    if (res.statusCode !== 200) {
      throw new StatusError(
        `${url.href} answered ${res.statusCode}: is ${where} a remora admin API (remora run, admin.port)?`,
      );
    }
    let snapshot: DashboardSnapshot;
    try {
      snapshot = JSON.parse(text) as DashboardSnapshot;
    } catch {
      throw new StatusError(`${url.href} did not answer JSON: is ${where} a remora admin API?`);
    }
    if (!Array.isArray(snapshot?.services) || typeof snapshot.config?.hash !== "string")
      throw new StatusError(`${url.href} is not remora's dashboard JSON`);
    return snapshot;
  } catch (error) {
    if (error instanceof StatusError) throw error;
    throw new StatusError(unreachable(error, where, timeoutMs));
  } finally {
    await agent.destroy();
  }
}

function unreachable(error: unknown, where: string, timeoutMs: number): string {
  const code = (error as { code?: string; cause?: { code?: string } }).code;
  const name = (error as { name?: string }).name;
  const seconds = `${timeoutMs / 1000}s`;
  if (code === "ECONNREFUSED")
    return `nothing answers at ${where} (connection refused). Is remora running? Its admin API listens on admin.port (default 15000); point --admin at it.`;
  if (name === "TimeoutError" || name === "AbortError" || code === "UND_ERR_CONNECT_TIMEOUT")
    return `no answer from ${where} within ${seconds} (--timeout).`;
  if (code === "ENOTFOUND" || code === "EAI_AGAIN")
    return `cannot resolve the host of ${where} (${code}).`;
  const message = (error as Error).message ?? String(error);
  return `cannot reach ${where}: ${message}${code ? ` (${code})` : ""}`;
}

/** Run the command: print the table (or JSON) and return the exit code. */
export async function runStatus(options: StatusOptions): Promise<number> {
  try {
    const base = adminBase(options.admin);
    const snapshot = await fetchSnapshot(base, options.timeoutMs);
    process.stdout.write(
      options.json
        ? `${JSON.stringify(snapshot, null, 2)}\n`
        : formatStatus(snapshot, base.href.replace(/\/$/, "")),
    );
    return 0;
  } catch (error) {
    if (!(error instanceof StatusError)) throw error;
    process.stderr.write(`remora status: ${error.message}\n`);
    return 1;
  }
}

// ---------------------------------------------------------------- the table

/** The human-readable report: a header about the process, then one row per service and endpoint. */
export function formatStatus(s: DashboardSnapshot, where: string): string {
  const lines: string[] = [];
  const t = s.total;
  const reloads = s.config.reloads;
  lines.push(
    `remora at ${where}: ${s.server.state}, up ${uptime(s.server.uptimeSeconds)}, Node ${s.server.node}, pid ${s.server.pid}`,
    `config ${s.config.hash}, applied ${s.config.appliedAt}; reloads ${reloads.ok} ok, ${reloads.failed} failed${reloads.lastError ? ` (last error: ${reloads.lastError})` : ""}`,
    `last ${Math.round(s.window.spanSeconds)}s: ${rate(t.requestsPerSecond)} req/s, ${percent(t.errorRate)} errors, p50 ${ms(t.p50Ms)}, p99 ${ms(t.p99Ms)}; ${s.downstream.connections} downstream connections`,
    `listeners: ${s.listeners.length === 0 ? "none" : s.listeners.map((l) => `${l.name} (${l.kind}) ${l.address}:${l.port}`).join(", ")}`,
    "",
  );
  const rows: string[][] = [
    ["SERVICE", "ENDPOINT", "HEALTH", "REQ/S", "ERRORS", "P50", "P99", "FLAGS"],
  ];
  for (const service of s.services) {
    const healthy = service.endpoints.filter((e) => e.health.status === "HEALTHY").length;
    rows.push([
      service.name,
      "(all)",
      `${healthy}/${service.endpoints.length}`,
      ...traffic(service.lastMinute),
    ]);
    for (const endpoint of service.endpoints) {
      rows.push([
        service.name,
        endpoint.address,
        endpoint.health.status,
        ...traffic(endpoint.lastMinute),
      ]);
    }
  }
  if (s.services.length === 0) lines.push("no services configured or discovered yet");
  else lines.push(...table(rows));
  return `${lines.join("\n")}\n`;
}

function traffic(m: LastMinute): string[] {
  const flags = Object.entries(m.responseFlags)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([flag, count]) => `${flag}=${count}`)
    .join(",");
  return [rate(m.requestsPerSecond), percent(m.errorRate), ms(m.p50Ms), ms(m.p99Ms), flags || "-"];
}

/** Columns padded to their widest cell; numbers right-aligned (REQ/S..P99). */
function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const right = new Set([3, 4, 5, 6]);
  return rows.map((row) =>
    row
      .map((cell, c) => {
        if (c === row.length - 1) return cell;
        return right.has(c) ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!);
      })
      .join("  ")
      .trimEnd(),
  );
}

function rate(n: number): string {
  return n.toFixed(2);
}

function percent(r: number): string {
  return `${(r * 100).toFixed(1)}%`;
}

function ms(n: number | null): string {
  if (n === null) return "-";
  if (n < 10) return `${n.toFixed(2)}ms`;
  if (n < 1000) return `${n.toFixed(1)}ms`;
  return `${(n / 1000).toFixed(2)}s`;
}

function uptime(seconds: number): string {
  const s = Math.floor(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor(s / 60) % 60}m`;
  return `${Math.floor(s / 86400)}d${Math.floor(s / 3600) % 24}h`;
}
