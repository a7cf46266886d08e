/**
 * The load shapes of issue 3, one entry each. A scenario says what to send, how hard, what
 * backend it needs, and anything that happens mid-run (failover kills a backend, or turns it
 * into one that answers 503 or hangs); run.ts applies it to every target in turn.
 */
import { type BackendKind, STREAM_BYTES } from "./backend.js";
import type { ChurnShape } from "./churn.js";
import type { LoadRequest } from "./load.js";
import type { ScenarioFocus } from "./report.js";
import type { SoakShape } from "./soak.js";

export interface ScenarioShape {
  readonly connections: number;
  readonly durationSec: number;
}

export interface ScenarioSpec {
  readonly id: string;
  readonly title: string;
  readonly focus: ScenarioFocus;
  readonly method: "GET" | "POST";
  readonly path: string;
  readonly bodyBytes: number;
  /**
   * Which load client drives it; see LoadRequest.client. Scenarios name autocannon, "stream"
   * or "hold"; run.ts swaps in wrk where loadClientFor says so.
   */
  readonly client: LoadRequest["client"];
  /** Fixed total request rate; absent means as fast as the connections go. */
  readonly overallRate?: number;
  readonly timeoutSec: number;
  readonly defaults: ScenarioShape;
  /** The shorter shape `--quick` uses; scenarios without one are not part of a quick run. */
  readonly quick?: ScenarioShape;
  readonly backendCount: number;
  /** "any": nginx when installed, else the Node.js backend; "node": always the Node.js backend. */
  readonly backend: "any" | BackendKind;
  /** Needs a target that balances several endpoints and survives one dying. */
  readonly needsMultiEndpoint: boolean;
  /**
   * Fresh backends and a fresh target for every measured run, because the run breaks them
   * (failover). Otherwise one target process serves all runs of the scenario.
   */
  readonly freshPerRun: boolean;
  /** Something done to the backend part-way through each measured run. */
  readonly disruption?: Disruption;
  /**
   * Set: the targets run hardened against a failing backend (retries, per-try timeouts,
   * passive and active health checks), each in its own vocabulary with these same figures;
   * see targets.ts. Absent: each target's plain configuration.
   */
  readonly resilience?: Resilience;
  /**
   * Measures only targets that terminate the client's mTLS (the handshake scenario: a plaintext
   * target has no handshake to measure).
   */
  readonly mtlsOnly?: boolean;
  /**
   * Set: the churn scenario. Endpoints come from a fake Kubernetes API server holding this many
   * Services and endpoints (bench/churn.ts), and each measured run has two phases of
   * `durationSec`: quiet, then with `updatesPerSec` EndpointSlice updates a second. Measures only
   * targets with Kubernetes discovery (TargetTraits.kubernetes).
   */
  readonly churn?: ChurnShape;
  /**
   * Set: the soak scenario (bench/soak.ts). One long run per target at a steady rate, endpoints
   * from a discovery file rewritten every `rotateEverySec`, the process sampled throughout.
   * Measures only targets that read a discovery file (TargetTraits.discoveryFile).
   */
  readonly soak?: SoakShape;
}

/**
 * What happens to one backend part-way through a run: "kill" SIGKILLs it (connections refused
 * and reset); "503" makes it answer every request (health checks included) with 503; "hang"
 * makes it accept connections and read requests but never answer. 503 and hang need the
 * switchable Node.js backend (backend.ts), which counts the requests it gets once faulty.
 */
export type Fault = "kill" | "503" | "hang";

export interface Disruption {
  /** When, as a fraction of the measured run (0.5: half-way). */
  readonly atFraction: number;
  /** Which backend instance (0-based). */
  readonly backend: number;
  readonly fault: Fault;
  readonly description: string;
}

/**
 * One resilience setup, written into every target's configuration in that target's own terms,
 * so that a table compares the proxies and not the settings. Durations in ms.
 */
export interface Resilience {
  /** Retries after the first try (2: at most three tries, as Istio's default). */
  readonly retries: number;
  /** Each try's timeout, waiting for the response head: what ends a try on a hung backend. */
  readonly perTryTimeoutMs: number;
  /** Connect timeout per try. */
  readonly connectTimeoutMs: number;
  /** Passive health: this many failures in a row take an endpoint out of rotation. */
  readonly consecutiveErrors: number;
  /** ... for this long (a failing backend stays out for the rest of a run). */
  readonly ejectionMs: number;
  /** Active health checks: GET `path` every `intervalMs`, failing after `timeoutMs`. */
  readonly healthCheck: {
    readonly path: string;
    readonly intervalMs: number;
    readonly timeoutMs: number;
    /** Failed checks in a row that take an endpoint out. */
    readonly fall: number;
    /** Passed checks in a row that bring it back. */
    readonly rise: number;
  };
}

/**
 * The resilience the failover-503 and failover-hang scenarios configure: what a user who
 * expects a backend to fail would set, the same on every target. 1 s per try is far above a
 * healthy answer (under a millisecond here) and short enough that a hung backend costs the
 * client a second, not the 10 s the load generator waits; 5 failures in a row is Istio's
 * consecutive5xxErrors default; checks every second, out after 2 failures and back after 2
 * passes, as the HAProxy servers of the kill scenario are checked.
 */
export const RESILIENCE: Resilience = Object.freeze({
  retries: 2,
  perTryTimeoutMs: 1000,
  connectTimeoutMs: 1000,
  consecutiveErrors: 5,
  ejectionMs: 30_000,
  healthCheck: Object.freeze({
    path: "/healthz",
    intervalMs: 1000,
    timeoutMs: 1000,
    fall: 2,
    rise: 2,
  }),
});

export const SCENARIOS: readonly ScenarioSpec[] = [
  {
    id: "small-get",
    title: "Small GET, keep-alive, saturation",
    focus: "throughput",
    method: "GET",
    path: "/",
    bodyBytes: 0,
    client: "autocannon",
    timeoutSec: 10,
    defaults: { connections: 32, durationSec: 10 },
    quick: { connections: 32, durationSec: 3 },
    backendCount: 1,
    backend: "any",
    needsMultiEndpoint: false,
    freshPerRun: false,
  },
  {
    id: "post-1k",
    title: "1 KiB POST",
    focus: "throughput",
    method: "POST",
    path: "/post",
    bodyBytes: 1024,
    client: "autocannon",
    timeoutSec: 10,
    defaults: { connections: 32, durationSec: 10 },
    backendCount: 1,
    backend: "any",
    needsMultiEndpoint: false,
    freshPerRun: false,
  },
  {
    id: "latency",
    title: "Fixed 1,000 req/s, latency",
    focus: "latency",
    method: "GET",
    path: "/",
    bodyBytes: 0,
    client: "autocannon",
    overallRate: 1000,
    timeoutSec: 10,
    defaults: { connections: 10, durationSec: 10 },
    quick: { connections: 10, durationSec: 3 },
    backendCount: 1,
    backend: "any",
    needsMultiEndpoint: false,
    freshPerRun: false,
  },
  {
    id: "stream-download",
    title: "64 MiB streaming download",
    focus: "bytes",
    method: "GET",
    path: "/download",
    bodyBytes: 0,
    client: "stream",
    timeoutSec: 60,
    defaults: { connections: 2, durationSec: 10 },
    backendCount: 1,
    backend: "any",
    needsMultiEndpoint: false,
    freshPerRun: false,
  },
  {
    id: "stream-upload",
    title: "64 MiB streaming upload",
    focus: "bytes",
    method: "POST",
    path: "/upload",
    bodyBytes: STREAM_BYTES,
    client: "stream",
    timeoutSec: 60,
    defaults: { connections: 2, durationSec: 10 },
    backendCount: 1,
    // nginx's `return 200` answers before reading a large body; the Node.js backend reads it all.
    backend: "node",
    needsMultiEndpoint: false,
    freshPerRun: false,
  },
  {
    id: "conn-1000",
    title: "1,000 concurrent connections",
    focus: "throughput",
    method: "GET",
    path: "/",
    bodyBytes: 0,
    client: "autocannon",
    timeoutSec: 10,
    defaults: { connections: 1000, durationSec: 10 },
    backendCount: 1,
    backend: "any",
    needsMultiEndpoint: false,
    freshPerRun: false,
  },
  {
    id: "conn-1000-open",
    title: "1,000 open keep-alive connections, one request each, then idle",
    focus: "throughput",
    method: "GET",
    path: "/",
    bodyBytes: 0,
    client: "hold",
    timeoutSec: 10,
    defaults: { connections: 1000, durationSec: 10 },
    backendCount: 1,
    backend: "any",
    needsMultiEndpoint: false,
    freshPerRun: false,
  },
  {
    id: "failover",
    title: "Failover: 1 of 3 backends killed mid-run",
    focus: "failover",
    method: "GET",
    path: "/",
    bodyBytes: 0,
    client: "autocannon",
    timeoutSec: 10,
    defaults: { connections: 32, durationSec: 10 },
    backendCount: 3,
    backend: "any",
    needsMultiEndpoint: true,
    freshPerRun: true,
    disruption: {
      atFraction: 0.5,
      backend: 0,
      fault: "kill",
      description: "backend 1 of 3 SIGKILLed half-way",
    },
  },
  {
    id: "failover-503",
    title: "Failover: 1 of 3 backends answers 503 from mid-run",
    focus: "failover",
    method: "GET",
    path: "/",
    bodyBytes: 0,
    client: "autocannon",
    timeoutSec: 10,
    defaults: { connections: 32, durationSec: 10 },
    backendCount: 3,
    backend: "any",
    needsMultiEndpoint: true,
    freshPerRun: true,
    disruption: {
      atFraction: 0.5,
      backend: 0,
      fault: "503",
      description:
        "from half-way, backend 1 of 3 answers every request (and health check) with 503",
    },
    resilience: RESILIENCE,
  },
  {
    id: "failover-hang",
    title: "Failover: 1 of 3 backends hangs from mid-run",
    focus: "failover",
    method: "GET",
    path: "/",
    bodyBytes: 0,
    client: "autocannon",
    timeoutSec: 10,
    defaults: { connections: 32, durationSec: 10 },
    backendCount: 3,
    backend: "any",
    needsMultiEndpoint: true,
    freshPerRun: true,
    disruption: {
      atFraction: 0.5,
      backend: 0,
      fault: "hang",
      description:
        "from half-way, backend 1 of 3 accepts connections and reads requests (and health checks) but never answers",
    },
    resilience: RESILIENCE,
  },
  {
    id: "tls-handshake",
    title: "New mTLS connection per request: TLS handshakes",
    focus: "handshake",
    method: "GET",
    path: "/",
    bodyBytes: 0,
    client: "handshake",
    timeoutSec: 10,
    // Enough connections in flight to keep one core busy with handshakes (~1 ms each with RSA).
    defaults: { connections: 16, durationSec: 10 },
    backendCount: 1,
    backend: "any",
    needsMultiEndpoint: false,
    freshPerRun: false,
    mtlsOnly: true,
  },
  {
    id: "churn",
    title: "Kubernetes endpoint churn: 1,000 Services × 10 endpoints, 500 updates/s",
    focus: "churn",
    method: "GET",
    path: "/",
    bodyBytes: 0,
    client: "autocannon",
    timeoutSec: 10,
    // Per window: every measured run is Q C Q C Q (run.ts --churn-windows), 25 s of load in 5 s
    // windows; short windows let the quiet ones beside a churn window track the machine's drift.
    defaults: { connections: 32, durationSec: 5 },
    backendCount: 1,
    backend: "any",
    needsMultiEndpoint: false,
    // A fresh target per run: an idle remora watching the same API would churn on the proxy core.
    freshPerRun: true,
    churn: { services: 1000, endpointsPerService: 10, updatesPerSec: 500 },
  },
  {
    id: "soak",
    title: "Soak: steady load while endpoints come and go",
    focus: "soak",
    method: "GET",
    path: "/",
    bodyBytes: 0,
    client: "autocannon",
    // Steady, not saturating: drift is read at a constant rate, and the proxy core has room.
    overallRate: 5000,
    timeoutSec: 10,
    defaults: { connections: 32, durationSec: 600 },
    backendCount: 1,
    backend: "any",
    needsMultiEndpoint: false,
    // One long run per target, on a fresh process (run.ts runSoak), whatever --runs says.
    freshPerRun: false,
    // A new endpoint every 5 s: 120 over 10 minutes, none seen twice.
    soak: { hosts: 200, live: 4, rotateEverySec: 5 },
  },
];

/** `--load`: which client drives the saturation scenarios. */
export type LoadChoice = "auto" | "autocannon" | "wrk";

/**
 * Whether wrk can stand in for autocannon: a closed-loop run as fast as the connections go
 * (the saturation scenarios, and churn, whose throughput under churn is compared with quiet).
 * Not the fixed-rate latency scenario (wrk has no rate limit), not failover (its figures
 * are error counts, kept comparable with earlier runs), not the stream/hold clients.
 */
export function wrkCanDrive(spec: ScenarioSpec): boolean {
  return (
    (spec.focus === "throughput" || spec.focus === "churn") &&
    spec.client === "autocannon" &&
    spec.overallRate === undefined &&
    spec.disruption === undefined
  );
}

/**
 * The client that drives `spec` for a `--load` choice: wrk for the saturation scenarios when
 * chosen (or, with "auto", when installed), the scenario's own client otherwise.
 */
export function loadClientFor(
  spec: ScenarioSpec,
  choice: LoadChoice,
  wrkInstalled: boolean,
): LoadRequest["client"] {
  if (!wrkCanDrive(spec) || choice === "autocannon") return spec.client;
  if (choice === "wrk" || wrkInstalled) return "wrk";
  return spec.client;
}

/**
 * The client that drives a target terminating mTLS, in place of `client`, or null when no client
 * of this harness can present a client certificate for it. wrk cannot (wrk 4.1.0 has no option
 * for one), so autocannon (which passes tlsOptions to tls.connect) stands in; the stream and hold
 * clients speak plaintext only.
 */
export function mtlsClientFor(client: LoadRequest["client"]): LoadRequest["client"] | null {
  switch (client) {
    case "wrk":
    case "autocannon":
      return "autocannon";
    case "handshake":
      return "handshake";
    case "stream":
    case "hold":
      return null;
  }
}

/** What a scenario needs to know of a target to tell whether it can measure it. */
export interface TargetTraits {
  readonly id: string;
  readonly multiEndpoint: boolean;
  readonly clientMtls?: boolean;
  /** Can take its endpoints from the Kubernetes API (the churn scenario). */
  readonly kubernetes?: boolean;
  /** Can take its endpoints from a watched discovery file (the soak scenario). */
  readonly discoveryFile?: boolean;
}

/**
 * Why `spec` does not measure `target` (the table's "skipped:" text), or null when it does.
 * `spec.client` is the client chosen for the run (after --load).
 */
export function scenarioSkipReason(spec: ScenarioSpec, target: TargetTraits): string | null {
  if (spec.needsMultiEndpoint && !target.multiEndpoint) {
    if (target.id === "direct") return "nothing to fail over without a proxy";
    return spec.resilience === undefined
      ? "takes a single upstream; no balancing to fail over"
      : "takes a single upstream; no balancing, retries or health checks to configure";
  }
  if (spec.churn !== undefined && target.kubernetes !== true) {
    return target.id === "direct"
      ? "no proxy to discover endpoints"
      : "no Kubernetes discovery to churn";
  }
  if (spec.soak !== undefined && target.discoveryFile !== true) {
    return target.id === "direct" ? "no proxy to soak" : "no discovery file to rotate endpoints in";
  }
  if (spec.mtlsOnly === true && target.clientMtls !== true) {
    return "plaintext to the client: no TLS handshake to measure";
  }
  if (target.clientMtls === true && mtlsClientFor(spec.client) === null) {
    return `the ${spec.client} client cannot present a client certificate`;
  }
  return null;
}

/** Names that select several scenarios at once. */
export const SCENARIO_ALIASES: Readonly<Record<string, readonly string[]>> = {
  stream: ["stream-download", "stream-upload"],
  "failover-all": SCENARIOS.filter((s) => s.focus === "failover").map((s) => s.id),
  // Not the soak: ten minutes per target, asked for by name.
  all: SCENARIOS.filter((s) => s.soak === undefined).map((s) => s.id),
  quick: SCENARIOS.filter((s) => s.quick !== undefined).map((s) => s.id),
  /** Keep-alive throughput and handshakes: what the TLS targets are measured by. */
  tls: ["small-get", "tls-handshake"],
};

/** Resolves `--scenario` values (ids or aliases, comma-separated) to specs, in table order. */
export function selectScenarios(names: readonly string[]): ScenarioSpec[] {
  const wanted = new Set<string>();
  for (const raw of names.flatMap((n) => n.split(","))) {
    const name = raw.trim();
    if (name === "") continue;
    const alias = SCENARIO_ALIASES[name];
    if (alias !== undefined) {
      for (const id of alias) wanted.add(id);
    } else if (SCENARIOS.some((s) => s.id === name)) {
      wanted.add(name);
    } else {
      const known = [...SCENARIOS.map((s) => s.id), ...Object.keys(SCENARIO_ALIASES)].join(", ");
      throw new Error(`unknown scenario "${name}" (known: ${known})`);
    }
  }
  return SCENARIOS.filter((s) => wanted.has(s.id));
}
