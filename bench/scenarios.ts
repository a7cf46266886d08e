/**
 * The load shapes of issue 3, one entry each. A scenario says what to send, how hard, what
 * backend it needs, and anything that happens mid-run (failover kills a backend); run.ts
 * applies it to every target in turn.
 */
import { type BackendKind, STREAM_BYTES } from "./backend.js";
import type { LoadRequest } from "./load.js";
import type { ScenarioFocus } from "./report.js";

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
  readonly disruption?: {
    readonly atFraction: number;
    readonly killBackend: number;
    readonly description: string;
  };
}

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
      killBackend: 0,
      description: "backend 1 of 3 SIGKILLed half-way",
    },
  },
];

/** `--load`: which client drives the saturation scenarios. */
export type LoadChoice = "auto" | "autocannon" | "wrk";

/**
 * Whether wrk can stand in for autocannon: a closed-loop run as fast as the connections go.
 * Not the fixed-rate latency scenario (wrk has no rate limit), not failover (its figures
 * are error counts, kept comparable with earlier runs), not the stream/hold clients.
 */
export function wrkCanDrive(spec: ScenarioSpec): boolean {
  return (
    spec.focus === "throughput" &&
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

/** Names that select several scenarios at once. */
export const SCENARIO_ALIASES: Readonly<Record<string, readonly string[]>> = {
  stream: ["stream-download", "stream-upload"],
  all: SCENARIOS.map((s) => s.id),
  quick: SCENARIOS.filter((s) => s.quick !== undefined).map((s) => s.id),
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
