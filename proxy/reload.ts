/**
 * Applying a new, already validated config to a running proxy: what changed (planReload), and
 * the order in which it is applied (applyReload).
 *
 * Live: `services` (endpoints and traffic policy), `discovery` (of `discovery.kubernetes` only its
 * `trafficPolicy`), `listeners`, `accessLog`,
 * `authorizationPolicies` (the next request is decided by the new policies), `overload` (the
 * cap at the next connection, the heap threshold at the next 1 s sample). Every
 * other top-level key (admin, probes, metrics, workload, and whatever is added later) needs a
 * restart: a change there is logged and the running value kept, so the applied config is always
 * the config in effect.
 */
import type { Authorizer } from "../authz/policy.js";
import type { ServicesFileContents } from "../discovery/file-source.js";
import { redactAt } from "./config/redact.js";
import type { ListenerConfig, RemoraConfig } from "./config/schema.js";
import type { Logger } from "./log.js";
import { configHash, type ReloadStatus } from "./runtime.js";

/** Top-level keys a reload applies; a change to any other key waits for a restart. */
export const LIVE_KEYS: ReadonlySet<string> = new Set([
  "listeners",
  "services",
  "discovery",
  "accessLog",
  "authorizationPolicies",
  "overload",
]);

/** `discovery.kubernetes.trafficPolicy`: discovered Services' default policy; undefined when unset. */
export type DiscoveredTrafficPolicy = NonNullable<
  NonNullable<RemoraConfig["discovery"]>["kubernetes"]
>["trafficPolicy"];

/** A value that differs in the new config but only takes effect after a restart. */
export interface RestartOnlyChange {
  /** Key path, e.g. `admin.port`. */
  readonly key: string;
  readonly running: unknown;
  readonly wanted: unknown;
}

export interface ReloadPlan {
  /** The config that will run: the new one, with every restart-only key at its running value. */
  readonly config: RemoraConfig;
  readonly hash: string;
  /** Same hash as the running config: nothing to apply. */
  readonly unchanged: boolean;
  readonly listeners: {
    readonly added: readonly ListenerConfig[];
    readonly removed: readonly ListenerConfig[];
    /** Same name, different port, address, kind or settings: a new socket, the old one drains. */
    readonly rebound: readonly { readonly from: ListenerConfig; readonly to: ListenerConfig }[];
  };
  /** Service keys (`name.namespace`). */
  readonly services: {
    readonly added: readonly string[];
    readonly removed: readonly string[];
    readonly changed: readonly string[];
  };
  /** The discovery file path before and after, when it changed (undefined = none). */
  readonly discovery: { readonly from?: string; readonly to?: string } | undefined;
  /** The access log's settings changed (path, sample, on/off). */
  readonly accessLog: boolean;
  /** `authorizationPolicies` changed. */
  readonly authorizationPolicies: boolean;
  /** `discovery.kubernetes.trafficPolicy` (discovered Services' default policy) changed. */
  readonly kubernetesTrafficPolicy: boolean;
  readonly restartOnly: readonly RestartOnlyChange[];
}

/** Compare the running config with a validated new one. Pure. */
export function planReload(running: RemoraConfig, wanted: RemoraConfig): ReloadPlan {
  const config = { ...wanted } as Record<string, unknown>;
  const restartOnly: RestartOnlyChange[] = [];
  const before = running as unknown as Record<string, unknown>;
  const keys = new Set([...Object.keys(before), ...Object.keys(config)]);
  for (const key of keys) {
    if (LIVE_KEYS.has(key)) continue;
    diffLeaves(key, before[key], config[key], restartOnly);
    if (before[key] === undefined) delete config[key];
    else config[key] = before[key];
  }
  keepKubernetesDiscovery(running, config, restartOnly);
  const next = config as unknown as RemoraConfig;
  const hash = configHash(next);

  const oldListeners = new Map(running.listeners.map((l) => [l.name, l]));
  const newNames = new Set(next.listeners.map((l) => l.name));
  const added: ListenerConfig[] = [];
  const rebound: { from: ListenerConfig; to: ListenerConfig }[] = [];
  for (const listener of next.listeners) {
    const old = oldListeners.get(listener.name);
    if (old === undefined) added.push(listener);
    else if (!same(old, listener)) rebound.push({ from: old, to: listener });
  }
  const removed = running.listeners.filter((l) => !newNames.has(l.name));

  const oldServices = new Map(running.services.map((s) => [`${s.name}.${s.namespace}`, s]));
  const services = { added: [] as string[], removed: [] as string[], changed: [] as string[] };
  const newKeys = new Set<string>();
  for (const service of next.services) {
    const key = `${service.name}.${service.namespace}`;
    newKeys.add(key);
    const old = oldServices.get(key);
    if (old === undefined) services.added.push(key);
    else if (!same(old, service)) services.changed.push(key);
  }
  for (const key of oldServices.keys()) if (!newKeys.has(key)) services.removed.push(key);

  const from = running.discovery?.file;
  const to = next.discovery?.file;
  return {
    config: next,
    hash,
    unchanged: hash === configHash(running),
    listeners: { added, removed, rebound },
    services,
    discovery: from === to ? undefined : { from, to },
    accessLog: !same(running.accessLog, next.accessLog),
    authorizationPolicies: !same(running.authorizationPolicies, next.authorizationPolicies),
    kubernetesTrafficPolicy: !same(
      running.discovery?.kubernetes?.trafficPolicy,
      next.discovery?.kubernetes?.trafficPolicy,
    ),
    restartOnly,
  };
}

/**
 * `discovery.kubernetes` waits for a restart (its watches and access start once), except its
 * `trafficPolicy`, which the clusters take live while the key stays; the rest of `discovery`
 * (the file) reloads live. Keeps the running value (with the new policy) in `config`. Adding or
 * removing `discovery.kubernetes` as a whole waits for a restart, policy included.
 */
function keepKubernetesDiscovery(
  running: RemoraConfig,
  config: Record<string, unknown>,
  restartOnly: RestartOnlyChange[],
): void {
  const wanted = config.discovery as RemoraConfig["discovery"];
  const before = running.discovery?.kubernetes;
  const after = wanted?.kubernetes;
  if (same(before, after)) return;
  let kept = before;
  if (before === undefined || after === undefined) {
    diffLeaves("discovery.kubernetes", before, after, restartOnly);
  } else {
    const { trafficPolicy: _running, ...watches } = before;
    const { trafficPolicy, ...wantedWatches } = after;
    diffLeaves("discovery.kubernetes", watches, wantedWatches, restartOnly);
    kept = trafficPolicy === undefined ? watches : { ...before, trafficPolicy };
  }
  const file = wanted?.file;
  config.discovery =
    file === undefined && kept === undefined
      ? undefined
      : {
          ...(file === undefined ? {} : { file }),
          ...(kept === undefined ? {} : { kubernetes: kept }),
        };
  if (config.discovery === undefined) delete config.discovery;
}

/** What changed, for the "config reloaded" log line and POST /reload (empty lists left out). */
export function describeChanges(plan: ReloadPlan): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const put = (key: string, names: readonly string[]) => {
    if (names.length > 0) out[key] = names;
  };
  put(
    "listenersAdded",
    plan.listeners.added.map((l) => l.name),
  );
  put(
    "listenersRemoved",
    plan.listeners.removed.map((l) => l.name),
  );
  put(
    "listenersRebound",
    plan.listeners.rebound.map((r) => r.to.name),
  );
  put("servicesAdded", plan.services.added);
  put("servicesRemoved", plan.services.removed);
  put("servicesChanged", plan.services.changed);
  if (plan.discovery !== undefined) {
    out.discoveryFile = { from: plan.discovery.from ?? null, to: plan.discovery.to ?? null };
  }
  if (plan.accessLog) out.accessLog = plan.config.accessLog;
  if (plan.authorizationPolicies) {
    out.authorizationPolicies = plan.config.authorizationPolicies.map((p) => p.name);
  }
  if (plan.kubernetesTrafficPolicy) out.kubernetesTrafficPolicy = true;
  put(
    "needsRestart",
    plan.restartOnly.map((c) => c.key),
  );
  return out;
}

/** The answer to one reload attempt (logged, and returned by POST /reload). */
export interface ReloadOutcome {
  /** applied: the new config runs; unchanged: it already did; failed: the old config still runs; skipped: no attempt. */
  readonly result: "applied" | "unchanged" | "failed" | "skipped";
  /** The hash of the config running afterwards. */
  readonly hash: string;
  readonly changes?: Record<string, unknown>;
  /** Why it failed or was skipped. */
  readonly error?: string;
}

/**
 * What applyReload needs from the running proxy; Runtime implements it. `P` is a bound,
 * already-serving listener not yet registered under its name.
 */
export interface ReloadTarget<P> {
  readonly config: RemoraConfig;
  readonly reloads: ReloadStatus;
  readonly logger: Logger;
  readonly draining: boolean;
  /** The port a running listener is bound to (its configured port may be 0). */
  boundPort(name: string): number | undefined;
  /** Bind a listener's sockets; rejects (EADDRINUSE...) without side effects. */
  bindListener(config: ListenerConfig): Promise<P>;
  /** Close a bound listener that will not be used (the reload failed). */
  discardListener(listener: P): void;
  /** Register a bound listener under its name (admin /listeners, drain, stop). */
  serveListener(listener: P): void;
  /** Stop accepting on a running listener; its connections finish, then it closes. */
  retireListener(name: string): void;
  /** Read and validate a discovery file without publishing it; rejects with ConfigError. */
  readDiscovery(path: string): Promise<ServicesFileContents>;
  /**
   * Switch the access log to new settings: opens the new destination first, throws ConfigError
   * (naming accessLog.path) and keeps the running log when it cannot. The first commit step.
   */
  configureAccessLog(settings: RemoraConfig["accessLog"]): void;
  /**
   * Load the code `services` need before they are built: the user balancer modules they name
   * (lb/module.ts) and, when one asks for them, active health checks; rejects without side
   * effects. True when one of them is new or changed on disk since the running config loaded
   * it, so a reload applies services even when the config text is the same.
   */
  prepareServices(
    services: RemoraConfig["services"],
    discovered?: DiscoveredTrafficPolicy,
  ): Promise<boolean>;
  /** Compile `authorizationPolicies` (authz/compile.ts); undefined = none. May throw. */
  compilePolicies(policies: RemoraConfig["authorizationPolicies"]): Authorizer | undefined;
  /** New requests on inbound listeners are decided by `authorizer` from now on. */
  applyPolicies(authorizer: Authorizer | undefined): void;
  /**
   * Synchronous from here on. `discovered`: `discovery.kubernetes.trafficPolicy`, the policy of
   * discovered Services that `services` does not name.
   */
  applyServices(services: RemoraConfig["services"], discovered?: DiscoveredTrafficPolicy): void;
  /** Stop the current discovery file source (its endpoints withdrawn) and start `path`'s. */
  switchDiscovery(path: string | undefined, contents: ServicesFileContents | undefined): void;
  /** The applied config becomes Runtime.config. */
  setConfig(config: RemoraConfig): void;
}

/**
 * Apply a validated config. Order:
 *  1. everything that can fail, before anything live changes: read the new discovery file, bind
 *     new listeners (and rebound ones on a new port). A failure closes what was bound and leaves
 *     the running config untouched.
 *  2. one synchronous step, so no request sees half a config: static endpoints (one registry
 *     update), authorization policies, discovery source, clusters' traffic policy, listeners
 *     retired and added. Requests
 *     already in flight keep the cluster, pool and listener they started on.
 *  3. a listener rebound on the port its old version just released binds last; if that fails it
 *     is left out of the applied config (so the next reload tries it again) and logged.
 */
export async function applyReload<P>(
  target: ReloadTarget<P>,
  wanted: RemoraConfig,
): Promise<ReloadOutcome> {
  const status = target.reloads;
  const logger = target.logger;
  if (target.draining) {
    logger.warn("config reload skipped: the proxy is draining");
    return { result: "skipped", hash: status.hash, error: "draining" };
  }
  status.lastAttemptMs = Date.now();
  let plan = planReload(target.config, wanted);
  let modulesChanged: boolean;
  try {
    modulesChanged = await target.prepareServices(
      plan.config.services,
      plan.config.discovery?.kubernetes?.trafficPolicy,
    );
  } catch (error) {
    return reloadFailed(target, error);
  }
  if (modulesChanged && plan.unchanged) plan = { ...plan, unchanged: false };
  for (const change of plan.restartOnly) {
    logger.warn(
      { key: change.key, running: change.running, wanted: change.wanted },
      "config change needs a restart; keeping the running value",
    );
  }
  if (plan.unchanged) {
    status.ok++;
    status.lastError = "";
    logger.info({ hash: plan.hash }, "config unchanged; nothing to reload");
    return { result: "unchanged", hash: plan.hash, changes: describeChanges(plan) };
  }

  // 1. Prepare.
  const retiring = [...plan.listeners.removed, ...plan.listeners.rebound.map((r) => r.from)];
  const releasedPorts = new Set(retiring.map((l) => target.boundPort(l.name)));
  const binding = [...plan.listeners.added, ...plan.listeners.rebound.map((r) => r.to)];
  const later = binding.filter((l) => l.port !== 0 && releasedPorts.has(l.port));
  const bound: P[] = [];
  let discovery: ServicesFileContents | undefined;
  let authorizer: Authorizer | undefined;
  try {
    if (plan.authorizationPolicies) {
      authorizer = target.compilePolicies(plan.config.authorizationPolicies);
    }
    if (plan.discovery?.to !== undefined) discovery = await target.readDiscovery(plan.discovery.to);
    for (const listener of binding) {
      if (!later.includes(listener)) bound.push(await target.bindListener(listener));
    }
  } catch (error) {
    for (const listener of bound) target.discardListener(listener);
    return reloadFailed(target, error);
  }

  // 2. Commit. The access log goes first: the one step that can still fail (opening its file),
  // and nothing else has changed when it does.
  if (plan.accessLog) {
    try {
      target.configureAccessLog(plan.config.accessLog);
    } catch (error) {
      for (const listener of bound) target.discardListener(listener);
      return reloadFailed(target, error);
    }
  }
  target.applyServices(plan.config.services, plan.config.discovery?.kubernetes?.trafficPolicy);
  if (plan.authorizationPolicies) target.applyPolicies(authorizer);
  if (plan.discovery !== undefined) target.switchDiscovery(plan.discovery.to, discovery);
  for (const listener of retiring) target.retireListener(listener.name);
  for (const listener of bound) target.serveListener(listener);
  target.setConfig(plan.config);

  // 3. Rebind on released ports.
  const down: string[] = [];
  for (const listener of later) {
    try {
      target.serveListener(await target.bindListener(listener));
    } catch (error) {
      down.push(listener.name);
      logger.error(
        { err: error, listener: listener.name, port: listener.port },
        "listener could not be rebound; it stays down until the next reload",
      );
    }
  }
  let applied = plan.config;
  if (down.length > 0) {
    applied = { ...applied, listeners: applied.listeners.filter((l) => !down.includes(l.name)) };
    target.setConfig(applied);
  }
  const hash = down.length > 0 ? configHash(applied) : plan.hash;
  const changes = describeChanges(plan);
  const previous = status.hash;
  status.hash = hash;
  status.appliedAtMs = Date.now();
  if (down.length > 0) {
    status.failed++;
    status.lastError = `listeners could not be rebound: ${down.join(", ")}`;
    logger.warn({ hash, previous, ...changes, listenersDown: down }, "config reloaded in part");
    return { result: "failed", hash, changes, error: status.lastError };
  }
  status.ok++;
  status.lastError = "";
  logger.info({ hash, previous, ...changes }, "config reloaded");
  return { result: "applied", hash, changes };
}

/** Count and log a refused reload; the running config stays. ConfigError lists every issue. */
export function reloadFailed(
  target: { readonly reloads: ReloadStatus; readonly logger: Logger },
  error: unknown,
): ReloadOutcome {
  const status = target.reloads;
  const message = error instanceof Error ? error.message : String(error);
  status.failed++;
  status.lastAttemptMs = Date.now();
  status.lastError = message;
  const issues = (error as { issues?: unknown }).issues;
  target.logger.error(
    issues === undefined
      ? { err: error }
      : { source: (error as { source?: string }).source, issues },
    `config reload failed; keeping the running config: ${message}`,
  );
  return { result: "failed", hash: status.hash, error: message };
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

/** Every leaf where `a` and `b` differ, descending through mappings (lists compare whole). */
function diffLeaves(path: string, a: unknown, b: unknown, out: RestartOnlyChange[]): void {
  if (isMapping(a) && isMapping(b)) {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      diffLeaves(`${path}.${key}`, a[key], b[key], out);
    }
  } else if (!same(a, b)) {
    out.push({ key: path, running: redactAt(path, a) ?? null, wanted: redactAt(path, b) ?? null });
  }
}

function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}
