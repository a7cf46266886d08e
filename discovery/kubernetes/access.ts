import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { isIPv6 } from "node:net";
import { dirname, resolve } from "node:path";
import { parse as parseYaml } from "yaml";

/** Where the API server is and how to authenticate to it: what client.ts needs. */
export interface ApiAccess {
  /** `https://host:port`, without a trailing slash. */
  readonly server: string;
  /** PEM CA bundle to verify the server with; undefined = the system's roots. */
  readonly ca: string | undefined;
  /** PEM client certificate and key (kubeconfig client-certificate auth). */
  readonly cert: string | undefined;
  readonly key: string | undefined;
  readonly insecureSkipTlsVerify: boolean;
  /** The pod's namespace (in cluster) or the kubeconfig context's; undefined when neither says. */
  readonly namespace: string | undefined;
  /** Where the access came from, for logs: `in-cluster` or `kubeconfig PATH (context NAME)`. */
  readonly origin: string;
  /** The bearer token to send now, if any (re-read from its file when due). */
  token(): Promise<string | undefined>;
  /** The server answered 401: read the token again before the next request. */
  tokenRejected(): void;
}

/** The kubeconfig or service-account files cannot be used; the message says which key and why. */
export class KubeAccessError extends Error {
  override readonly name = "KubeAccessError";
  readonly code = "REMORA_ERR_KUBE_ACCESS";
}

export const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";
/** Projected tokens rotate (the kubelet swaps a symlink), so the file is read again this often. */
export const TOKEN_REREAD_MS = 60_000;

/**
 * A token kept in a file, read again once a minute and after a 401, never on every request.
 * A failed re-read keeps the last token (a rotation swap in progress) and is retried next time.
 */
export class FileToken {
  readonly #path: string;
  readonly #now: () => number;
  #token: string | undefined;
  #readAt = Number.NEGATIVE_INFINITY;

  constructor(path: string, now: () => number = Date.now) {
    this.#path = path;
    this.#now = now;
  }

  async get(): Promise<string | undefined> {
    if (this.#now() - this.#readAt >= TOKEN_REREAD_MS) {
      try {
        this.#token = (await readFile(this.#path, "utf8")).trim();
        this.#readAt = this.#now();
      } catch (error) {
        if (this.#token === undefined) {
          throw new KubeAccessError(
            `cannot read the token ${this.#path}: ${(error as Error).message}`,
          );
        }
      }
    }
    return this.#token;
  }

  invalidate(): void {
    this.#readAt = Number.NEGATIVE_INFINITY;
  }
}

export interface InClusterOptions {
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** The service-account directory (tests point it elsewhere). */
  readonly dir?: string;
  readonly now?: () => number;
}

/**
 * Access from inside a pod: `KUBERNETES_SERVICE_HOST`/`_PORT`, and the service account's `token`,
 * `ca.crt` and `namespace` files. Undefined when the host variable is not set (not in a pod).
 */
export function inClusterAccess(options: InClusterOptions = {}): ApiAccess | undefined {
  const env = options.env ?? process.env;
  const host = env.KUBERNETES_SERVICE_HOST;
  if (!host) return undefined;
  const port = env.KUBERNETES_SERVICE_PORT || "443";
  const dir = options.dir ?? SERVICE_ACCOUNT_DIR;
  let ca: string;
  try {
    ca = readFileSync(resolve(dir, "ca.crt"), "utf8");
  } catch (error) {
    throw new KubeAccessError(
      `in a pod (KUBERNETES_SERVICE_HOST is set) but ${resolve(dir, "ca.crt")} cannot be read: ${(error as Error).message}; is automountServiceAccountToken off?`,
    );
  }
  let namespace: string | undefined;
  try {
    namespace = readFileSync(resolve(dir, "namespace"), "utf8").trim() || undefined;
  } catch {
    namespace = undefined;
  }
  const token = new FileToken(resolve(dir, "token"), options.now);
  return {
    server: `https://${isIPv6(host) ? `[${host}]` : host}:${port}`,
    ca,
    cert: undefined,
    key: undefined,
    insecureSkipTlsVerify: false,
    namespace,
    origin: "in-cluster",
    token: () => token.get(),
    tokenRejected: () => token.invalidate(),
  };
}

type Yaml = Record<string, unknown>;

function named(list: unknown, name: string, what: string, path: string): Yaml {
  const entry = Array.isArray(list)
    ? list.find((item) => (item as Yaml | null)?.name === name)
    : undefined;
  if (entry === undefined)
    throw new KubeAccessError(`kubeconfig ${path}: no ${what} named "${name}"`);
  return ((entry as Yaml)[what] as Yaml | undefined) ?? {};
}

function optionalString(object: Yaml, key: string, where: string): string | undefined {
  const value = object[key];
  if (value === undefined || value === null || value === "") return undefined;
  if (typeof value !== "string") throw new KubeAccessError(`${where}.${key}: expected a string`);
  return value;
}

/**
 * Access from a kubeconfig (development against a real cluster): `current-context` (or
 * `context`), its cluster's `server`, `certificate-authority(-data)`, `insecure-skip-tls-verify`,
 * its user's `token`/`tokenFile`, `client-certificate(-data)` and `client-key(-data)`, and the
 * context's `namespace`. Relative file paths are relative to the kubeconfig's directory.
 * Exec credential plugins and auth providers are refused with a message that says so.
 */
export async function kubeconfigAccess(
  path: string,
  options: { context?: string; now?: () => number } = {},
): Promise<ApiAccess> {
  const absolute = resolve(path);
  let text: string;
  try {
    text = await readFile(absolute, "utf8");
  } catch (error) {
    throw new KubeAccessError(
      `cannot read the kubeconfig ${absolute}: ${(error as Error).message}`,
    );
  }
  let doc: Yaml;
  try {
    doc = (parseYaml(text) as Yaml | null) ?? {};
  } catch (error) {
    throw new KubeAccessError(`kubeconfig ${absolute} is not YAML: ${(error as Error).message}`);
  }
  const contextName = options.context ?? optionalString(doc, "current-context", "kubeconfig");
  if (contextName === undefined) {
    throw new KubeAccessError(`kubeconfig ${absolute}: no current-context`);
  }
  const context = named(doc.contexts, contextName, "context", absolute);
  const clusterName = optionalString(context, "cluster", `context ${contextName}`);
  if (clusterName === undefined)
    throw new KubeAccessError(`kubeconfig ${absolute}: context "${contextName}" names no cluster`);
  const cluster = named(doc.clusters, clusterName, "cluster", absolute);
  const userName = optionalString(context, "user", `context ${contextName}`);
  const user = userName === undefined ? {} : named(doc.users, userName, "user", absolute);
  const where = `kubeconfig ${absolute}: user "${userName}"`;
  if (user.exec !== undefined && user.exec !== null) {
    const command = (user.exec as Yaml).command;
    throw new KubeAccessError(
      `${where} uses an exec credential plugin (${String(command)}), which remora does not run; give the user a token, tokenFile or client certificate (see docs/kubernetes.md)`,
    );
  }
  if (user["auth-provider"] !== undefined && user["auth-provider"] !== null) {
    throw new KubeAccessError(
      `${where} uses an auth-provider, which remora does not support; give the user a token or client certificate`,
    );
  }
  const base = dirname(absolute);
  const material = async (
    object: Yaml,
    key: string,
    label: string,
  ): Promise<string | undefined> => {
    const data = optionalString(object, `${key}-data`, label);
    if (data !== undefined) return Buffer.from(data, "base64").toString("utf8");
    const file = optionalString(object, key, label);
    if (file === undefined) return undefined;
    try {
      return await readFile(resolve(base, file), "utf8");
    } catch (error) {
      throw new KubeAccessError(
        `${label}.${key}: cannot read ${resolve(base, file)}: ${(error as Error).message}`,
      );
    }
  };
  const server = optionalString(cluster, "server", `cluster ${clusterName}`);
  if (server === undefined)
    throw new KubeAccessError(`kubeconfig ${absolute}: cluster "${clusterName}" has no server`);
  const cert = await material(user, "client-certificate", where);
  const key = await material(user, "client-key", where);
  if ((cert === undefined) !== (key === undefined)) {
    throw new KubeAccessError(`${where}: client-certificate and client-key go together`);
  }
  const staticToken = optionalString(user, "token", where);
  const tokenFile = optionalString(user, "tokenFile", where);
  const fileToken =
    tokenFile === undefined ? undefined : new FileToken(resolve(base, tokenFile), options.now);
  return {
    server: server.replace(/\/+$/, ""),
    ca: await material(cluster, "certificate-authority", `cluster ${clusterName}`),
    cert,
    key,
    insecureSkipTlsVerify: cluster["insecure-skip-tls-verify"] === true,
    namespace: optionalString(context, "namespace", `context ${contextName}`),
    origin: `kubeconfig ${absolute} (context ${contextName})`,
    token: async () => staticToken ?? (await fileToken?.get()),
    tokenRejected: () => fileToken?.invalidate(),
  };
}

/**
 * The access to use: the configured kubeconfig, else in a pod the service account, else
 * `$KUBECONFIG` (its first path; merging several files is not supported), else ~/.kube/config.
 */
export async function resolveAccess(
  kubeconfig: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<ApiAccess> {
  if (kubeconfig !== undefined) return kubeconfigAccess(kubeconfig);
  const inCluster = inClusterAccess({ env });
  if (inCluster !== undefined) return inCluster;
  const fromEnv = env.KUBECONFIG?.split(":").find((path) => path !== "");
  if (fromEnv !== undefined) return kubeconfigAccess(fromEnv);
  if (env.HOME) return kubeconfigAccess(resolve(env.HOME, ".kube", "config"));
  throw new KubeAccessError(
    "no Kubernetes access: not in a pod, and no kubeconfig configured or in $KUBECONFIG",
  );
}
