/**
 * The config file's schema: the one place its shape, limits and defaults are written down. Types
 * are derived from it. Names follow Istio's DestinationRule (trafficPolicy, loadBalancer,
 * connectionPool, outlierDetection, subsets) and VirtualService (timeout, retries, routes)
 * vocabulary so Istio users can read a config without a manual. The balancing and routing keys
 * are in traffic-schema.ts, the resilience keys in resilience-schema.ts, the field helpers all
 * three share in fields.ts.
 */
import * as z from "zod";
import {
  type DevIdentitySettings,
  defaultStateDir,
  devIdentityPaths,
} from "../../tls/dev-state.js";
import {
  DEFAULT_TRUST_DOMAIN,
  namespaceProblem,
  serviceAccountProblem,
  trustDomainProblem,
} from "../../tls/identity.js";
import { formatAddress, isBindHost, parseAddress } from "./address.js";
import { durationSchema } from "./duration.js";
import { DNS_LABEL, dnsLabel, fraction, integer, MAX_UINT32, positiveDuration } from "./fields.js";
import { kubernetesDiscoveryWithPolicy } from "./kubernetes-schema.js";
import { outboundTrafficPolicySchema } from "./outbound-schema.js";
import { overloadSchema } from "./overload-schema.js";
import { healthCheckSchema, outlierDetectionSchema, retriesSchema } from "./resilience-schema.js";
import { authorizationPoliciesSchema } from "./security-schema.js";
import {
  checkDiscoveryIstioMutual,
  checkIstioMutualIdentity,
  clientTlsSchema,
} from "./tls-schema.js";
import { loadBalancerSchema, routeSchema, subsetSchema } from "./traffic-schema.js";

const port = integer(0, 65535, "a port (0 picks a free one)");

/** An address to listen on; IPv6 may be written with or without brackets, stored without. */
const bindAddress = z
  .string()
  .refine(isBindHost, {
    error: (issue) =>
      `expected an IP address or host name to listen on, got ${JSON.stringify(issue.input)}`,
  })
  .transform((text) => (text.startsWith("[") ? text.slice(1, -1) : text));

/** A destination `HOST:PORT`, kept as written; parse it with parseAddress. */
const hostPort = z.string().superRefine((text, ctx) => {
  try {
    parseAddress(text);
  } catch (error) {
    ctx.addIssue({ code: "custom", message: (error as Error).message });
  }
});

function isServiceKey(text: string): boolean {
  const [name, namespace, extra] = text.split(".");
  return extra === undefined && DNS_LABEL.test(name ?? "") && DNS_LABEL.test(namespace ?? "");
}

/**
 * `NAME` or `NAME.NAMESPACE` → the registry key `NAME.NAMESPACE` (namespace "default" when
 * omitted), so consumers look the service up without re-parsing.
 */
const serviceRef = z
  .string()
  .refine((text) => isServiceKey(text.includes(".") ? text : `${text}.default`), {
    error: (issue) =>
      `expected NAME or NAME.NAMESPACE (DNS-1123 labels), got ${JSON.stringify(issue.input)}`,
  })
  .transform((text) => (text.includes(".") ? text : `${text}.default`));

const listenerTimeouts = z
  .strictObject({
    /** Time to receive a complete request head; bounds slowloris. 0s disables (Envoy's meaning). */
    requestHeaders: durationSchema.prefault("10s"),
    /** A downstream connection with no request in flight is closed after this; Envoy HCM's 1h. 0s disables. */
    idle: durationSchema.prefault("1h"),
  })
  .prefault({});

/** Fields every listener kind has. */
const listenerCommon = {
  /** Unique; names the listener in logs, metrics and the admin API. */
  name: z.string().min(1, { error: "required: a non-empty name" }),
  /** 0 = an ephemeral port (tests, demos). */
  port,
  timeouts: listenerTimeouts,
  /** Largest request head in KiB; a larger one gets 431. */
  maxRequestHeadersKb: integer(1, 8192, "a size in KiB").default(64),
};

/** Requests from the local app, routed by Host/authority to a mesh service. */
const outboundListener = z.strictObject({
  kind: z.literal("outbound"),
  ...listenerCommon,
  /** Loopback by default: only the local app should reach it. */
  address: bindAddress.default("127.0.0.1"),
});

const filePath = z.string().min(1, { error: "required: a file path" });

/** A name checked by tls/identity.ts, so config and `remora ca` word problems alike. */
function identityPart(problem: (text: string) => string | undefined, what: string) {
  return z.string().superRefine((text, ctx) => {
    const reason = problem(text);
    if (reason !== undefined) {
      ctx.addIssue({
        code: "custom",
        message: `invalid ${what} ${JSON.stringify(text)}: ${reason}`,
      });
    }
  });
}

const TLS_FILE_KEYS = ["certFile", "keyFile", "caFile"] as const;
const TLS_DEV_KEYS = ["namespace", "serviceAccount", "trustDomain", "stateDir"] as const;

/** The config's `tls` after validation (config/load.ts resolves its paths against the file's directory). */
export interface TlsConfig {
  certFile: string;
  keyFile: string;
  caFile: string;
  /** Set in dev mode: the CA that writes the three files (tls/dev-identity.ts). */
  dev: DevIdentitySettings | undefined;
}

/**
 * This workload's identity: the three files, or `dev: true` with the dev keys, never both. The
 * output always names the three files; in dev mode they are the ones the dev CA writes
 * (tls/dev-state.ts), and `dev` holds its settings.
 */
const tlsSchema = z
  .strictObject({
    /** PEM certificate (SPIFFE URI SAN), then any intermediates: a Secret's `tls.crt`. */
    certFile: filePath.optional(),
    /** Its PEM private key: `tls.key`. */
    keyFile: filePath.optional(),
    /** PEM trust bundle (one or more CA certificates): `ca.crt`. */
    caFile: filePath.optional(),
    /** Dev mode: a local CA under stateDir issues this workload's certificate at start. */
    dev: z.boolean({ error: "expected true or false" }).default(false),
    // The dev keys' defaults are applied in the transform below, so that the check can tell a
    // key that was written from one that was not.
    /** Dev mode: the identity's namespace; default "default". */
    namespace: identityPart(namespaceProblem, "namespace").optional(),
    /** Dev mode: the identity's service account; default "default". */
    serviceAccount: identityPart(serviceAccountProblem, "service account").optional(),
    /** Dev mode: the CA's trust domain; default cluster.local. */
    trustDomain: identityPart(trustDomainProblem, "trust domain").optional(),
    /**
     * Dev mode: default $REMORA_STATE_DIR, else $XDG_STATE_HOME/remora, else
     * ~/.local/state/remora, read when the config is loaded; relative to the config's directory.
     */
    stateDir: filePath.optional(),
  })
  .superRefine((tls, ctx) => {
    if (tls.dev) {
      for (const key of TLS_FILE_KEYS) {
        if (tls[key] === undefined) continue;
        ctx.addIssue({
          code: "custom",
          path: [key],
          message:
            "not with dev: true (dev mode writes its own certificate files under stateDir): remove certFile, keyFile and caFile, or dev",
        });
      }
      return;
    }
    for (const key of TLS_FILE_KEYS) {
      if (tls[key] !== undefined) continue;
      ctx.addIssue({
        code: "custom",
        path: [key],
        message: "required: a file path (or dev: true for a local development CA)",
      });
    }
    for (const key of TLS_DEV_KEYS) {
      if (tls[key] === undefined) continue;
      ctx.addIssue({ code: "custom", path: [key], message: "only with dev: true" });
    }
  })
  .transform((tls): TlsConfig => {
    if (!tls.dev) {
      return {
        certFile: tls.certFile!,
        keyFile: tls.keyFile!,
        caFile: tls.caFile!,
        dev: undefined,
      };
    }
    const dev: DevIdentitySettings = {
      namespace: tls.namespace ?? "default",
      serviceAccount: tls.serviceAccount ?? "default",
      trustDomain: tls.trustDomain ?? DEFAULT_TRUST_DOMAIN,
      // The environment of the process that loads the config (the config worker inherits it).
      stateDir: tls.stateDir ?? defaultStateDir(),
    };
    const paths = devIdentityPaths(dev.stateDir, dev.namespace, dev.serviceAccount);
    return { certFile: paths.certFile, keyFile: paths.keyFile, caFile: paths.caFile, dev };
  });

/** Requests from the mesh, forwarded to the local application. */
const inboundListener = z.strictObject({
  kind: z.literal("inbound"),
  ...listenerCommon,
  /** All interfaces by default: peers in other pods connect here. */
  address: bindAddress.default("0.0.0.0"),
  /** HOST:PORT of the local application. */
  app: hostPort,
  /**
   * mTLS termination (Istio's PeerAuthentication modes): STRICT = mTLS only, PERMISSIVE = mTLS
   * and plaintext on the same port, DISABLE = plaintext. STRICT/PERMISSIVE need the top-level tls.
   */
  tls: z
    .strictObject({ mode: z.enum(["STRICT", "PERMISSIVE", "DISABLE"]).default("DISABLE") })
    .prefault({}),
});

/** Raw TCP proxied to one service (databases, brokers). */
const tcpListener = z.strictObject({
  kind: z.literal("tcp"),
  ...listenerCommon,
  address: bindAddress.default("127.0.0.1"),
  /** The service to connect to; output is always the key `NAME.NAMESPACE`. */
  service: serviceRef,
});

const LISTENER_KINDS = ["outbound", "inbound", "tcp"] as const;

const listenerSchema = z.discriminatedUnion(
  "kind",
  [outboundListener, inboundListener, tcpListener],
  {
    error: (issue) => {
      if (issue.code !== "invalid_union") return undefined;
      const kind = (issue.input as { kind?: unknown } | undefined)?.kind;
      const expected = `expected ${LISTENER_KINDS.map((k) => `"${k}"`).join(", ")}`;
      return kind === undefined
        ? `required: ${expected}`
        : `${expected}, got ${JSON.stringify(kind)}`;
    },
  },
);

const endpointSchema = z.strictObject({
  /** HOST:PORT: IPv4, [IPv6] or a host name. */
  address: hostPort,
  /**
   * Relative share for weighted policies; Istio's range 1..128, and 0 to stop new requests to
   * the endpoint while in-flight ones finish.
   */
  weight: integer(0, 128, "a weight").default(1),
  /** Free-form labels (version, zone) that subsets select on. */
  labels: z.record(z.string(), z.string()).default(() => ({})),
});

const trafficPolicySchema = z
  .strictObject({
    loadBalancer: loadBalancerSchema.prefault({}),
    /** DestinationRule ClientTLSSettings: TLS to the endpoints (tls-schema.ts); DISABLE by default. */
    tls: clientTlsSchema.prefault({}),
    outlierDetection: outlierDetectionSchema.optional(),
    healthCheck: healthCheckSchema.optional(),
    connectionPool: z
      .strictObject({
        tcp: z
          .strictObject({
            /** Istio's default 10s. */
            connectTimeout: positiveDuration("a connect must be able to fail").prefault("10s"),
            /**
             * Cap on upstream connections per service. Istio defaults to 2^32-1 (no cap); remora
             * picks 1024 so a misbehaving upstream cannot exhaust the sidecar's file descriptors.
             */
            maxConnections: integer(1, MAX_UINT32, "a connection count").default(1024),
          })
          .prefault({}),
        http: z
          .strictObject({
            /**
             * An idle upstream keep-alive connection is closed after this. 4s is deliberately
             * shorter than Node's 5s server keepAliveTimeout, so remora closes first instead of
             * reusing a socket the upstream is closing (the 503 "UC" race).
             */
            idleTimeout: positiveDuration("idle keep-alive connections must expire").prefault("4s"),
            /**
             * An exchange whose bytes stop moving this long ends: 504 UT when the upstream went
             * silent, 408 SI when the client did (proxy/stream-idle.ts). Envoy's
             * stream_idle_timeout default, so no connection waits forever; 0s disables it. Not
             * `idleTimeout`, which is Istio's name for an idle pooled connection.
             */
            streamIdleTimeout: durationSchema.prefault("5m"),
            /** Requests per upstream connection before it is retired; 0 = unlimited. */
            maxRequestsPerConnection: integer(0, MAX_UINT32, "a request count").default(0),
            /** Requests waiting for an upstream connection at once; beyond it 503 UO (Istio's default: no limit). */
            http1MaxPendingRequests: integer(1, MAX_UINT32, "a request count").default(MAX_UINT32),
            /** Retries in flight for the service at once; beyond it no retry, flag UO (Istio's default: no limit). */
            maxRetries: integer(0, MAX_UINT32, "a retry count").default(MAX_UINT32),
            /**
             * Envoy's retry budget: retries in flight (after a request reached an upstream) may be
             * at most `percent` of the service's active requests, and always `minRetryConcurrency`.
             */
            retryBudget: z
              .strictObject({
                percent: integer(0, 100, "a percentage").default(20),
                minRetryConcurrency: integer(0, MAX_UINT32, "a retry count").default(3),
              })
              .prefault({}),
          })
          .prefault({}),
      })
      .prefault({}),
  })
  .prefault({});

const serviceSchema = z.strictObject({
  name: dnsLabel,
  namespace: dnsLabel.default("default"),
  /** Static endpoints; a service may also get (or only get) endpoints from discovery. */
  endpoints: z.array(endpointSchema).default(() => []),
  trafficPolicy: trafficPolicySchema,
  /** VirtualService per-request timeout; 0s (Istio's default) disables it, otherwise 504 when exceeded. */
  timeout: durationSchema.prefault("0s"),
  /** VirtualService retries: Istio's default is 2 attempts on connect failures and 503s. */
  retries: retriesSchema,
  /** DestinationRule subsets, for routes to name. */
  subsets: z.array(subsetSchema).default(() => []),
  /** VirtualService http routes, first match wins; none = every request to every endpoint. */
  routes: z.array(routeSchema).default(() => []),
});

const servicesList = z.array(serviceSchema).default(() => []);

type ServiceOutput = z.output<typeof serviceSchema>;

/** Duplicate services and duplicate endpoints within a service, for config and discovery files. */
function checkServices(services: readonly ServiceOutput[], ctx: z.RefinementCtx): void {
  const seen = new Map<string, number>();
  services.forEach((service, index) => {
    const key = `${service.name}.${service.namespace}`;
    const first = seen.get(key);
    if (first === undefined) seen.set(key, index);
    else {
      ctx.addIssue({
        code: "custom",
        path: ["services", index, "name"],
        message: `duplicate service ${key} (first defined at services[${first}])`,
      });
    }
    const addresses = new Map<string, number>();
    service.endpoints.forEach((endpoint, at) => {
      const id = endpointId(endpoint.address);
      if (id === undefined) return; // already reported by the field's own check
      const earlier = addresses.get(id);
      if (earlier === undefined) addresses.set(id, at);
      else {
        ctx.addIssue({
          code: "custom",
          path: ["services", index, "endpoints", at, "address"],
          message: `duplicate endpoint ${id} (also endpoints[${earlier}])`,
        });
      }
    });
    checkSubsets(service, ["services", index], ctx);
  });
}

/** Subset names are unique and every route names a subset that exists. */
function checkSubsets(service: ServiceOutput, at: (string | number)[], ctx: z.RefinementCtx): void {
  const subsets = new Map<string, number>();
  (service.subsets ?? []).forEach((subset, index) => {
    const earlier = subsets.get(subset.name);
    if (earlier === undefined) subsets.set(subset.name, index);
    else {
      ctx.addIssue({
        code: "custom",
        path: [...at, "subsets", index, "name"],
        message: `duplicate subset ${subset.name} (also subsets[${earlier}])`,
      });
    }
  });
  (service.routes ?? []).forEach((route, index) => {
    (route.route ?? []).forEach((destination, d) => {
      if (destination.subset === undefined || subsets.has(destination.subset)) return;
      ctx.addIssue({
        code: "custom",
        path: [...at, "routes", index, "route", d, "subset"],
        message: `unknown subset ${JSON.stringify(destination.subset)}: not in this service's subsets`,
      });
    });
  });
}

/** Normalised `host:port`, or undefined when the address is invalid. */
function endpointId(address: string): string | undefined {
  try {
    const { host, port } = parseAddress(address);
    return formatAddress(host, port);
  } catch {
    return undefined;
  }
}

/*
 * The cross-field checks below run even when fields already have issues (zod 4 keeps refining
 * past non-fatal issues), so they must tolerate values that failed their own checks.
 */
export const configSchema = z
  .strictObject({
    admin: z
      .strictObject({
        /** Istio's admin port; 0 picks a free one. */
        port: port.default(15000),
        /** Loopback only: the admin API can drain and stop the proxy. */
        address: bindAddress.default("127.0.0.1"),
      })
      .prefault({}),
    /** `GET /healthz/ready` for the kubelet (Istio's status port); a restart applies changes. */
    probes: z
      .strictObject({
        /** All interfaces: the kubelet probes from the node, not from inside the pod. */
        address: bindAddress.default("0.0.0.0"),
        /** Istio's 15021; 0 picks a free one; null = no probe listener (admin /ready still answers). */
        port: port.nullable().default(15021),
      })
      .prefault({}),
    /** Optional extra endpoint sources: a watched YAML file with a top-level `services:` list. */
    discovery: z
      .strictObject({
        file: z.string().min(1, { error: "required: a file path" }).optional(),
        /** The Kubernetes API (kubernetes-schema.ts, docs/kubernetes.md); `trafficPolicy` as services'. */
        kubernetes: kubernetesDiscoveryWithPolicy(trafficPolicySchema.unwrap()).optional(),
      })
      .refine((d) => d.file !== undefined || d.kubernetes !== undefined, {
        path: ["file"],
        error: "required: a file path (or kubernetes: {})",
      })
      .optional(),
    listeners: z.array(listenerSchema).min(1, { error: "at least one listener is required" }),
    services: servicesList,
    /**
     * Requests to a host that is no mesh service (outbound-schema.ts): unset = 404 NR (a plain
     * local proxy); `{}` = ALLOW_ANY, Istio's default, which `remora sidecar` writes.
     */
    outboundTrafficPolicy: outboundTrafficPolicySchema.optional(),
    /** Prometheus metrics (proxy/metrics/, docs/metrics.md). */
    metrics: z
      .strictObject({
        /** false: nothing is counted and no metrics listener starts. */
        enabled: z.boolean({ error: "expected true or false" }).default(true),
        /** The metrics listener (GET /stats/prometheus) on Istio's 15090; null = none (admin still serves it). */
        port: port.nullable().default(15090),
        /** All interfaces by default, as Istio: Prometheus scrapes the pod from outside. */
        address: bindAddress.default("0.0.0.0"),
      })
      .prefault({}),
    /**
     * The workload beside this proxy, for Istio's source_* / destination_* labels. Unset fields
     * are taken at startup from the downward-API environment (name from POD_NAME, namespace from
     * POD_NAMESPACE, serviceAccount from SERVICE_ACCOUNT), else "unknown" (proxy/metrics/workload.ts).
     */
    workload: z
      .strictObject({
        /** Deployment/StatefulSet name; default derived from $POD_NAME ("reviews-v1-5d8f9c7b4-x2x9q" → "reviews-v1"). */
        name: z.string().min(1).optional(),
        namespace: dnsLabel.optional(),
        serviceAccount: z.string().min(1).optional(),
        /** The pod's `app` and `version` labels. */
        app: z.string().min(1).optional(),
        version: z.string().min(1).optional(),
        /** Istio's cluster id (source_cluster / destination_cluster). */
        cluster: z.string().min(1).optional(),
      })
      .prefault({}),
    /**
     * This workload's identity (tls/workload-identity.ts): a Kubernetes TLS Secret's files,
     * relative to the config file's directory, watched for rotation; or `dev: true`, a local CA
     * that issues them (tls/dev-identity.ts). A restart applies changes. See tlsSchema.
     */
    tls: tlsSchema.optional(),
    /** Istio AuthorizationPolicy specs for inbound listeners (security-schema.ts, docs/security.md). */
    authorizationPolicies: authorizationPoliciesSchema,
    /** Overload protection: a global connection cap and a heap threshold (overload-schema.ts). */
    overload: overloadSchema,
    /** One JSON line per finished exchange with Envoy's default fields (docs/access-log.md). */
    accessLog: z
      .strictObject({
        enabled: z.boolean().default(false),
        /** "stdout", or a file appended to (created if missing); relative to the config file's directory. */
        path: z.string().min(1, { error: 'required: a file path or "stdout"' }).default("stdout"),
        /** Fraction of exchanges logged (1 = every one). */
        sample: fraction("a sampling fraction").default(1),
        /** The one format so far; the key is here so others can be added without a break. */
        format: z
          .literal("json", {
            error: (issue) =>
              `expected "json" (the only format so far), got ${JSON.stringify(issue.input)}`,
          })
          .default("json"),
      })
      .prefault({}),
  })
  .superRefine((config, ctx) => {
    const names = new Map<string, number>();
    const ports = new Map<number, string>();
    if (config.admin.port !== 0) ports.set(config.admin.port, "admin.port");
    // The probe and metrics listeners: null = none, 0 = any free port (never collides).
    for (const key of ["probes", "metrics"] as const) {
      const port = config[key].port;
      if (port === null || port === 0) continue;
      const owner = ports.get(port);
      if (owner === undefined) ports.set(port, `${key}.port`);
      else {
        ctx.addIssue({
          code: "custom",
          path: [key, "port"],
          message: `port ${port} is already used by ${owner}`,
        });
      }
    }
    config.listeners.forEach((listener, index) => {
      const first = names.get(listener.name);
      if (first === undefined) names.set(listener.name, index);
      else {
        ctx.addIssue({
          code: "custom",
          path: ["listeners", index, "name"],
          message: `duplicate listener name "${listener.name}" (also listeners[${first}])`,
        });
      }
      // Port 0 asks the OS for a free port, so any number of those never collide.
      if (listener.port !== 0) {
        const owner = ports.get(listener.port);
        if (owner === undefined) ports.set(listener.port, `listeners[${index}].port`);
        else {
          ctx.addIssue({
            code: "custom",
            path: ["listeners", index, "port"],
            message: `port ${listener.port} is already used by ${owner}`,
          });
        }
      }
    });
    if (config.tls === undefined) {
      config.listeners.forEach((listener, index) => {
        if (listener.kind !== "inbound" || listener.tls.mode === "DISABLE") return;
        ctx.addIssue({
          code: "custom",
          path: ["listeners", index, "tls", "mode"],
          message: `${listener.tls.mode} needs this workload's identity: set the top-level tls: { certFile, keyFile, caFile } or tls: { dev: true }`,
        });
      });
    }
    checkIstioMutualIdentity(config.services, config.tls !== undefined, ctx);
    checkDiscoveryIstioMutual(config.discovery?.kubernetes?.trafficPolicy, config.tls, ctx);
    checkServices(config.services, ctx);
    // With a discovery file the service may appear there later, so only a fully static config
    // can be checked here.
    if (config.discovery === undefined) {
      const known = new Set(config.services.map((s) => `${s.name}.${s.namespace}`));
      config.listeners.forEach((listener, index) => {
        // A service that failed its own format check is still raw text; reported already.
        if (listener.kind !== "tcp" || !isServiceKey(listener.service)) return;
        if (!known.has(listener.service)) {
          ctx.addIssue({
            code: "custom",
            path: ["listeners", index, "service"],
            message: `unknown service ${listener.service}: not in services (and no discovery.file is configured)`,
          });
        }
      });
    }
  });

/** A discovery file: the same service entries as the config's `services`. */
export const servicesFileSchema = z
  .strictObject({ services: servicesList })
  .superRefine((file, ctx) => checkServices(file.services, ctx));

/** The parsed config, defaults applied; durations are milliseconds. */
export type RemoraConfig = z.output<typeof configSchema>;
/** What a config file may contain before defaults (used to build configs in code). */
export type RemoraConfigInput = z.input<typeof configSchema>;
export type ListenerConfig = RemoraConfig["listeners"][number];
export type ListenerKind = ListenerConfig["kind"];
export type ServiceConfig = z.output<typeof serviceSchema>;
export type EndpointConfig = z.output<typeof endpointSchema>;
export type RouteConfig = z.output<typeof routeSchema>;
export type TrafficPolicyConfig = z.output<typeof trafficPolicySchema>;
export type ServicesFile = z.output<typeof servicesFileSchema>;
