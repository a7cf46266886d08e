/**
 * The workload this proxy runs beside: Istio's `source_*` labels on outbound traffic and its
 * `destination_*` labels on inbound traffic. Istio reads these from the pod through istio-agent;
 * remora takes them from the config's `workload:` and, where a field is unset, from the
 * Kubernetes downward API environment a sidecar injector sets (POD_NAME, POD_NAMESPACE,
 * SERVICE_ACCOUNT). Whatever is still unknown is "unknown", as in Istio.
 */
import { UNKNOWN } from "./contract.js";

/** The config's `workload:` block (schema.ts); every field optional. */
export interface WorkloadConfig {
  readonly name?: string | undefined;
  readonly namespace?: string | undefined;
  readonly serviceAccount?: string | undefined;
  readonly app?: string | undefined;
  readonly version?: string | undefined;
  readonly cluster?: string | undefined;
}

export interface Workload {
  /** Deployment (or StatefulSet, DaemonSet...) name, e.g. "reviews-v1". */
  readonly name: string;
  readonly namespace: string;
  readonly serviceAccount: string;
  /** The pod's `app` and `version` labels. */
  readonly app: string;
  readonly version: string;
  /** Istio's canonical service (the app, else the workload name) and revision (else "latest"). */
  readonly canonicalService: string;
  readonly canonicalRevision: string;
  /** Istio's cluster id (`global.multiCluster.clusterName`). */
  readonly cluster: string;
}

type Env = Readonly<Record<string, string | undefined>>;

/** Config first, then the downward-API environment, then "unknown". */
export function resolveWorkload(config: WorkloadConfig = {}, env: Env = process.env): Workload {
  const pod = nonEmpty(env.POD_NAME);
  const name = nonEmpty(config.name) ?? (pod === undefined ? undefined : workloadFromPodName(pod));
  const app = nonEmpty(config.app);
  const version = nonEmpty(config.version);
  return {
    name: name ?? UNKNOWN,
    namespace: nonEmpty(config.namespace) ?? nonEmpty(env.POD_NAMESPACE) ?? UNKNOWN,
    serviceAccount: nonEmpty(config.serviceAccount) ?? nonEmpty(env.SERVICE_ACCOUNT) ?? UNKNOWN,
    app: app ?? UNKNOWN,
    version: version ?? UNKNOWN,
    canonicalService: app ?? name ?? UNKNOWN,
    canonicalRevision: version ?? "latest",
    cluster: nonEmpty(config.cluster) ?? UNKNOWN,
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}

/** The characters Kubernetes uses for generated name suffixes (k8s.io/apimachinery rand). */
const SAFE = "[bcdfghjklmnpqrstvwxz2456789]";
/** Deployment pod: NAME-<pod-template-hash>-<5>. */
const DEPLOYMENT_POD = new RegExp(`^(.+)-${SAFE}{6,10}-${SAFE}{5}$`);
/** StatefulSet pod: NAME-<ordinal>. */
const STATEFUL_POD = /^(.+)-\d+$/;
/** DaemonSet, Job or bare ReplicaSet pod: NAME-<5>. */
const GENERATED_POD = new RegExp(`^(.+)-${SAFE}{5}$`);

/**
 * The workload name from a pod name, as Istio gets it from the pod's owner (istio-agent asks the
 * API for the owner reference; without the API remora reads the name's shape): a Deployment's
 * pod "reviews-v1-545db77b95-4tlmw" belongs to "reviews-v1", a StatefulSet's "db-2" to "db", a
 * DaemonSet's "fluentd-7xk2p" to "fluentd"; any other name is its own workload. A name that only
 * looks generated (a segment without vowels, e.g. "my-svc-bdf2k") can be cut too short: set
 * `workload.name` when that matters.
 */
export function workloadFromPodName(pod: string): string {
  const match = DEPLOYMENT_POD.exec(pod) ?? STATEFUL_POD.exec(pod) ?? GENERATED_POD.exec(pod);
  return match?.[1] ?? pod;
}
