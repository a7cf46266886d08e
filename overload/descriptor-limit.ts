import { readFileSync } from "node:fs";

/**
 * The process's soft limit on open file descriptors (RLIMIT_NOFILE) and the connection cap
 * derived from it. Node has no getrlimit (it raises the soft limit to the hard one at startup, so
 * the value here is usually the hard limit); on Linux /proc/self/limits has it. Elsewhere, or if
 * that file cannot be read, DEFAULT_DESCRIPTOR_LIMIT is assumed.
 */
export interface DescriptorLimit {
  /** The soft limit; Infinity when "unlimited". */
  readonly limit: number;
  /** Where it came from: "/proc/self/limits", or "default" when it could not be read. */
  readonly source: string;
}

/** Assumed where the limit cannot be read: the usual soft limit of a Linux or macOS login. */
export const DEFAULT_DESCRIPTOR_LIMIT = 1024;

/**
 * Descriptors kept for the process itself: stdio, the event loop's, the listening sockets (four
 * per listener), admin, probes and metrics, log and access-log files, config and discovery
 * watches, the Kubernetes API connections.
 */
export const DESCRIPTOR_RESERVE = 64;

/** The highest connection cap derived (also the cap when the limit is "unlimited"). */
const MAX_DERIVED = 2 ** 31 - 1;

export function readDescriptorLimit(
  read: () => string = () => readFileSync("/proc/self/limits", "utf8"),
): DescriptorLimit {
  try {
    const limit = parseSoftNofile(read());
    if (limit !== undefined) return { limit, source: "/proc/self/limits" };
  } catch {
    // Not Linux, or /proc not mounted: the default below.
  }
  return { limit: DEFAULT_DESCRIPTOR_LIMIT, source: "default" };
}

/** The soft limit from /proc/self/limits' "Max open files  SOFT  HARD  files" row. */
export function parseSoftNofile(text: string): number | undefined {
  for (const line of text.split("\n")) {
    if (!line.startsWith("Max open files")) continue;
    const soft = line.slice("Max open files".length).trim().split(/\s+/)[0];
    if (soft === "unlimited") return Number.POSITIVE_INFINITY;
    const value = Number(soft);
    return Number.isInteger(value) && value > 0 ? value : undefined;
  }
  return undefined;
}

/**
 * The default `overload.maxDownstreamConnections`: half of what the reserve leaves, because each
 * proxied connection may hold an upstream connection too (a TCP listener always does; an HTTP one
 * while its request is in flight). Never below 1.
 */
export function defaultMaxConnections(limit: number): number {
  if (!Number.isFinite(limit)) return MAX_DERIVED;
  return Math.max(1, Math.min(MAX_DERIVED, Math.floor((limit - DESCRIPTOR_RESERVE) / 2)));
}
