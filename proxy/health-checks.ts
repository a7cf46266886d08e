import type { ActiveHealthChecker } from "../health/active-checker.js";
import type { CheckerFactory } from "./cluster.js";

/**
 * Active health checks bring undici into the proxy process; most configs have none, so the
 * module is imported only when a service asks for checks (at start or on the reload that adds
 * them), before any cluster is built with them.
 */
let Checker: typeof ActiveHealthChecker | undefined;

export async function loadActiveCheckers(): Promise<void> {
  if (Checker === undefined)
    Checker = (await import("../health/active-checker.js")).ActiveHealthChecker;
}

/** Builds a checker; loadActiveCheckers must have run. */
export const activeCheckers: CheckerFactory = (settings, sink, logger, onPass) => {
  if (Checker === undefined) throw new Error("active health checks used before they were loaded");
  return new Checker(settings, sink, { logger, onPass });
};
