import { stat } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import type { Balancer, BalancerFactory, LoadBalancerSettings } from "./balancer.js";

/**
 * A user's balancer module (`trafficPolicy.loadBalancer.module`) could not be loaded, or what it
 * exports does not build a Balancer.
 */
export class BalancerModuleError extends Error {
  override readonly name = "BalancerModuleError";
  readonly code = "REMORA_ERR_LB_MODULE";
  readonly path: string;

  constructor(path: string, reason: string) {
    super(`load-balancer module ${path}: ${reason}`);
    this.path = path;
  }
}

interface LoadedModule {
  /** Size and modification time: a different version is imported again. */
  readonly version: string;
  readonly factory: BalancerFactory;
}

/** Loaded modules by absolute path. Node caches ES modules by URL, so versions get their own. */
const loaded = new Map<string, LoadedModule>();

/**
 * Import the module at `path` (absolute) unless this version of it is loaded already, check that
 * it builds a Balancer, and keep its factory for `balancerModule`. Returns the file's version.
 *
 * A module exports its factory as `default` or `createBalancer`: a function taking
 * BalancerOptions and returning a Balancer, or a class whose constructor does.
 */
export async function loadBalancerModule(
  path: string,
  settings: LoadBalancerSettings,
): Promise<string> {
  let version: string;
  try {
    const info = await stat(path);
    version = `${info.size}-${info.mtimeMs}`;
  } catch (error) {
    throw new BalancerModuleError(path, reasonOf(error));
  }
  const known = loaded.get(path);
  if (known?.version === version) {
    check(path, known.factory, settings);
    return version;
  }
  const url = pathToFileURL(path);
  url.searchParams.set("version", version);
  let exports: Record<string, unknown>;
  try {
    exports = (await import(url.href)) as Record<string, unknown>;
  } catch (error) {
    throw new BalancerModuleError(path, `import failed: ${reasonOf(error)}`);
  }
  const factory = factoryOf(path, exports.default ?? exports.createBalancer);
  // Build one now, so a broken module is a config error, not a failure on the first request.
  check(path, factory, settings);
  loaded.set(path, { version, factory });
  return version;
}

/** The factory of a module `loadBalancerModule` loaded, or undefined. */
export function balancerModule(path: string): BalancerFactory | undefined {
  return loaded.get(path)?.factory;
}

function factoryOf(path: string, exported: unknown): BalancerFactory {
  if (typeof exported !== "function") {
    throw new BalancerModuleError(
      path,
      "expected a default export (or `createBalancer`) that is a function or a class building a Balancer",
    );
  }
  const isClass = /^class[\s{]/.test(Function.prototype.toString.call(exported));
  if (isClass) {
    const Class = exported as new (options: Parameters<BalancerFactory>[0]) => Balancer;
    return (options) => new Class(options);
  }
  return exported as BalancerFactory;
}

function check(path: string, factory: BalancerFactory, settings: LoadBalancerSettings): void {
  let balancer: Balancer;
  try {
    balancer = factory({ random: Math.random, clock: () => performance.now(), settings });
  } catch (error) {
    throw new BalancerModuleError(path, `building a balancer threw: ${reasonOf(error)}`);
  }
  const missing = (["update", "pick"] as const).filter(
    (method) => typeof (balancer as unknown as Record<string, unknown>)?.[method] !== "function",
  );
  if (missing.length > 0) {
    throw new BalancerModuleError(
      path,
      `the balancer it builds has no ${missing.join(" or ")} method (see docs/load-balancing.md)`,
    );
  }
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
