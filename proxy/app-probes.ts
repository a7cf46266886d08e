import { request as httpsRequest } from "node:https";
import { http } from "./node-http.js";

/**
 * The app's own HTTP probes, moved behind the probe port by the injector (deploy/probe-rewrite.ts),
 * as Istio's ISTIO_KUBE_APP_PROBERS: the kubelet asks `GET /app-health/<container>/livez` (readyz,
 * startupz) on 15021, and the probe listener asks the app on the kubelet's behalf from inside the
 * pod, in plain HTTP(S) that STRICT mTLS does not intercept (the proxy's UID is excluded).
 */
export interface AppProber {
  readonly httpGet: {
    readonly path: string;
    /** Resolved by the injector: named ports become numbers. */
    readonly port: number;
    readonly scheme: "HTTP" | "HTTPS";
    /** Default 127.0.0.1: the app listens in the same network namespace. */
    readonly host?: string;
    readonly httpHeaders?: readonly { readonly name: string; readonly value: string }[];
  };
  /** The probe's timeoutSeconds; Kubernetes' default is 1. */
  readonly timeoutSeconds?: number;
}

/** Keyed by the rewritten path, e.g. `/app-health/web/readyz`. */
export type AppProbers = ReadonlyMap<string, AppProber>;

export const APP_HEALTH_PREFIX = "/app-health/";
/** The sidecar's env var holding the JSON object of AppProbers (Istio's ISTIO_KUBE_APP_PROBERS). */
export const APP_PROBERS_ENV = "REMORA_KUBE_APP_PROBERS";

export class AppProbersError extends Error {
  override readonly name = "AppProbersError";
  readonly code = "REMORA_ERR_APP_PROBERS";
}

/** Parses the env var's JSON; undefined or empty means none. Throws naming the bad entry. */
export function parseAppProbers(text: string | undefined, source: string): AppProbers {
  const probers = new Map<string, AppProber>();
  if (text === undefined || text.trim() === "") return probers;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new AppProbersError(`${source}: not JSON (${(error as Error).message})`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new AppProbersError(`${source}: expected an object keyed by /app-health/ paths`);
  }
  for (const [path, value] of Object.entries(parsed)) {
    const bad = (why: string) => new AppProbersError(`${source}: "${path}": ${why}`);
    if (!path.startsWith(APP_HEALTH_PREFIX))
      throw bad(`expected a path under ${APP_HEALTH_PREFIX}`);
    const get = (value as { httpGet?: Record<string, unknown> } | null)?.httpGet;
    if (get === undefined || get === null || typeof get !== "object") throw bad("httpGet missing");
    const port = get.port;
    if (typeof port !== "number" || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw bad("httpGet.port: expected a port number 1-65535");
    }
    if (typeof get.path !== "string" || !get.path.startsWith("/")) {
      throw bad('httpGet.path: expected a path starting with "/"');
    }
    const scheme = get.scheme ?? "HTTP";
    if (scheme !== "HTTP" && scheme !== "HTTPS")
      throw bad("httpGet.scheme: expected HTTP or HTTPS");
    const timeout = (value as { timeoutSeconds?: unknown }).timeoutSeconds;
    if (timeout !== undefined && (typeof timeout !== "number" || timeout <= 0)) {
      throw bad("timeoutSeconds: expected a positive number");
    }
    probers.set(path, value as AppProber);
  }
  return probers;
}

/**
 * One probe of the app, like the kubelet's: a fresh connection (no keep-alive, as Istio since
 * 1.17), the probe's headers, no certificate check for HTTPS. Resolves the app's status code, or
 * undefined when it did not answer in time or the connection failed.
 */
export function probeApp(prober: AppProber): Promise<number | undefined> {
  const { httpGet } = prober;
  const request = httpGet.scheme === "HTTPS" ? httpsRequest : http.request;
  const headers: Record<string, string> = { "user-agent": "remora-probe", connection: "close" };
  for (const { name, value } of httpGet.httpHeaders ?? []) headers[name.toLowerCase()] = value;
  return new Promise((resolve) => {
    const req = request(
      {
        host: httpGet.host ?? "127.0.0.1",
        port: httpGet.port,
        path: httpGet.path,
        method: "GET",
        headers,
        agent: false,
        rejectUnauthorized: false,
        timeout: (prober.timeoutSeconds ?? 1) * 1000,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode);
      },
    );
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(undefined));
    req.end();
  });
}
